//! CPU kernels of the sparse primitives (`PrimOp::Sparse(SparseOp)`), called by
//! `backend::cpu::execute`. Every kernel checks the bounds of the indices it reads, so an
//! unvalidated sparse tensor gives an `InvalidSparseIndices` error, never a wrong write.
//!
//! `matmul` treats the COO indices as CSR when they are sorted by row (validated tensors
//! are): one binary search per row finds its entries, then rows run in parallel, each an
//! axpy of the dense `b` row of every entry into the output row. Unsorted indices take a
//! counting sort by row into a copy first.
//!
//! ## Why this kernel (measured)
//! `cargo bench --bench sparse`: a 10,000 x 10,000 f32 matrix with 1% non-zeros (995,033
//! entries) times a dense 10,000 x 64, 2 threads, on a 2-core machine shared with other
//! builds (load average 6-9, so absolute times are ~3x a quiet machine's; the ratio is what
//! holds):
//!
//! | kernel | time | dense matmul of the same data |
//! |---|---|---|
//! | axpy into the output row, baseline x86-64 (SSE2) | 26.4 ms | 122 ms (4.6x) |
//! | accumulators in registers (`W` columns at a time), AVX2 build picked at run time (chosen) | 9.3-12.6 ms | 87-94 ms (7-10x) |
//! | the same, `b` swept in L2-sized blocks of rows per band of output rows | 15-21 ms | 84-107 ms |
//!
//! In a quieter moment (load average 4-6) the chosen kernel ran in 5.56 ms against 55.9 ms
//! (10.0x, criterion), and 8.6 ms against 56.8 ms (6.6x) in the bench's interleaved loop,
//! where every sparse call follows a dense one and starts with cold caches.
//!
//! Each entry reads one 256-byte row of `b` (2.5 MB, in L3); holding the output row in
//! registers removed a load and a store of it per entry, which was the bottleneck. L2
//! blocking of `b` cut its L3 traffic but cost more in short runs per row and block than it
//! saved, so it was dropped. Sums are added in entry order, with no fused multiply-add,
//! so the AVX2 and the baseline builds give the same bits.

use std::sync::atomic::{AtomicBool, Ordering};

use half::{bf16, f16};
use rayon::prelude::*;

use crate::backend::cpu::num::NumK;
use crate::backend::cpu::par::{PAR_MIN, chunk_len};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result, SparseIndexProblem};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::alloc;

/// Adding two values stored at one index: integers wrap, bool is or.
pub(crate) trait SumK: Element {
    fn sum(self, b: Self) -> Self;
}

macro_rules! sum_k {
    ($($t:ty => |$a:ident, $b:ident| $e:expr;)*) => {$(
        impl SumK for $t {
            #[inline(always)]
            fn sum(self, $b: Self) -> Self {
                let $a = self;
                $e
            }
        }
    )*};
}
sum_k! {
    f32 => |a, b| a + b;
    f64 => |a, b| a + b;
    f16 => |a, b| f16::from_f32(a.to_f32() + b.to_f32());
    bf16 => |a, b| bf16::from_f32(a.to_f32() + b.to_f32());
    i32 => |a, b| a.wrapping_add(b);
    i64 => |a, b| a.wrapping_add(b);
    u8 => |a, b| a.wrapping_add(b);
    bool => |a, b| a | b;
}

