//! Batched matmul with transpose flags and broadcast batch dims: the entry points
//! ([`matmul`], [`matmul_epilogue`], [`matmul_accumulate`]) and the plan of a float product,
//! which path each block takes and how the work is split across threads.
//!
//! f32/f64 run the `gemm` crate's packed micro-kernels one block per call ([`gemm`]), each
//! call single-threaded; we split the work across rayon ourselves, in one parallel loop over
//! (matrix, block) tasks:
//! - when the batch spreads evenly over the threads (a multiple of them, or at least 4 per
//!   thread), each matrix is one task;
//! - otherwise each matrix is cut into one block per thread: by columns (widths a multiple of
//!   16; each thread packs only its part of b), or by rows when the product is tall
//!   (`m > 2n`), where a per-thread copy of a would cost more than one of b;
//! - below [`PAR_MACS`] multiply-adds in all, everything runs on the calling thread (waking the
//!   pool costs more than it saves), except while a plan's spinner is awake (`par::join2`):
//!   then from [`SPUN_MACS`] a product splits in two by rows, the half handed over for ~1 µs,
//!   when that leaves each row's bits alone (thin products, and `gemm` products of depth at
//!   most 512: [`rows_split_exactly`]).
//!
//! Thin products (2 to 16 output columns, at least 2 rows: a classifier head) skip `gemm`
//! for [`thin`]'s kernel; integers run the loops of [`int`]. F16 and BF16 compute in f32.
//!
//! Invariant: a product's bits do not depend on its operands' layout. Transposed operands
//! are read through strides (the kernels' packing does the transpose), with one exception:
//! where `gemm` picks its kernel by the operands' strides as well as the shape (a block with
//! `k <= 2` or at most 256 outputs), the block's operands are copied row-major first
//! ([`gemm::gemm_block`]), and single rows and columns keep their transposes in the
//! optimizer ([`flags_are_exact`]). The optimizer folds transposes into the flags, and
//! traced code must equal eager bit for bit; for the same reason a split over an awake
//! spinner only cuts rows that round the same either way ([`rows_split_exactly`]).
//!
//! The measurements behind these choices (the kernels and splits tried, and their figures)
//! are in the book, chapter "How the CPU matmul was tuned" (`book/src/cpu-matmul.md`).

use rayon::prelude::*;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::alloc;

mod accumulate;
mod gemm;
mod int;
mod thin;

pub(crate) use accumulate::matmul_accumulate;
pub(crate) use gemm::Gemm;
use int::int_mm;
use thin::{ThinJob, is_thin, thin_mm};

/// Geometry of one (possibly transposed) matrix operand in row-major storage.
#[derive(Clone, Copy, Debug)]
struct Mat {
    rows: usize,
    cols: usize,
    /// Element stride between rows / columns of the logical (transposed) matrix.
    rs: usize,
    cs: usize,
}

fn operand(shape: &Shape, transposed: bool) -> Mat {
    let r = shape.rank();
    let (a, b) = (shape[r - 2], shape[r - 1]);
    if transposed { Mat { rows: b, cols: a, rs: 1, cs: b } } else { Mat { rows: a, cols: b, rs: b, cs: 1 } }
}

/// Offsets (in elements) of each output batch into a and b, following broadcasting.
fn batch_offsets(a: &Shape, b: &Shape, out: &Shape) -> Vec<(usize, usize)> {
    let ob = &out[..out.rank() - 2];
    let nb: usize = ob.iter().product();
    let mat = |s: &Shape| s[s.rank() - 2] * s[s.rank() - 1];
    let strides = |s: &Shape| -> Vec<usize> {
        let bd = &s[..s.rank() - 2];
        let mut st = vec![0; ob.len()];
        let mut acc = mat(s);
        for i in (0..bd.len()).rev() {
            let o = i + ob.len() - bd.len();
            st[o] = if bd[i] == 1 { 0 } else { acc };
            acc *= bd[i];
        }
        st
    };
    let (sa, sb) = (strides(a), strides(b));
    (0..nb)
        .map(|mut i| {
            let (mut oa, mut obb) = (0, 0);
            for d in (0..ob.len()).rev() {
                let k = i % ob[d];
                i /= ob[d];
                oa += k * sa[d];
                obb += k * sb[d];
            }
            (oa, obb)
        })
        .collect()
}

