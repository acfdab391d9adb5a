//! `cargo bench --bench matmul`: ferroflow's f32 matmul against ndarray's single-threaded
//! `dot` in the same run. Throughput is `2·m·n·k` elements, so criterion's elem/s reads as
//! FLOP/s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferroflow as ff;
use ndarray::Array2;

fn data(len: usize, seed: u32) -> Vec<f32> {
    // Small deterministic values in [-1, 1): no NaN/denormal effects on the timing.
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u32) -> ff::Tensor {
    let n = shape.iter().product();
    ff::Tensor::from_vec(data(n, seed), shape).expect("bench tensor")
}

fn square(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_f32");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for n in [256usize, 1024] {
        g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        let an = Array2::from_shape_vec((n, n), data(n * n, 1)).expect("shape");
        let bn = Array2::from_shape_vec((n, n), data(n * n, 2)).expect("shape");
        g.bench_with_input(BenchmarkId::new("ndarray_dot_1thread", n), &n, |bch, _| {
            bch.iter(|| black_box(an.dot(black_box(&bn))))
        });
        let (a, b) = (tensor(&[n, n], 1), tensor(&[n, n], 2));
        g.bench_with_input(BenchmarkId::new("ferroflow", n), &n, |bch, _| {
            bch.iter(|| black_box(ff::matmul(black_box(&a), black_box(&b)).expect("matmul")))
        });
    }
    g.finish();
}

fn shapes(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_f32_shapes");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    // Batched: 8 independent 128² products.
    let (a, b) = (tensor(&[8, 128, 128], 3), tensor(&[8, 128, 128], 4));
    g.throughput(Throughput::Elements(2 * 8 * 128 * 128 * 128));
    g.bench_function("ferroflow_batched_8x128", |bch| {
        bch.iter(|| black_box(ff::matmul(black_box(&a), black_box(&b)).expect("matmul")))
    });

    // a @ b^T without a transposed copy, against the same shape untransposed.
    let n = 512;
    let (a, b) = (tensor(&[n, n], 5), tensor(&[n, n], 6));
    g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
    g.bench_function("ferroflow_512", |bch| {
        bch.iter(|| black_box(ff::matmul(black_box(&a), black_box(&b)).expect("matmul")))
    });
    g.bench_function("ferroflow_512_transpose_b", |bch| {
        bch.iter(|| black_box(ff::matmul_with(black_box(&a), black_box(&b), false, true).expect("matmul")))
    });
    g.bench_function("ferroflow_512_transpose_a", |bch| {
        bch.iter(|| black_box(ff::matmul_with(black_box(&a), black_box(&b), true, false).expect("matmul")))
    });
    g.finish();
}

/// The shapes `gemm` special-cases (a row or column vector, a tiny output), against ndarray's
/// `dot`, and with a transposed operand (copied row-major first for tiny outputs; `matmul.rs`
/// says why).
fn vectors(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_f32_vectors");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    for (name, m, k, n) in
        [("row_1x784x256", 1, 784, 256), ("col_1024x1024x1", 1024, 1024, 1), ("tiny_16x512x16", 16, 512, 16)]
    {
        g.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        let an = Array2::from_shape_vec((m, k), data(m * k, 7)).expect("shape");
        let bn = Array2::from_shape_vec((k, n), data(k * n, 8)).expect("shape");
        g.bench_function(BenchmarkId::new("ndarray_dot_1thread", name), |bch| {
            bch.iter(|| black_box(an.dot(black_box(&bn))))
        });
        let (a, b) = (tensor(&[m, k], 7), tensor(&[k, n], 8));
        g.bench_function(BenchmarkId::new("ferroflow", name), |bch| {
            bch.iter(|| black_box(ff::matmul(black_box(&a), black_box(&b)).expect("matmul")))
        });
        // The same product from a stored transpose: one row-major copy of a first.
        let at = ff::transpose(&a, &[1, 0]).expect("transpose");
        g.bench_function(BenchmarkId::new("ferroflow_transpose_a", name), |bch| {
            bch.iter(|| black_box(ff::matmul_with(black_box(&at), black_box(&b), true, false).expect("matmul")))
        });
    }
    g.finish();
}

criterion_group!(benches, square, shapes, vectors);
criterion_main!(benches);
