//! What the graph optimizer buys, each workload beside its baselines in one run (read the
//! ratios):
//! - `relu(a*b + c)` on 4M f32: traced+optimized (one fused loop) against a hand-fused
//!   ndarray `Zip` loop into a preallocated output (on all threads, and on one), and against
//!   the same ops run eagerly (targets: within 1.15x of the Zip loop, 2x faster than eager);
//! - softmax over [1024, 1024] f32: written out of primitives (`exp(x - max) / sum`) eager
//!   and traced (the optimizer remaps it to the fused softmax kernel), and the `softmax`
//!   primitive eager and traced (target: traced at least 1.5x faster than eager, < 0.7 ms);
//! - a 10-op elementwise chain on 4M f32: the planned peak memory, printed (the test suite
//!   asserts the bound);
//! - trace + optimize + compile of 1,000- and 10,000-op functions (target < 10 ms for 1k,
//!   linear scaling).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferroflow as ff;
use ff::{DType, Tensor, TensorSpec};
use ndarray::{ArrayView1, ArrayViewMut1, Zip};
use rayon::prelude::*;

fn fused_chain(c: &mut Criterion) {
    let n = 4 << 20;
    let mut g = c.benchmark_group("opt_relu_a_mul_b_add_c_4M_f32");
    g.throughput(Throughput::Bytes((n * 16) as u64));
    let a = ff::random::normal(&[n], DType::F32, Some(1)).unwrap();
    let b = ff::random::normal(&[n], DType::F32, Some(2)).unwrap();
    let cc = ff::random::normal(&[n], DType::F32, Some(3)).unwrap();
    let f = ff::function(|a: &Tensor, b: &Tensor, c: &Tensor| ((a * b)? + c)?.relu());
    f.call((&a, &b, &cc)).unwrap();
    g.bench_function("traced_optimized", |bch| bch.iter(|| black_box(f.call((&a, &b, &cc)).unwrap())));
    let unopt = ff::function_with(
        ff::FunctionOptions { optimizer: Some(ff::OptimizerOptions::none()), ..Default::default() },
        |a: &Tensor, b: &Tensor, c: &Tensor| ((a * b)? + c)?.relu(),
    );
    g.bench_function("traced_no_passes", |bch| bch.iter(|| black_box(unopt.call((&a, &b, &cc)).unwrap())));
    g.bench_function("eager", |bch| bch.iter(|| black_box((&a * &b + &cc).and_then(|t| t.relu()).unwrap())));
    let (x, y, z) = (a.as_ndarray::<f32>().unwrap(), b.as_ndarray::<f32>().unwrap(), cc.as_ndarray::<f32>().unwrap());
    let (x, y, z) = (x.as_slice().unwrap(), y.as_slice().unwrap(), z.as_slice().unwrap());
    let mut out = vec![0.0f32; n];
    let zip = |o: &mut [f32], x: &[f32], y: &[f32], z: &[f32]| {
        Zip::from(ArrayViewMut1::from(o))
            .and(ArrayView1::from(x))
            .and(ArrayView1::from(y))
            .and(ArrayView1::from(z))
            .for_each(|o, &x, &y, &z| *o = (x * y + z).max(0.0));
    };
    g.bench_function("ndarray_zip_preallocated_all_threads_baseline", |bch| {
        bch.iter(|| {
            let ch = n / (rayon::current_num_threads() * 4);
            out.par_chunks_mut(ch)
                .zip(x.par_chunks(ch))
                .zip(y.par_chunks(ch).zip(z.par_chunks(ch)))
                .for_each(|((o, x), (y, z))| zip(o, x, y, z));
            black_box(&out);
        })
    });
    g.bench_function("ndarray_zip_preallocated_one_thread_baseline", |bch| {
        bch.iter(|| {
            zip(&mut out, x, y, z);
            black_box(&out);
        })
    });
    g.finish();
}