/// The least rows or columns of a block that splits a matrix (the last one takes in a
/// smaller remainder): a block never has a single row or column unless its matrix does.
const MIN_BLOCK: usize = 16;

/// Block `j` of `len` rows or columns cut every `size`, as (start, length): a remainder under
/// [`MIN_BLOCK`] joins the block before it; length 0 past the end.
fn cut(len: usize, size: usize, j: usize) -> (usize, usize) {
    let mut count = len.div_ceil(size);
    if count > 1 && len - (count - 1) * size < MIN_BLOCK {
        count -= 1;
    }
    if j >= count {
        return (len, 0);
    }
    let start = j * size;
    (start, if j + 1 == count { len - start } else { size })
}

/// Whether an m×k·k×n float product rounds the same for every operand layout, so that a
/// transpose folded into a flag gives the very same bits: when it has at least 2 rows and 2
/// columns (blocks then do too, see [`cut`]). Single rows and columns run `gemm`'s gemv
/// kernels, which differ per layout. Unknown dims (`UNKNOWN`) must be ruled out by the
/// caller.
pub(crate) fn flags_are_exact(m: usize, _k: usize, n: usize) -> bool {
    m > 1 && n > 1
}

/// Minimum multiply-adds before work goes to the pool (all matrices together) or one matrix
/// is split across threads: about 160³, ~35 µs on one core; below that, waking the pool costs
/// more than it saves (measured: 128² serial 19 µs, split 32-35 µs median).
const PAR_MACS: usize = 1 << 22;

/// Whether `gemm` rounds each row of an m×k·k×n product the same when the rows are cut in
/// two: on its packed kernels (more than 256 outputs per half, k > 2, n > 1) each output
/// sums its whole depth in one pass, in order, when k fits one depth block (`gemm` takes
/// blocks of at least 512).
fn rows_split_exactly(m: usize, k: usize, n: usize) -> bool {
    (3..=512).contains(&k) && n >= 2 && (m / 2) * n > 256
}

/// Minimum multiply-adds for a product to split across a plan's awake spinner: below ~2 µs
/// of work a half saves less than the hand-off costs.
const SPUN_MACS: usize = 1 << 17;

/// The output buffer's base pointer, shared by tasks that write disjoint blocks of it.
#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);
// SAFETY: only used to hand disjoint blocks of one buffer to rayon tasks (see `float_mm`).
unsafe impl<T: Send> Send for OutPtr<T> {}
// SAFETY: as above; no two tasks touch the same element.
unsafe impl<T: Send> Sync for OutPtr<T> {}
impl<T> OutPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

fn float_mm<T: Gemm>(x: &[T], y: &[T], ma: Mat, mb: Mat, offs: &[(usize, usize)]) -> Vec<T> {
    let mut out = alloc::<T>(offs.len() * ma.rows * mb.cols);
    if ma.cols == 0 {
        // The pool may hand back a dirty buffer.
        out.fill(T::default());
        return out;
    }
    float_mm_into(&mut out, x, y, ma, mb, offs, None, None);
    out
}

/// A fused epilogue, run over each finished block of a product's output by the thread that
/// computed it, while the block is in cache: called with a contiguous run of the output,
/// the run's flat offset in the output, and scratch space the epilogue may keep between
/// calls.
pub(crate) type Epilogue<'a, T> = &'a (dyn Fn(usize, &mut [T], &mut Vec<T>) + Sync);