/// `[0, 5]`: an index as the error messages show it.
pub(crate) fn index_text(row: &[i64]) -> String {
    let parts: Vec<String> = row.iter().map(i64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// The error for entry `entry` (whose index is `row`).
pub(crate) fn bad(op: &'static str, problem: SparseIndexProblem, entry: usize, row: &[i64], bound: String) -> Error {
    let fix = match problem {
        SparseIndexProblem::OutOfBounds => "fix the index, or give a dense shape that holds it",
        SparseIndexProblem::Repeated => {
            "merge repeated entries with ff::sparse::coalesce, which adds their values (make the SparseTensor with SparseOptions { validate: false } first)"
        }
        SparseIndexProblem::OutOfOrder => {
            "many sparse ops need canonical order: sort the entries with ff::sparse::reorder (make the SparseTensor with SparseOptions { validate: false } first)"
        }
    };
    Error::InvalidSparseIndices {
        op,
        problem,
        entry,
        index: index_text(row),
        bound,
        fix: Some(fix.into()),
        location: None,
    }
}

/// COO indices as one slice, with their (nnz, rank). Checks what inference promised, so a
/// malformed input is an error rather than a panic.
fn coo<'a>(op: &'static str, t: &'a Tensor) -> Result<(&'a [i64], usize, usize)> {
    let s = t.host_slice::<i64>(op)?;
    match t.shape().dims() {
        &[nnz, cols] if nnz.checked_mul(cols) == Some(s.len()) => Ok((s, nnz, cols)),
        _ => Err(Error::shape(op, "indices of shape [nnz, rank]", format!("shape {}", t.shape()))),
    }
}

/// Entry `e`'s index.
#[inline(always)]
fn entry(s: &[i64], cols: usize, e: usize) -> &[i64] {
    &s[e * cols..(e + 1) * cols]
}

/// The row-major offset of `index` in a tensor of `dims`, or `None` when out of bounds.
#[inline(always)]
fn offset(index: &[i64], dims: &[usize], strides: &[usize]) -> Option<usize> {
    let mut o = 0;
    for ((&c, &d), &st) in index.iter().zip(dims).zip(strides) {
        if c < 0 || c as u64 >= d as u64 {
            return None;
        }
        o += c as usize * st;
    }
    Some(o)
}

fn values_of<'a, T: Element>(op: &'static str, v: &'a Tensor, nnz: usize) -> Result<&'a [T]> {
    let s = v.host_slice::<T>(op)?;
    if s.len() != nnz {
        return Err(Error::shape(op, format!("values of shape [{nnz}]"), format!("shape {}", v.shape())));
    }
    Ok(s)
}

// ---- validate -------------------------------------------------------------------------------

/// `SparseOp::Validate`: the first entry (in order) that is out of bounds, repeated or out of
/// order is the error; otherwise the indices pass through.
pub(crate) fn validate(indices: &Tensor, dense: &Shape) -> Result<Tensor> {
    const OP: &str = "SparseTensor::new";
    let (s, nnz, cols) = coo(OP, indices)?;
    if cols != dense.rank() {
        return Err(Error::shape(OP, format!("indices of shape [nnz, {}]", dense.rank()), indices.shape().to_string()));
    }
    // What is wrong with entry `e`, if anything: a tight loop, no error built per entry.
    let problem = |e: usize| -> Option<SparseIndexProblem> {
        let row = entry(s, cols, e);
        if row.iter().zip(dense.iter()).any(|(&c, &d)| c < 0 || c as u64 >= d as u64) {
            return Some(SparseIndexProblem::OutOfBounds);
        }
        let prev = entry(s, cols, e.checked_sub(1)?);
        for (&p, &c) in prev.iter().zip(row) {
            if p != c {
                return (p > c).then_some(SparseIndexProblem::OutOfOrder);
            }
        }
        Some(SparseIndexProblem::Repeated)
    };
    // The first bad entry in order: chunks scanned in parallel, the lowest one wins.
    const CHUNK: usize = 1 << 14;
    let scan = |c: usize| (c * CHUNK..nnz.min((c + 1) * CHUNK)).find_map(|e| problem(e).map(|p| (e, p)));
    let chunks = nnz.div_ceil(CHUNK);
    let first = if nnz.saturating_mul(cols.max(1)) >= PAR_MIN {
        (0..chunks).into_par_iter().find_map_first(scan)
    } else {
        (0..chunks).find_map(scan)
    };
    let Some((e, p)) = first else { return Ok(indices.clone()) };
    let row = entry(s, cols, e);
    let bound = match p {
        SparseIndexProblem::OutOfBounds => dense.to_string(),
        SparseIndexProblem::Repeated | SparseIndexProblem::OutOfOrder => {
            index_text(entry(s, cols, e.saturating_sub(1)))
        }
    };
    Err(bad(OP, p, e, row, bound))
}

// ---- to_dense -------------------------------------------------------------------------------

/// `SparseOp::ToDense`: the default everywhere, then each entry's value at its offset (entries
/// that share an index add up).
pub(crate) fn to_dense(indices: &Tensor, values: &Tensor, default: &Tensor, shape: Shape) -> Result<Tensor> {
    const OP: &str = "sparse::to_dense";
    let (s, nnz, cols) = coo(OP, indices)?;
    if cols != shape.rank() {
        return Err(Error::shape(OP, format!("indices of shape [nnz, {}]", shape.rank()), indices.shape().to_string()));
    }
    let strides = shape.strides();
    let mut offs = Vec::with_capacity(nnz);
    for e in 0..nnz {
        let row = entry(s, cols, e);
        match offset(row, &shape, &strides) {
            Some(o) => offs.push(o),
            None => return Err(bad(OP, SparseIndexProblem::OutOfBounds, e, row, shape.to_string())),
        }
    }
    crate::with_dtype!(values.dtype(), T => {
        let v = values_of::<T>(OP, values, nnz)?;
        let d = default
            .host_slice::<T>(OP)?
            .first()
            .copied()
            .ok_or_else(|| Error::shape(OP, "a rank-0 default value", default.shape().to_string()))?;
        let mut out = alloc::<T>(shape.num_elements());
        if out.len() >= PAR_MIN {
            let c = chunk_len(out.len());
            out.par_chunks_mut(c).for_each(|c| c.fill(d));
        } else {
            out.fill(d);
        }
        for &o in &offs {
            out[o] = T::default();
        }
        for (&o, &x) in offs.iter().zip(v) {
            out[o] = out[o].sum(x);
        }
        Ok(Tensor::from_vec_unchecked(out, shape))
    })
}

// ---- matmul ---------------------------------------------------------------------------------

/// Where each row's entries start, assuming the indices are sorted by row: `None` when
/// they are not (or a row is out of bounds). `m + 1` binary searches when rows are few
/// against the entries, one pass over the entries otherwise.
fn sorted_row_ptr(ix: &[i64], nnz: usize, m: usize) -> Option<Vec<usize>> {
    let row = |e: usize| ix[2 * e];
    let log = (usize::BITS - nnz.leading_zeros()) as usize;
    let mut ptr = Vec::with_capacity(m + 1);
    if m.saturating_mul(log) < nnz {
        for r in 0..=m {
            let (mut lo, mut hi) = (0, nnz);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if row(mid) < r as i64 { lo = mid + 1 } else { hi = mid }
            }
            ptr.push(lo);
        }
        // Each row's range is checked to hold only that row while the row is computed.
        let ok = ptr.first() == Some(&0) && ptr.last() == Some(&nnz) && ptr.windows(2).all(|w| w[0] <= w[1]);
        return ok.then_some(ptr);
    }
    let mut next = 0usize; // rows below `next` have their start
    for e in 0..nnz {
        let r = row(e);
        if r < 0 || r as u64 >= m as u64 || (r as usize) + 1 < next {
            return None;
        }
        while next <= r as usize {
            ptr.push(e);
            next += 1;
        }
    }
    ptr.resize(m + 1, nnz);
    Some(ptr)
}