/// Softmax over the last axis written out of primitives.
fn composite_softmax(x: &Tensor) -> ff::Result<Tensor> {
    let m = x.reduce_max(Some(&[-1]), true)?;
    let e = (x - &m)?.exp()?;
    &e / &e.reduce_sum(Some(&[-1]), true)?
}

fn softmax(c: &mut Criterion) {
    let mut g = c.benchmark_group("opt_softmax_1024x1024_f32");
    let x = ff::random::normal(&[1024, 1024], DType::F32, Some(1)).unwrap();
    let traced = ff::function(composite_softmax);
    traced.call(&x).unwrap();
    g.bench_function("composite_traced_optimized", |b| b.iter(|| black_box(traced.call(&x).unwrap())));
    g.bench_function("composite_eager", |b| b.iter(|| black_box(composite_softmax(&x).unwrap())));
    let prim = ff::function(|x: &Tensor| x.softmax(-1));
    prim.call(&x).unwrap();
    g.bench_function("primitive_traced", |b| b.iter(|| black_box(prim.call(&x).unwrap())));
    g.bench_function("primitive_eager", |b| b.iter(|| black_box(x.softmax(-1).unwrap())));
    g.finish();
}

/// Ten elementwise ops over three inputs (all vectorizable: no scalar libm calls).
fn ten_ops(a: &Tensor, b: &Tensor, c: &Tensor) -> ff::Result<Tensor> {
    let t = ((a * b)? + c)?;
    let t = (t * a)?;
    let t = (t - b)?.abs()?;
    let t = (t.sqrt()? + c)?.sigmoid()?;
    (t + a)?.relu()
}

fn memory_plan(c: &mut Criterion) {
    let n = 4 << 20;
    let spec = TensorSpec::new(&[Some(n)], DType::F32);
    let buf = n * 4;
    for (name, opts) in
        [("all passes", ff::OptimizerOptions::all()), ("memory only", ff::OptimizerOptions::only(ff::PassKind::Memory))]
    {
        let f = ff::function_with(ff::FunctionOptions { optimizer: Some(opts), ..Default::default() }, ten_ops);
        let cf = f.get_concrete_function((spec.clone(), spec.clone(), spec.clone())).unwrap();
        let peak = cf.planned_peak_bytes().unwrap_or(0);
        println!(
            "10-op chain on 4M f32, {name}: planned peak {} MiB = inputs 48 MiB + output 16 MiB + {:.1} intermediate buffers of 16 MiB",
            peak >> 20,
            (peak as f64 - 4.0 * buf as f64) / buf as f64
        );
    }
    let a = ff::random::uniform(&[n], DType::F32, Some(1)).unwrap();
    let f = ff::function(ten_ops);
    f.call((&a, &a, &a)).unwrap();
    let mut g = c.benchmark_group("opt_ten_op_chain_4M_f32");
    g.bench_function("traced_optimized", |b| b.iter(|| black_box(f.call((&a, &a, &a)).unwrap())));
    g.bench_function("eager", |b| b.iter(|| black_box(ten_ops(&a, &a, &a).unwrap())));
    g.finish();
}

fn chain(x: &Tensor, y: &Tensor, n: usize) -> ff::Result<Tensor> {
    let mut t = x.clone();
    for i in 0..n {
        t = match i % 4 {
            0 => (&t + y)?,
            1 => (&t * y)?,
            2 => t.relu()?,
            _ => (&t - 1.0f32)?,
        };
    }
    Ok(t)
}

fn trace_optimize(c: &mut Criterion) {
    let mut g = c.benchmark_group("opt_trace_and_optimize");
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[4]).unwrap();
    for n in [1000usize, 10_000] {
        g.bench_function(format!("{n}_ops"), |b| {
            b.iter(|| {
                let f = ff::function(move |x: &Tensor, y: &Tensor| chain(x, y, n));
                black_box(f.get_concrete_function((&x, &x)).unwrap())
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = fused_chain, softmax, memory_plan, trace_optimize }
criterion_main!(benches);
