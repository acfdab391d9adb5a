//! `cargo bench --bench gpu`: the GPU backend against the CPU in the same run: f32 matmul
//! (throughput `2·m·n·k`, so criterion's elem/s reads as FLOP/s) and the fused chain
//! `relu(a * b + c)` traced into one generated kernel (throughput in bytes: three inputs
//! read and one output written, so bytes/s reads as effective memory bandwidth), a fused
//! reduce `mean((x - y)^2)` over rows (bytes read), and a fused matmul `relu(x @ w + b)`
//! (FLOP/s), each one generated kernel on the GPU.
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

criterion_group!(benches, matmul, fused_chain, fused_reduce, fused_matmul);
criterion_main!(benches);