/// One output row's work: row `r` of the output from entries `lo..hi` (all of row `r`).
#[derive(Clone, Copy)]
struct RowJob<'a, T> {
    r: usize,
    lo: usize,
    hi: usize,
    ix: &'a [i64],
    vals: &'a [T],
    b: &'a [T],
    k: usize,
}

/// The row kernel: `o = sum over entries e in lo..hi of vals[e] * b[col(e), :]`. Columns
/// are done in blocks of `W` held in a local array (registers, for a `W` that fits), so each
/// entry costs one pass over `W` elements of its `b` row and no load or store of `o`; the
/// rest of the row (`n % W`) accumulates in `o`. Returns `false` (with a partial row) when
/// an entry is not in row `r` or its column is not below `k`: the indices were not sorted
/// by row.
#[inline(always)]
fn row_kernel<T: NumK, const W: usize>(job: RowJob<'_, T>, o: &mut [T]) -> bool {
    let RowJob { r, lo, hi, ix, vals, b, k } = job;
    let n = o.len();
    let col = |e: usize| -> Option<usize> {
        let (rr, c) = (ix[2 * e], ix[2 * e + 1]);
        (rr == r as i64 && c >= 0 && (c as u64) < k as u64).then_some(c as usize)
    };
    let mut c0 = 0;
    while c0 + W <= n {
        let mut acc = [T::zero(); W];
        for (e, &v) in (lo..hi).zip(&vals[lo..hi]) {
            let Some(c) = col(e) else { return false };
            let Ok(brow) = <&[T; W]>::try_from(&b[c * n + c0..c * n + c0 + W]) else { return false };
            for (a, &x) in acc.iter_mut().zip(brow) {
                *a = a.add(v.mul(x));
            }
        }
        o[c0..c0 + W].copy_from_slice(&acc);
        c0 += W;
    }
    if c0 < n {
        let o = &mut o[c0..];
        o.fill(T::zero());
        for (e, &v) in (lo..hi).zip(&vals[lo..hi]) {
            let Some(c) = col(e) else { return false };
            for (o, &b) in o.iter_mut().zip(&b[c * n + c0..c * n + n]) {
                *o = o.add(v.mul(b));
            }
        }
    }
    true
}

