//! `cargo bench --bench sparse`: `sparse::matmul` of a 10,000 x 10,000 f32 matrix with 1%
//! non-zeros (about 100 per row, so 1M entries) by a dense 10,000 x 64 matrix, against the
//! dense `matmul` of the same data (the densified matrix, 400 MB) in the same run. Also the
//! costs around it: building (validating) the sparse tensor and densifying it.
//!
//! After criterion, a plain interleaved loop times both matmuls again and prints the medians
//! and their ratio (`sparse_speedup`), the figure the issue asks for (at least 5x). There each
//! sparse call follows a dense one (which streams 400 MB), so it starts with cold caches:
//! the conservative figure. Results are in the header of `src/sparse/kernels.rs`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use ferroflow as ff;

const M: usize = 10_000;
const K: usize = 10_000;
const N: usize = 64;
const PER_ROW: usize = 100; // 1% of K

struct Xs(u64);
impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// In [-1, 1).
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Sorted COO parts: about `PER_ROW` distinct random columns in every row.
fn coo() -> (Vec<i64>, Vec<f32>) {
    let mut r = Xs(0x9E37_79B9_7F4A_7C15);
    let (mut idx, mut vals) = (Vec::with_capacity(2 * M * PER_ROW), Vec::with_capacity(M * PER_ROW));
    let mut cols = Vec::with_capacity(PER_ROW);
    for row in 0..M {
        cols.clear();
        cols.extend((0..PER_ROW).map(|_| (r.next() % K as u64) as i64));
        cols.sort_unstable();
        cols.dedup();
        for &c in &cols {
            idx.extend_from_slice(&[row as i64, c]);
            vals.push(r.f32());
        }
    }
    (idx, vals)
}

fn inputs() -> (ff::SparseTensor, ff::Tensor) {
    let (idx, vals) = coo();
    let nnz = vals.len();
    let i = ff::Tensor::from_vec(idx, &[nnz, 2]).expect("indices");
    let v = ff::Tensor::from_vec(vals, &[nnz]).expect("values");
    let sp = ff::SparseTensor::new(i, v, [M, K]).expect("sparse");
    let mut r = Xs(12345);
    let b = ff::Tensor::from_vec((0..K * N).map(|_| r.f32()).collect(), &[K, N]).expect("dense b");
    (sp, b)
}

fn spmm(c: &mut Criterion) {
    let (sp, b) = inputs();
    let dense = sp.to_dense().expect("to_dense");
    let mut g = c.benchmark_group("sparse_matmul_10k_1pct_x64");
    g.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(8));
    g.bench_function("sparse_matmul", |bch| {
        bch.iter(|| black_box(ff::sparse::matmul(black_box(&sp), black_box(&b)).expect("sparse matmul")))
    });
    g.bench_function("dense_matmul_same_data", |bch| {
        bch.iter(|| black_box(dense.matmul(black_box(&b)).expect("dense matmul")))
    });
    g.finish();

    let mut g = c.benchmark_group("sparse_around_10k_1pct");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.bench_function("new_validated_1M_entries", |bch| {
        bch.iter(|| black_box(ff::SparseTensor::new(sp.indices(), sp.values(), [M, K]).expect("new")))
    });
    g.bench_function("to_dense_400MB", |bch| bch.iter(|| black_box(sp.to_dense().expect("to_dense"))));
    g.finish();
}

/// Interleaved medians of both matmuls and their ratio.
fn ratio() {
    let (sp, b) = inputs();
    let dense = sp.to_dense().expect("to_dense");
    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e3
    };
    let (mut s, mut d) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        s.push(time(&|| drop(black_box(ff::sparse::matmul(&sp, &b).expect("sparse")))));
        d.push(time(&|| drop(black_box(dense.matmul(&b).expect("dense")))));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ms, md) = (med(&mut s), med(&mut d));
    println!(
        "sparse_speedup: nnz {} ({:.2}%), sparse::matmul {ms:.2} ms, dense matmul {md:.2} ms, ratio {:.1}x ({} threads)",
        sp.nnz(),
        100.0 * sp.nnz() as f64 / (M * K) as f64,
        md / ms,
        rayon::current_num_threads()
    );
}

criterion_group!(benches, spmm);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratio();
}