/// The products into `out` (`nb` m×n matrices): written, or with `acc = Some(beta)` added
/// as `out += beta · a · b`; then `epi`, if any, over each block.
#[allow(clippy::too_many_arguments)]
fn float_mm_into<T: Gemm>(
    out: &mut [T],
    x: &[T],
    y: &[T],
    ma: Mat,
    mb: Mat,
    offs: &[(usize, usize)],
    acc: Option<T>,
    epi: Option<Epilogue<'_, T>>,
) {
    let (m, k, n, nb) = (ma.rows, ma.cols, mb.cols, offs.len());
    if m * n == 0 || k == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let macs = m * n * k;
    // Blocks per matrix: 1 when the batch alone spreads evenly (or the matrices are too small
    // to split), else one per thread.
    // A product below PAR_MACS still splits in two by rows while a plan's spinner is awake
    // (see `par::join2`): handing it half costs ~1 µs, not a wake-up. Only where each row's
    // bits do not depend on its block: eager code, with no spinner, runs it whole.
    let spun = nb == 1
        && (SPUN_MACS..PAR_MACS).contains(&macs)
        && m >= 2 * MIN_BLOCK
        && (is_thin(m, n) || rows_split_exactly(m, k, n))
        && super::par::spinner_awake();
    let split = if spun {
        2
    } else if macs < PAR_MACS || nb % threads == 0 || nb >= 4 * threads {
        1
    } else {
        threads
    };
    // Columns unless the product is tall (see the module docs): 1024², quiet, 4.47 ms by
    // columns against 4.67 ms by rows.
    // Blocks of at least MIN_BLOCK rows or columns (see `flags_are_exact`).
    let by_rows = spun || m > 2 * n;
    let (h, w) = if by_rows {
        (m.div_ceil(split).max(MIN_BLOCK), n)
    } else {
        (m, n.div_ceil(split).next_multiple_of(MIN_BLOCK))
    };
    let base = OutPtr(out.as_mut_ptr());
    let task = |t: usize| {
        let (bi, j) = (t / split, t % split);
        let ((r0, rows), (c0, cols)) = if by_rows { (cut(m, h, j), (0, n)) } else { ((0, m), cut(n, w, j)) };
        if rows == 0 || cols == 0 {
            return;
        }
        let (oa, ob) = offs[bi];
        // SAFETY: inference checked that a holds an m×k operand at offset oa and b a k×n
        // operand at ob for every batch, so rows r0..r0+rows of a and columns c0..c0+cols of b
        // are in bounds; `out` holds nb m×n matrices and this block lies inside matrix bi;
        // blocks of different tasks are disjoint, and `out` is not otherwise touched until
        // every task has finished. k >= 1 here.
        unsafe {
            let (a, b, c) = (
                x.as_ptr().add(oa + r0 * ma.rs),
                y.as_ptr().add(ob + c0 * mb.cs),
                base.get().add(bi * m * n + r0 * n + c0),
            );
            if is_thin(rows, cols) {
                let job = ThinJob { m: rows, k, n: cols, a, ar: ma.rs, ac: ma.cs, c, rsc: n, beta: acc };
                thin_mm(job, b, mb.rs, mb.cs)
            } else {
                gemm::gemm_block(rows, k, cols, (a, ma.rs, ma.cs), (b, mb.rs, mb.cs), c, n, acc)
            }
        }
        if let Some(epi) = epi {
            let mut scratch = Vec::new();
            let at = bi * m * n + r0 * n + c0;
            // SAFETY: as above, the runs lie inside this task's block, which no other task
            // touches; the product above has finished writing them.
            unsafe {
                if cols == n {
                    epi(at, std::slice::from_raw_parts_mut(base.get().add(at), rows * n), &mut scratch);
                } else {
                    for i in 0..rows {
                        let at = at + i * n;
                        epi(at, std::slice::from_raw_parts_mut(base.get().add(at), cols), &mut scratch);
                    }
                }
            }
        }
    };
    if spun || (threads > 1 && nb * macs >= PAR_MACS && nb * split > 1) {
        if rayon::current_thread_index().is_none() && nb * split == 2 {
            // Called from outside the pool (a user's thread): compute one block here while a
            // pool worker (a plan's spinner, if awake) takes the other, instead of blocking
            // this thread on both. The pool's workers sleep between ops, and waking one (and
            // then this thread) costs tens of µs on every product of a training step.
            super::par::join2(|| task(0), || task(1));
        } else {
            (0..nb * split).into_par_iter().for_each(task);
        }
    } else {
        (0..nb * split).for_each(task);
    }
}