/// A row kernel for one element type, chosen once per call (by CPU features).
type RowFn<T> = fn(RowJob<'_, T>, &mut [T]) -> bool;

/// Element types `sparse::matmul` runs on, each with its best row kernel for this CPU.
trait SpmmK: NumK + Send + Sync {
    fn row_fn() -> RowFn<Self>;
}

macro_rules! spmm_k {
    ($($t:ty => $w:literal, avx2: $w2:literal, $avx:ident;)*) => {$(
        /// The row kernel compiled for AVX2 (wider blocks: 16 ymm registers).
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx(job: RowJob<'_, $t>, o: &mut [$t]) -> bool {
            row_kernel::<$t, $w2>(job, o)
        }
        impl SpmmK for $t {
            fn row_fn() -> RowFn<$t> {
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 was just detected on this CPU.
                    return |job, o| unsafe { $avx(job, o) };
                }
                row_kernel::<$t, $w>
            }
        }
    )*};
}
spmm_k! {
    f32 => 32, avx2: 64, row_f32_avx2;
    f64 => 16, avx2: 32, row_f64_avx2;
    i32 => 32, avx2: 64, row_i32_avx2;
    i64 => 16, avx2: 32, row_i64_avx2;
    u8 => 64, avx2: 128, row_u8_avx2;
}

/// Runs `f(row, out_row)` over the rows of `out` (width `n > 0`), in parallel when the
/// work (`work` multiply-adds plus the output) is large.
fn for_rows<T: Send>(out: &mut [T], n: usize, work: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if work.saturating_add(out.len()) >= PAR_MIN {
        let rows = out.len() / n;
        let min = (rows / (rayon::current_num_threads() * 16)).max(1);
        out.par_chunks_mut(n).enumerate().with_min_len(min).for_each(|(r, o)| f(r, o));
    } else {
        out.chunks_mut(n).enumerate().for_each(|(r, o)| f(r, o));
    }
}

/// The product when the entries are sorted by row (`None` when they are not).
fn spmm_sorted<T: SpmmK>(ix: &[i64], vals: &[T], b: &[T], m: usize, k: usize, n: usize) -> Option<Vec<T>> {
    let nnz = vals.len();
    let ptr = sorted_row_ptr(ix, nnz, m)?;
    let mut out = alloc::<T>(m * n);
    if n == 0 {
        // No output to write; the rows still have to hold only in-bounds columns.
        let ok = (0..nnz).all(|e| ix[2 * e + 1] >= 0 && (ix[2 * e + 1] as u64) < k as u64);
        return ok.then_some(out);
    }
    let row_fn = T::row_fn();
    let ok = AtomicBool::new(true);
    for_rows(&mut out, n, nnz.saturating_mul(n), |r, o| {
        let job = RowJob { r, lo: ptr[r], hi: ptr[r + 1], ix, vals, b, k };
        if !row_fn(job, o) {
            ok.store(false, Ordering::Relaxed);
        }
    });
    ok.into_inner().then_some(out)
}

