//! Eager-mode speed, each workload beside its baseline in the same run (read the ratios):
//! dispatch of a 1-element add (vs ndarray), reduce_sum of 16M f32 (vs a streaming read),
//! softmax over [1024, 1024] (vs ndarray), relu(a*b + c) on 4M f32 (vs unfused ndarray),
//! as_ndarray on 1M elements (O(1)), to_ndarray of 4 MiB (vs memcpy into a fresh Vec).
//! It also prints the page faults per call of the eager chain in steady state.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferroflow as ff;
use ndarray::{Array1, Array2, ArrayD, Axis, IxDyn};
use rayon::prelude::*;

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch_add_1elem");
    let a = ff::Tensor::from_slice(&[1.0f32], &[1]).unwrap();
    let b = ff::Tensor::from_slice(&[2.0f32], &[1]).unwrap();
    g.bench_function("ferroflow", |bch| bch.iter(|| black_box(black_box(&a) + black_box(&b))));
    let x = Array1::from_vec(vec![1.0f32]);
    let y = Array1::from_vec(vec![2.0f32]);
    g.bench_function("ndarray_baseline", |bch| bch.iter(|| black_box(black_box(&x) + black_box(&y))));
    g.finish();
}

fn reduce_sum(c: &mut Criterion) {
    let n = 16 << 20;
    let mut g = c.benchmark_group("reduce_sum_16M_f32");
    g.throughput(Throughput::Bytes((n * 4) as u64));
    let v: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let t = ff::Tensor::from_vec(v.clone(), &[n]).unwrap();
    g.bench_function("ferroflow", |b| b.iter(|| black_box(t.reduce_sum(None, false).unwrap())));
    // A streaming read of the same bytes on the same threads: xor of the bit patterns.
    g.bench_function("streaming_read_baseline", |b| {
        b.iter(|| {
            black_box(
                v.par_chunks(1 << 18)
                    .map(|c| {
                        let mut acc = [0u32; 16];
                        for ch in c.chunks_exact(16) {
                            for i in 0..16 {
                                acc[i] ^= ch[i].to_bits();
                            }
                        }
                        acc.iter().fold(0, |a, b| a ^ b)
                    })
                    .reduce(|| 0, |a, b| a ^ b),
            )
        })
    });
    g.finish();
}

fn softmax(c: &mut Criterion) {
    let mut g = c.benchmark_group("softmax_1024x1024_f32");
    let t = ff::random::normal(&[1024, 1024], ff::DType::F32, Some(1)).unwrap();
    let a: Array2<f32> = t.to_ndarray::<f32>().unwrap().into_dimensionality().unwrap();
    g.bench_function("ferroflow", |b| b.iter(|| black_box(t.softmax(-1).unwrap())));
    g.bench_function("ndarray_baseline", |b| {
        b.iter(|| {
            let mut out = a.clone();
            for mut row in out.axis_iter_mut(Axis(0)) {
                let m = row.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                row.mapv_inplace(|x| (x - m).exp());
                let s = row.sum();
                row.mapv_inplace(|x| x / s);
            }
            black_box(out)
        })
    });
    g.finish();
}

fn chain(c: &mut Criterion) {
    let n = 4 << 20;
    let mut g = c.benchmark_group("relu_a_mul_b_add_c_4M_f32");
    g.throughput(Throughput::Elements(n as u64));
    let a = ff::random::normal(&[n], ff::DType::F32, Some(1)).unwrap();
    let b = ff::random::normal(&[n], ff::DType::F32, Some(2)).unwrap();
    let cc = ff::random::normal(&[n], ff::DType::F32, Some(3)).unwrap();
    let run = || (&a * &b + &cc).and_then(|t| t.relu()).unwrap();
    g.bench_function("ferroflow_eager", |bch| bch.iter(|| black_box(run())));
    let (x, y, z) = (a.to_ndarray::<f32>().unwrap(), b.to_ndarray::<f32>().unwrap(), cc.to_ndarray::<f32>().unwrap());
    g.bench_function("ndarray_unfused_baseline", |bch| {
        bch.iter(|| black_box((&x * &y + &z).mapv_into(|v| v.max(0.0))))
    });
    g.finish();
    for _ in 0..3 {
        black_box(run());
    }
    let before = minor_faults();
    for _ in 0..20 {
        black_box(run());
    }
    println!("relu(a*b+c) eager steady state: {:.1} page faults per call", (minor_faults() - before) as f64 / 20.0);
}

/// Minor page faults of this process so far (Linux; 0 elsewhere).
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().nth(7)).and_then(|f| f.parse().ok()))
        .unwrap_or(0)
}

fn conversions(c: &mut Criterion) {
    let mut g = c.benchmark_group("as_ndarray_1M_f32");
    let t = ff::zeros(&[1 << 20], ff::DType::F32).unwrap();
    let v = vec![0.0f32; 1 << 20];
    g.bench_function("ferroflow", |b| b.iter(|| black_box(black_box(&t).as_ndarray::<f32>().unwrap().len())));
    g.bench_function("ndarray_view_baseline", |b| {
        b.iter(|| black_box(ndarray::ArrayViewD::from_shape(IxDyn(&[1 << 20]), black_box(&v[..])).unwrap().len()))
    });
    g.finish();

    let mut g = c.benchmark_group("to_ndarray_4MiB_f32");
    g.throughput(Throughput::Bytes(4 << 20));
    let t = ff::random::uniform(&[1 << 20], ff::DType::F32, Some(1)).unwrap();
    let src = t.to_ndarray::<f32>().unwrap().into_raw_vec_and_offset().0;
    g.bench_function("ferroflow", |b| b.iter(|| black_box(t.to_ndarray::<f32>().unwrap())));
    g.bench_function("memcpy_baseline", |b| b.iter(|| black_box(black_box(&src[..]).to_vec())));
    let _: Option<ArrayD<f32>> = None;
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = dispatch, reduce_sum, softmax, chain, conversions }
criterion_main!(benches);
