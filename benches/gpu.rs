//! `cargo bench --bench gpu`: the GPU backend against the CPU in the same run: f32 matmul
//! (throughput `2·m·n·k`, so criterion's elem/s reads as FLOP/s) and the fused chain
//! `relu(a * b + c)` traced into one generated kernel (throughput in bytes: three inputs
//! read and one output written, so bytes/s reads as effective memory bandwidth), a fused
//! reduce `mean((x - y)^2)` over rows (bytes read), and a fused matmul `relu(x @ w + b)`
//! (FLOP/s), each one generated kernel on the GPU; and the sparse kernels: a sparse matmul
//! (FLOP/s over the stored entries) and `from_dense` (its non-zero search, bytes read),
//! each with its one sync point (a 4-byte read-back).
//!
//! GPU timings include waiting for the result (`ff::gpu::synchronize`), not the copies:
//! inputs are uploaded once before timing, outputs stay on the device. On lavapipe (a CPU
//! Vulkan driver) the figures measure nothing about GPUs; sizes are modest so it stays quick.
//! Without any adapter the GPU rows are skipped with a loud line.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferroflow as ff;
use ff::{Device, Tensor};

fn tensor(shape: &[usize], seed: u64) -> Tensor {
    ff::random::uniform(shape, ff::DType::F32, Some(seed)).expect("bench tensor")
}

fn gpu() -> Option<Device> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: the bench is single-threaded here, before any GPU call; Mesa reads it.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
    if ff::devices().len() > 1 {
        Some(Device::Gpu(0))
    } else {
        eprintln!("SKIPPED: no GPU adapter: the GPU rows of benches/gpu.rs do not run");
        None
    }
}

fn matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("gpu_matmul_f32");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for n in [256usize, 512, 1024] {
        g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        let (a, b) = (tensor(&[n, n], 1), tensor(&[n, n], 2));
        g.bench_with_input(BenchmarkId::new("cpu", n), &n, |bch, _| {
            bch.iter(|| black_box(ff::matmul(&a, &b).expect("matmul")))
        });
        if let Some(d) = gpu() {
            let (ga, gb) = (a.to_device(d).expect("upload"), b.to_device(d).expect("upload"));
            g.bench_with_input(BenchmarkId::new("gpu", n), &n, |bch, _| {
                bch.iter(|| {
                    let y = ff::matmul(&ga, &gb).expect("matmul");
                    ff::gpu::synchronize().expect("sync");
                    black_box(y)
                })
            });
        }
    }
    g.finish();
}

fn fused_chain(c: &mut Criterion) {
    let mut g = c.benchmark_group("gpu_fused_relu_a_mul_b_add_c");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let f = ff::function(|a: &Tensor, b: &Tensor, c: &Tensor| ((a * b)? + c)?.relu());
    for n in [1usize << 20, 1 << 23] {
        g.throughput(Throughput::Bytes((4 * 4 * n) as u64));
        let (a, b, cc) = (tensor(&[n], 3), tensor(&[n], 4), tensor(&[n], 5));
        g.bench_with_input(BenchmarkId::new("cpu", n), &n, |bch, _| {
            bch.iter(|| black_box(f.call((&a, &b, &cc)).expect("call")))
        });
        if let Some(d) = gpu() {
            let up = |t: &Tensor| t.to_device(d).expect("upload");
            let (ga, gb, gc) = (up(&a), up(&b), up(&cc));
            g.bench_with_input(BenchmarkId::new("gpu", n), &n, |bch, _| {
                bch.iter(|| {
                    let y = f.call((&ga, &gb, &gc)).expect("call");
                    ff::gpu::synchronize().expect("sync");
                    black_box(y)
                })
            });
        }
    }
    g.finish();
}

/// A fused reduce: `mean((x - y)^2)` over the last axis, one kernel on the GPU (the squared
/// differences never exist). Throughput in bytes read (two inputs).
fn fused_reduce(c: &mut Criterion) {
    let mut g = c.benchmark_group("gpu_fused_reduce_mean_sq_diff");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let f = ff::function(|x: &Tensor, y: &Tensor| (x - y)?.square()?.reduce_mean(Some(&[-1]), false));
    for (rows, cols) in [(1024usize, 1024usize), (4096, 1024)] {
        let n = rows * cols;
        g.throughput(Throughput::Bytes((2 * 4 * n) as u64));
        let (x, y) = (tensor(&[rows, cols], 6), tensor(&[rows, cols], 7));
        g.bench_with_input(BenchmarkId::new("cpu", n), &n, |bch, _| {
            bch.iter(|| black_box(f.call((&x, &y)).expect("call")))
        });
        if let Some(d) = gpu() {
            let (gx, gy) = (x.to_device(d).expect("upload"), y.to_device(d).expect("upload"));
            g.bench_with_input(BenchmarkId::new("gpu", n), &n, |bch, _| {
                bch.iter(|| {
                    let r = f.call((&gx, &gy)).expect("call");
                    ff::gpu::synchronize().expect("sync");
                    black_box(r)
                })
            });
        }
    }
    g.finish();
}