/// A float product with a fused elementwise epilogue run block by block (see
/// [`Epilogue`]): the epilogue must map each element of the product in place, whatever
/// the runs it is handed.
pub(crate) fn matmul_epilogue<T: Gemm>(
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
    shape: Shape,
    epi: Epilogue<'_, T>,
) -> Result<Tensor> {
    let (ma, mb) = (operand(a.shape(), ta), operand(b.shape(), tb));
    let offs = batch_offsets(a.shape(), b.shape(), &shape);
    let (x, y) = (a.host_slice::<T>("matmul")?, b.host_slice::<T>("matmul")?);
    let mut out = alloc::<T>(offs.len() * ma.rows * mb.cols);
    if ma.cols == 0 {
        // No block runs: zeros (the pool may hand back a dirty buffer), then the epilogue.
        out.fill(T::default());
        epi(0, &mut out, &mut Vec::new());
    } else {
        float_mm_into(&mut out, x, y, ma, mb, &offs, None, Some(epi));
    }
    Ok(Tensor::from_vec_unchecked(out, shape))
}

pub(crate) fn matmul(a: &Tensor, b: &Tensor, ta: bool, tb: bool, shape: Shape) -> Result<Tensor> {
    let (ma, mb) = (operand(a.shape(), ta), operand(b.shape(), tb));
    let offs = batch_offsets(a.shape(), b.shape(), &shape);
    match a.dtype() {
        DType::F32 => Ok(Tensor::from_vec_unchecked(
            float_mm(a.host_slice::<f32>("matmul")?, b.host_slice::<f32>("matmul")?, ma, mb, &offs),
            shape,
        )),
        DType::F64 => Ok(Tensor::from_vec_unchecked(
            float_mm(a.host_slice::<f64>("matmul")?, b.host_slice::<f64>("matmul")?, ma, mb, &offs),
            shape,
        )),
        DType::I32 => Ok(Tensor::from_vec_unchecked(
            int_mm(a.host_slice::<i32>("matmul")?, b.host_slice::<i32>("matmul")?, ma, mb, &offs),
            shape,
        )),
        DType::I64 => Ok(Tensor::from_vec_unchecked(
            int_mm(a.host_slice::<i64>("matmul")?, b.host_slice::<i64>("matmul")?, ma, mb, &offs),
            shape,
        )),
        DType::U8 => Ok(Tensor::from_vec_unchecked(
            int_mm(a.host_slice::<u8>("matmul")?, b.host_slice::<u8>("matmul")?, ma, mb, &offs),
            shape,
        )),
        d @ (DType::F16 | DType::BF16) => {
            let (wa, wb) = (super::elementwise::cast(a, DType::F32)?, super::elementwise::cast(b, DType::F32)?);
            let r = matmul(&wa, &wb, ta, tb, shape)?;
            super::elementwise::cast(&r, d)
        }
        DType::Bool => Err(Error::unsupported("matmul", "bool matmul (inference rejects it)")),
    }
}

#[cfg(test)]
mod tests {
    //! Through the entry points, against a naive reference: every path (thin, `gemm` with
    //! and without row-major copies, integers, f16), the splits across threads and an awake
    //! spinner, layout-blindness of the bits, and the block epilogue.

    use half::f16;

    use super::{MIN_BLOCK, PAR_MACS, SPUN_MACS, cut, flags_are_exact, is_thin, matmul_epilogue, rows_split_exactly};
    use crate::dtype::Element;
    use crate::tensor::Tensor;