fn spmm<T: SpmmK>(ix: &[i64], vals: &[T], b: &[T], m: usize, k: usize, n: usize) -> Result<Vec<T>> {
    const OP: &str = "sparse::matmul";
    if let Some(out) = spmm_sorted(ix, vals, b, m, k, n) {
        return Ok(out);
    }
    // Any order: bounds checked entry by entry (the first bad entry is the error), then a
    // stable counting sort by row into a copy, which takes the sorted path.
    let nnz = vals.len();
    let mut ptr = vec![0usize; m + 1];
    for e in 0..nnz {
        let (r, c) = (ix[2 * e], ix[2 * e + 1]);
        if r < 0 || r as u64 >= m as u64 || c < 0 || c as u64 >= k as u64 {
            return Err(bad(OP, SparseIndexProblem::OutOfBounds, e, entry(ix, 2, e), format!("[{m}, {k}]")));
        }
        ptr[r as usize + 1] += 1;
    }
    for r in 0..m {
        ptr[r + 1] += ptr[r];
    }
    let (mut six, mut svals) = (vec![0i64; 2 * nnz], vec![T::zero(); nnz]);
    for e in 0..nnz {
        let r = ix[2 * e] as usize;
        let at = ptr[r];
        ptr[r] += 1;
        six[2 * at..2 * at + 2].copy_from_slice(&ix[2 * e..2 * e + 2]);
        svals[at] = vals[e];
    }
    spmm_sorted(&six, &svals, b, m, k, n)
        .ok_or_else(|| Error::invalid(OP, "internal: sorted entries did not take the sorted path"))
}

/// `SparseOp::MatMul`: sparse `[m, k]` (`dense`) times dense `b` `[k, n]`.
pub(crate) fn matmul(indices: &Tensor, values: &Tensor, b: &Tensor, dense: &Shape, shape: Shape) -> Result<Tensor> {
    const OP: &str = "sparse::matmul";
    let (ix, nnz, cols) = coo(OP, indices)?;
    let (m, k, n) = match (dense.dims(), b.shape().dims()) {
        (&[m, k], &[kb, n]) if cols == 2 && kb == k && shape.dims() == [m, n] => (m, k, n),
        _ => {
            return Err(Error::shape(
                OP,
                format!("a [m, k] sparse and a [k, n] dense operand (sparse shape {dense})"),
                format!("indices {} and dense {}", indices.shape(), b.shape()),
            ));
        }
    };
    macro_rules! run {
        ($t:ty) => {{
            let vals = values_of::<$t>(OP, values, nnz)?;
            let bs = b.host_slice::<$t>(OP)?;
            Ok(Tensor::from_vec_unchecked(spmm(ix, vals, bs, m, k, n)?, shape))
        }};
    }
    match values.dtype() {
        DType::F32 => run!(f32),
        DType::F64 => run!(f64),
        DType::I32 => run!(i32),
        DType::I64 => run!(i64),
        DType::U8 => run!(u8),
        d @ (DType::F16 | DType::BF16) => {
            use crate::backend::cpu::elementwise::cast;
            let r = matmul(indices, &cast(values, DType::F32)?, &cast(b, DType::F32)?, dense, shape)?;
            cast(&r, d)
        }
        DType::Bool => Err(Error::unsupported(OP, "bool matmul (inference rejects it)")),
    }
}

// ---- reorder / unique / segment_sum ------------------------------------------------------------

/// The stable permutation that sorts the entries into row-major (lexicographic) order.
fn sorted_perm(s: &[i64], nnz: usize, cols: usize) -> Vec<usize> {
    let key = |e: usize| entry(s, cols, e);
    let mut p: Vec<usize> = (0..nnz).collect();
    if nnz >= PAR_MIN {
        p.par_sort_by(|&a, &b| key(a).cmp(key(b)));
    } else {
        p.sort_by(|&a, &b| key(a).cmp(key(b)));
    }
    p
}