/// A fused matmul: `relu(x @ w + b)`, the bias add and activation applied in registers
/// before the store (one kernel). Throughput `2·m·n·k` (FLOP/s).
fn fused_matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("gpu_fused_matmul_bias_relu");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let f = ff::function(|x: &Tensor, w: &Tensor, b: &Tensor| (ff::matmul(x, w)? + b)?.relu());
    for n in [256usize, 512, 1024] {
        g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        let (x, w, b) = (tensor(&[n, n], 8), tensor(&[n, n], 9), tensor(&[n], 10));
        g.bench_with_input(BenchmarkId::new("cpu", n), &n, |bch, _| {
            bch.iter(|| black_box(f.call((&x, &w, &b)).expect("call")))
        });
        if let Some(d) = gpu() {
            let up = |t: &Tensor| t.to_device(d).expect("upload");
            let (gx, gw, gb) = (up(&x), up(&w), up(&b));
            g.bench_with_input(BenchmarkId::new("gpu", n), &n, |bch, _| {
                bch.iter(|| {
                    let y = f.call((&gx, &gw, &gb)).expect("call");
                    ff::gpu::synchronize().expect("sync");
                    black_box(y)
                })
            });
        }
    }
    g.finish();
}

/// Host values from a small LCG: `keep` of them non-zero (the rest exactly 0.0).
fn sparse_values(n: usize, keep: f64, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            if u < keep { (u / keep) as f32 - 0.5 } else { 0.0 }
        })
        .collect()
}

/// `sparse::matmul`: a 4096 x 4096 matrix with 1% non-zeros (canonical order, so no sort)
/// times a dense 4096 x 64. Throughput `2·nnz·n` (FLOP/s). The GPU row includes its one
/// sync point (the 4-byte bounds status); the result is checked against the CPU once.
fn sparse_matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("gpu_sparse_matmul_f32");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let (m, k, n) = (4096usize, 4096usize, 64usize);
    let dense = Tensor::from_vec(sparse_values(m * k, 0.01, 11), &[m, k]).expect("dense");
    let a = ff::SparseTensor::from_dense(&dense).expect("from_dense");
    let b = tensor(&[k, n], 12);
    g.throughput(Throughput::Elements(2 * (a.nnz() * n) as u64));
    let want = ff::sparse::matmul(&a, &b).expect("matmul");
    g.bench_with_input(BenchmarkId::new("cpu", a.nnz()), &n, |bch, _| {
        bch.iter(|| black_box(ff::sparse::matmul(&a, &b).expect("matmul")))
    });
    if let Some(d) = gpu() {
        let up = |t: &Tensor| t.to_device(d).expect("upload");
        let opts = ff::SparseOptions { validate: false };
        let ga = ff::SparseTensor::new_with(up(a.indices()), up(a.values()), [m, k], opts).expect("sparse");
        let gb = up(&b);
        let got = ff::sparse::matmul(&ga, &gb).expect("matmul");
        let diff =
            (&got.to_device(Device::Cpu).expect("download") - &want).and_then(|e| e.abs()?.reduce_max(None, false));
        let diff = diff.and_then(|x| x.to_scalar::<f32>()).expect("diff");
        assert!(diff <= 1e-4, "GPU sparse matmul differs from the CPU by {diff}");
        g.bench_with_input(BenchmarkId::new("gpu", a.nnz()), &n, |bch, _| {
            bch.iter(|| {
                let y = ff::sparse::matmul(&ga, &gb).expect("matmul");
                ff::gpu::synchronize().expect("sync");
                black_box(y)
            })
        });
    }
    g.finish();
}

/// `NonZero` (through `SparseTensor::from_dense`, whose values are then gathered): a
/// 1024 x 1024 f32 tensor with 10% non-zeros. Throughput in bytes of the dense input. The
/// GPU row includes its sync point (the count read back); checked against the CPU once.
fn nonzero(c: &mut Criterion) {
    let mut g = c.benchmark_group("gpu_sparse_from_dense_f32");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let n = 1024usize;
    let x = Tensor::from_vec(sparse_values(n * n, 0.1, 13), &[n, n]).expect("dense");
    g.throughput(Throughput::Bytes((4 * n * n) as u64));
    let want = ff::SparseTensor::from_dense(&x).expect("from_dense");
    g.bench_with_input(BenchmarkId::new("cpu", n * n), &n, |bch, _| {
        bch.iter(|| black_box(ff::SparseTensor::from_dense(&x).expect("from_dense")))
    });
    if let Some(d) = gpu() {
        let gx = x.to_device(d).expect("upload");
        let got = ff::SparseTensor::from_dense(&gx).expect("from_dense");
        let same = |a: &Tensor, b: &Tensor| {
            a.to_device(Device::Cpu).expect("download").to_ndarray::<i64>().expect("i64")
                == b.to_ndarray::<i64>().expect("i64")
        };
        assert!(same(got.indices(), want.indices()), "GPU nonzero differs from the CPU");
        g.bench_with_input(BenchmarkId::new("gpu", n * n), &n, |bch, _| {
            bch.iter(|| {
                let s = ff::SparseTensor::from_dense(&gx).expect("from_dense");
                ff::gpu::synchronize().expect("sync");
                black_box(s)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, matmul, fused_chain, fused_reduce, fused_matmul, sparse_matmul, nonzero);
criterion_main!(benches);