    /// Small pseudo-random integers in lo..hi: float results are exact in any summation order.
    fn vals(len: usize, seed: u64, lo: i64, hi: i64) -> Vec<i64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                lo + (s % (hi - lo) as u64) as i64
            })
            .collect()
    }

    /// Naive batched `op(a) @ op(b)` with broadcast batch dims, from the stored shapes.
    fn naive(a: &[i64], sa: &[usize], b: &[i64], sb: &[usize], ta: bool, tb: bool) -> (Vec<usize>, Vec<i64>) {
        let (ra, rb) = (sa.len(), sb.len());
        let (m, k) = if ta { (sa[ra - 1], sa[ra - 2]) } else { (sa[ra - 2], sa[ra - 1]) };
        let n = if tb { sb[rb - 2] } else { sb[rb - 1] };
        let (ba, bb) = (&sa[..ra - 2], &sb[..rb - 2]);
        let nd = ba.len().max(bb.len());
        let dim = |s: &[usize], d: usize| if d + s.len() >= nd { s[d + s.len() - nd] } else { 1 };
        let ob: Vec<usize> = (0..nd).map(|d| if dim(ba, d) == 1 { dim(bb, d) } else { dim(ba, d) }).collect();
        let mut out = Vec::new();
        for t in 0..ob.iter().product::<usize>() {
            // Batch index of a and b for output batch t (broadcast dims read index 0).
            let (mut ia, mut ib, mut rest) = (0, 0, t);
            let (mut wa, mut wb) = (1, 1);
            for d in (0..nd).rev() {
                let i = rest % ob[d];
                rest /= ob[d];
                let (da, db) = (dim(ba, d), dim(bb, d));
                ia += if da == 1 { 0 } else { i * wa };
                ib += if db == 1 { 0 } else { i * wb };
                wa *= da;
                wb *= db;
            }
            let (pa, pb) = (&a[ia * m * k..], &b[ib * k * n..]);
            for i in 0..m {
                for j in 0..n {
                    let mut acc = 0i64;
                    for p in 0..k {
                        let av = if ta { pa[p * m + i] } else { pa[i * k + p] };
                        let bv = if tb { pb[j * k + p] } else { pb[p * n + j] };
                        acc += av * bv;
                    }
                    out.push(acc);
                }
            }
        }
        let mut shape = ob;
        shape.extend([m, n]);
        (shape, out)
    }

    #[allow(clippy::too_many_arguments)]
    fn check<T: Element>(
        sa: &[usize],
        sb: &[usize],
        ta: bool,
        tb: bool,
        to: fn(i64) -> T,
        back: fn(T) -> i64,
        norm: fn(i64) -> i64,
        lo: i64,
    ) {
        let (na, nb): (usize, usize) = (sa.iter().product(), sb.iter().product());
        let (a, b) = (vals(na, 1 + na as u64, lo, 4), vals(nb, 2 + nb as u64, lo, 4));
        let ta_ = Tensor::from_vec(a.iter().map(|&v| to(v)).collect(), sa).unwrap();
        let tb_ = Tensor::from_vec(b.iter().map(|&v| to(v)).collect(), sb).unwrap();
        let r = crate::matmul_with(&ta_, &tb_, ta, tb).unwrap();
        let (shape, want) = naive(&a, sa, &b, sb, ta, tb);
        let case = format!("{:?} {sa:?}{} x {sb:?}{}", T::DTYPE, if ta { "ᵀ" } else { "" }, if tb { "ᵀ" } else { "" });
        assert_eq!(&r.shape()[..], &shape[..], "{case}");
        let got: Vec<i64> = r.host_slice::<T>("test").unwrap().iter().map(|&v| back(v)).collect();
        let want: Vec<i64> = want.into_iter().map(norm).collect();
        if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
            panic!("{case}: element {i}: got {} want {}", got[i], want[i]);
        }
    }

    /// (stored a shape, stored b shape, transpose a, transpose b).
    fn cases() -> Vec<(Vec<usize>, Vec<usize>, bool, bool)> {
        let mut c: Vec<(Vec<usize>, Vec<usize>, bool, bool)> = Vec::new();
        // (m, k, n) in all four transpose combinations: tiny, odd, around kernel and block
        // edges, and large enough (> PAR_MACS) for the split paths, by columns and (tall) by rows.
        let mkn = [
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 9),
            (1, 64, 33),
            (33, 7, 1),
            (15, 16, 17),
            (47, 49, 48),
            (63, 65, 64),
            (161, 170, 163),
            (257, 200, 129),
            (33, 300, 513),
            (2, 1500, 1500),
            (700, 100, 80),
            // Thin products (`thin_mm`): every column count up to THIN, row blocks with
            // remainders, and one split across threads by rows.
            (9, 20, 2),
            (13, 7, 16),
            (130, 256, 10),
            (3001, 150, 10),
        ];
        for (m, k, n) in mkn {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let sa = if ta { vec![k, m] } else { vec![m, k] };
                let sb = if tb { vec![n, k] } else { vec![k, n] };
                c.push((sa, sb, ta, tb));
            }
        }
        c.extend([
            (vec![2, 1, 3, 4], vec![5, 4, 2], false, false),
            (vec![2, 1, 4, 3], vec![5, 2, 4], true, true),
            (vec![4, 3], vec![2, 3, 3, 5], false, false),
            // A batch that does not spread evenly over the threads: matrices split too.
            (vec![3, 200, 110], vec![3, 110, 210], false, false),
            (vec![3, 210, 110], vec![110, 200], false, false),
            (vec![3, 600, 90], vec![120, 90], false, true),
            // A batch that does: one task per matrix.
            (vec![8, 64, 64], vec![8, 64, 64], false, true),
            // Empty: k = 0 (zeros), m = 0, n = 0, empty batch.
            (vec![3, 0], vec![0, 4], false, false),
            (vec![2, 300, 0], vec![0, 300], false, false),
            (vec![0, 5], vec![5, 3], false, false),
            (vec![4, 5], vec![5, 0], false, false),
            (vec![0, 4, 5], vec![5, 3], false, false),
        ]);
        c
    }

    #[test]
    fn matmul_matches_naive_f32() {
        for (sa, sb, ta, tb) in cases() {
            check::<f32>(&sa, &sb, ta, tb, |v| v as f32, |v| v as i64, |v| v, -4);
        }
    }

    #[test]
    fn matmul_matches_naive_f64() {
        for (sa, sb, ta, tb) in cases() {
            check::<f64>(&sa, &sb, ta, tb, |v| v as f64, |v| v as i64, |v| v, -4);
        }
    }

    #[test]
    fn matmul_matches_naive_i32() {
        for (sa, sb, ta, tb) in cases() {
            check::<i32>(&sa, &sb, ta, tb, |v| v as i32, |v| v as i64, |v| v, -4);
        }
    }

    #[test]
    fn matmul_matches_naive_other_dtypes() {
        for (sa, sb, ta, tb) in cases().into_iter().filter(|c| c.0.iter().product::<usize>() < 5000) {
            check::<i64>(&sa, &sb, ta, tb, |v| v, |v| v, |v| v, -4);
            // u8 wraps, as the reference does mod 256.
            check::<u8>(&sa, &sb, ta, tb, |v| v as u8, |v| v as i64, |v| v.rem_euclid(256), 0);
            // f16 computes in f32 and rounds once; these sums stay exact in f16 (< 2048).
            check::<f16>(&sa, &sb, ta, tb, |v| f16::from_f32(v as f32), |v| v.to_f32() as i64, |v| v, -4);
        }
    }

    #[test]
    fn matmul_overwrites_reused_buffers() {
        // The pool hands back dirty buffers: k = 0 must still give zeros, and a product must
        // not accumulate into old contents.
        for _ in 0..3 {
            let a = Tensor::from_vec(vec![1.0f32; 512 * 512], &[512, 512]).unwrap();
            let r = crate::matmul(&a, &a).unwrap();
            assert!(r.host_slice::<f32>("test").unwrap().iter().all(|&v| v == 512.0));
            drop(r);
            let z = crate::matmul(
                Tensor::from_vec(Vec::<f32>::new(), &[512, 0]).unwrap(),
                Tensor::from_vec(Vec::<f32>::new(), &[0, 512]).unwrap(),
            )
            .unwrap();
            assert!(z.host_slice::<f32>("test").unwrap().iter().all(|&v| v == 0.0));
        }
    }

    /// Non-integer values in [-1, 1): sums round, so a change of summation order shows.
    #[test]
    fn products_split_on_an_awake_spinner_keep_their_bits() {
        // A plan's spinner makes small products split by rows (`spun`); eager code, without
        // it, runs them whole: both must round the same. The reference runs inside a
        // one-thread pool, where nothing splits. Thin products (`thin_mm`), then `gemm`'s
        // packed kernels at depths up to one depth block, with odd row counts and both
        // transposes (the MLP's `dh` is 128x10 . (256x10)^T).
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let cases = [
            (128, 256, 10, false, false),
            (256, 128, 10, true, false),
            (130, 1100, 3, false, false),
            (40, 4000, 16, true, false),
            (128, 10, 256, false, true),
            (128, 3, 512, false, false),
            (97, 64, 100, true, true),
            (300, 300, 40, false, true),
            (64, 512, 33, true, false),
            (1000, 17, 20, false, false),
        ];
        for (m, k, n, ta, tb) in cases {
            let macs = m * k * n;
            assert!((SPUN_MACS..PAR_MACS).contains(&macs), "{m}x{k}x{n} would not split");
            assert!(is_thin(m, n) || rows_split_exactly(m, k, n), "{m}x{k}x{n} would not split");
            let (a, b) = (floats(m * k, 3), floats(k * n, 4));
            let (a, b): (Vec<f32>, Vec<f32>) =
                (a.iter().map(|&v| v as f32).collect(), b.iter().map(|&v| v as f32).collect());
            let (a, b) = (stored(&a, m, k, ta), stored(&b, k, n, tb));
            let bits =
                |t: Tensor| -> Vec<u32> { t.host_slice::<f32>("test").unwrap().iter().map(|v| v.to_bits()).collect() };
            let want = bits(one.install(|| crate::matmul_with(&a, &b, ta, tb)).unwrap());
            let _awake = crate::backend::cpu::par::KeepAwake::start();
            assert_eq!(bits(crate::matmul_with(&a, &b, ta, tb).unwrap()), want, "{m}x{k}x{n} ta {ta} tb {tb}");
        }
        // Deeper than one depth block, `gemm` may cut the depth by the block's shape.
        assert!(!rows_split_exactly(128, 513, 64));
    }

    fn floats(len: usize, seed: u64) -> Vec<f64> {
        vals(len, seed, -1 << 20, 1 << 20).into_iter().map(|v| v as f64 / (1 << 20) as f64 + 1.0 / 3.0).collect()
    }

    /// The stored form of a logical r×c matrix: as is, or transposed (c×r) for a flag.
    fn stored<T: Element>(v: &[T], r: usize, c: usize, transposed: bool) -> Tensor {
        if transposed {
            let t: Vec<T> = (0..c * r).map(|i| v[(i % r) * c + i / r]).collect();
            Tensor::from_vec(t, &[c, r]).unwrap()
        } else {
            Tensor::from_vec(v.to_vec(), &[r, c]).unwrap()
        }
    }

    /// Whether the product's bits are the same for all four layouts of its operands.
    fn layout_blind<T: Element>(m: usize, k: usize, n: usize, to: fn(f64) -> T) -> bool {
        let (a, b) = (floats(m * k, (m * k) as u64), floats(k * n, (k * n + 7) as u64));
        let (a, b): (Vec<T>, Vec<T>) = (a.into_iter().map(to).collect(), b.into_iter().map(to).collect());
        let bits = |ta: bool, tb: bool| -> Vec<u64> {
            let r = crate::matmul_with(stored(&a, m, k, ta), stored(&b, k, n, tb), ta, tb).unwrap();
            r.host_slice::<T>("test").unwrap().iter().map(|v| v.to_f64().to_bits()).collect()
        };
        let want = bits(false, false);
        [(true, false), (false, true), (true, true)].into_iter().all(|(ta, tb)| bits(ta, tb) == want)
    }

    #[test]
    fn products_that_allow_folded_flags_do_not_depend_on_operand_layout() {
        // The optimizer folds transposes into the flags of these shapes and traced code must
        // equal eager bit for bit: gemm's dot-product kernel (tiny outputs; 2x3x2 is the case
        // the traced-vs-eager property found), its outer-product kernel (k <= 2), its packed
        // path, and products split across threads by columns and by rows, with remainders
        // that join the block before them.
        let mkn = [
            (2, 3, 2),
            (3, 2, 5),
            (40, 1, 30),
            (16, 100, 16),
            (5, 700, 3),
            (17, 33, 19),
            (64, 129, 65),
            (128, 300, 10),
            (200, 64, 150),
            (300, 700, 90),
            (60, 3000, 33),
            (241, 3000, 18),
            (35, 8000, 17),
            (3001, 150, 10),
            (9, 1, 2),
            // The MLP step's forward and weight gradient (split by columns and by rows).
            (128, 784, 256),
            (784, 128, 256),
        ];
        for (m, k, n) in mkn {
            assert!(flags_are_exact(m, k, n), "{m}x{k}x{n}");
            assert!(layout_blind::<f32>(m, k, n, |v| v as f32), "f32 {m}x{k}x{n}");
            assert!(layout_blind::<f64>(m, k, n, |v| v), "f64 {m}x{k}x{n}");
        }
        // Single rows and columns (gemv) keep their transposes in the optimizer.
        for (m, k, n) in [(1, 300, 200), (200, 300, 1), (1, 5, 1)] {
            assert!(!flags_are_exact(m, k, n), "{m}x{k}x{n}");
        }
    }

    #[test]
    fn a_block_epilogue_maps_every_element_once() {
        // Split by columns, by rows, batched, serial, thin and k = 0: the epilogue (+1 and a
        // count of the elements it saw) must see each output element exactly once.
        for (sa, sb) in [
            (vec![128, 784], vec![784, 256]),
            (vec![784, 128], vec![128, 256]),
            (vec![3, 200, 110], vec![3, 110, 210]),
            (vec![8, 64, 64], vec![8, 64, 64]),
            (vec![17, 33], vec![33, 9]),
            (vec![130, 256], vec![256, 10]),
            (vec![5, 0], vec![0, 7]),
        ] {
            let a = Tensor::from_vec(floats(sa.iter().product(), 1).iter().map(|&v| v as f32).collect(), &sa).unwrap();
            let b = Tensor::from_vec(floats(sb.iter().product(), 2).iter().map(|&v| v as f32).collect(), &sb).unwrap();
            let want = crate::matmul(&a, &b).unwrap();
            let seen = std::sync::atomic::AtomicUsize::new(0);
            let epi = |_: usize, run: &mut [f32], _: &mut Vec<f32>| {
                seen.fetch_add(run.len(), std::sync::atomic::Ordering::Relaxed);
                run.iter_mut().for_each(|v| *v += 1.0);
            };
            let got = matmul_epilogue(&a, &b, false, false, want.shape().clone(), &epi).unwrap();
            let (got, want) = (got.host_slice::<f32>("test").unwrap(), want.host_slice::<f32>("test").unwrap());
            assert_eq!(seen.into_inner(), want.len(), "{sa:?} x {sb:?}");
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert_eq!(g.to_bits(), (w + 1.0).to_bits(), "{sa:?} x {sb:?}: element {i}");
            }
        }
    }

    #[test]
    fn blocks_cover_each_row_once_and_keep_a_minimum_size() {
        for len in [1, 15, 16, 17, 33, 100, 241, 1000] {
            for size in [16, 32, 121, 500] {
                let blocks: Vec<(usize, usize)> = (0..70).map(|j| cut(len, size, j)).filter(|b| b.1 > 0).collect();
                let mut next = 0;
                for &(start, l) in &blocks {
                    assert_eq!(start, next, "len {len} size {size}");
                    assert!(l >= MIN_BLOCK.min(len), "len {len} size {size}: block of {l}");
                    next += l;
                }
                assert_eq!(next, len, "len {len} size {size}");
            }
        }
    }
}