/// `SparseReorder`: the sorting permutation, i64 `[nnz]`.
pub(crate) fn reorder(indices: &Tensor) -> Result<Tensor> {
    let (s, nnz, cols) = coo("sparse::reorder", indices)?;
    let p: Vec<i64> = sorted_perm(s, nnz, cols).into_iter().map(|e| e as i64).collect();
    Ok(Tensor::from_vec_unchecked(p, Shape::new(&[nnz])))
}

/// The sorted entries grouped by index: `(first entry of each group in sorted order, the
/// permutation)`, for `unique` and `segment_sum`, which must agree on the groups.
fn groups(s: &[i64], nnz: usize, cols: usize) -> (Vec<usize>, Vec<usize>) {
    let p = sorted_perm(s, nnz, cols);
    let mut starts = Vec::new();
    for (i, &e) in p.iter().enumerate() {
        if i == 0 || entry(s, cols, p[i - 1]) != entry(s, cols, e) {
            starts.push(i);
        }
    }
    (starts, p)
}

/// `SparseUnique`: the distinct indices in row-major order, i64 `[u, rank]`.
pub(crate) fn unique(indices: &Tensor) -> Result<Tensor> {
    let (s, nnz, cols) = coo("sparse::unique", indices)?;
    let (starts, p) = groups(s, nnz, cols);
    let mut out = Vec::with_capacity(starts.len() * cols);
    for &i in &starts {
        out.extend_from_slice(entry(s, cols, p[i]));
    }
    Ok(Tensor::from_vec_unchecked(out, Shape::new(&[starts.len(), cols])))
}

/// `SparseSegmentSum`: the values of each distinct index added up, in `unique`'s order.
pub(crate) fn segment_sum(indices: &Tensor, values: &Tensor) -> Result<Tensor> {
    const OP: &str = "sparse::segment_sum";
    let (s, nnz, cols) = coo(OP, indices)?;
    let (starts, p) = groups(s, nnz, cols);
    crate::with_dtype!(values.dtype(), T => {
        let v = values_of::<T>(OP, values, nnz)?;
        let mut out = Vec::with_capacity(starts.len());
        for (g, &lo) in starts.iter().enumerate() {
            let hi = starts.get(g + 1).copied().unwrap_or(nnz);
            let mut acc = v[p[lo]];
            for &e in &p[lo + 1..hi] {
                acc = acc.sum(v[e]);
            }
            out.push(acc);
        }
        Ok(Tensor::from_vec_unchecked(out, Shape::new(&[starts.len()])))
    })
}

// ---- nonzero --------------------------------------------------------------------------------

/// `SparseOp::NonZero`: the indices of the elements that are not zero (`!= 0`, so NaN is kept and
/// `-0.0` is not; `true` for bool), row-major, i64 `[count, rank]`.
pub(crate) fn nonzero(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "sparse::nonzero";
    let shape = x.shape();
    let rank = shape.rank();
    let strides = shape.strides();
    crate::with_dtype!(x.dtype(), T => {
        let s = x.host_slice::<T>(OP)?;
        let zero = T::default();
        let scan = |base: usize, chunk: &[T]| -> (Vec<i64>, usize) {
            let (mut out, mut count) = (Vec::new(), 0);
            for (j, &v) in chunk.iter().enumerate() {
                if v != zero {
                    let mut rem = base + j;
                    for &st in &strides {
                        out.push((rem / st) as i64);
                        rem %= st;
                    }
                    count += 1;
                }
            }
            (out, count)
        };
        let (coords, count) = if s.len() >= PAR_MIN {
            let c = chunk_len(s.len());
            let parts: Vec<(Vec<i64>, usize)> = s.par_chunks(c).enumerate().map(|(i, ch)| scan(i * c, ch)).collect();
            let count = parts.iter().map(|p| p.1).sum();
            (parts.into_iter().flat_map(|p| p.0).collect(), count)
        } else {
            scan(0, s)
        };
        Ok(Tensor::from_vec_unchecked(coords, Shape::new(&[count, rank])))
    })
}
