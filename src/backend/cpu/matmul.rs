//! Batched matmul with transpose flags and broadcast batch dims.
//!
//! f32/f64 run the `gemm` crate's packed micro-kernels (runtime-detected AVX-512 / AVX2+FMA,
//! portable fallback elsewhere), each call single-threaded (`Parallelism::None`); we split the
//! work across rayon ourselves, in one parallel loop over (matrix, block) tasks:
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
//! Thin products (2 to 16 output columns, at least 2 rows: a classifier head) skip `gemm`:
//! [`thin_mm`] keeps a row's columns in the lanes of one vector, 8 rows at a time, and sums
//! each output over `k` in order with fused multiply-adds, whatever the operand strides
//! (`gemm` ran them on its 16-row kernel with the output transposed, 10 of 16 lanes busy for
//! 10 classes). MLP step, one thread: [128, 256] x [256, 10] 8.8 -> 5.8 µs, [256, 128] x
//! [128, 10] (transposed a) 9.0 -> 5.7 µs.
//!
//! Transposed operands are read through strides: the kernels' packing does the transpose, no
//! transposed copy is made, with one exception. For a single row or column, `k <= 2` or at
//! most 256 outputs, `gemm` picks its kernel by the operands' strides as well as the shape,
//! so the bits of a product would change with the layout; the optimizer folds transposes
//! into the flags, and traced code must equal eager bit for bit. So a block with `k <= 2` or
//! at most 256 outputs gets its operands copied row-major first (cheap next to its
//! products), and the optimizer leaves the transposes of single rows and columns alone (a
//! copy there would cost as much as the product; see [`flags_are_exact`]).
//!
//! ## Why this choice (measured)
//! f32, 2 threads, on a quiet moment of a machine otherwise shared with other builds; an
//! interleaved harness (every option once per round, medians over ~300 rounds at 1024², ~15k
//! at 256²), ndarray's single-threaded `dot` in the same run:
//!
//! | option | 256² | 1024² |
//! |---|---|---|
//! | ndarray `dot`, 1 thread (baseline) | 168 µs (200 GFLOP/s) | 10.6 ms (202) |
//! | (a) matrixmultiply, rows split by hand (previous kernel) | 105 µs (320) | 5.71 ms (376) |
//! | (e) matrixmultiply, columns split by hand | 101 µs (332) | 5.44 ms (395) |
//! | (b) `gemm`, 1 thread | 135 µs (248) | 8.86 ms (242) |
//! | (b) `gemm`, its own `Parallelism::Rayon(2)` | 80 µs (419) | 4.49 ms (478) |
//! | (b)+(e) `gemm` 1 thread per hand-split column block (chosen) | 87 µs (385) | 4.47 ms (480) |
//! | (c) matrixmultiply `threading` feature, 2 threads (separate build; min) | 134 µs (251) | 6.32 ms (340) |
//!
//! `cargo bench --bench matmul` on the final code: 256² 84 µs (400 GFLOP/s) and 1024²
//! 4.55 ms (472) against ndarray's 167 µs (200) and 10.1 ms (213) in the same run.
//!
//! The machine was a Zen 5 (family 1Ah) with full-width AVX-512 FMA: `gemm`'s AVX-512 kernels
//! (crate feature `x86-v4`) matter there: without it `gemm` runs AVX2 only, 128 GFLOP/s on one
//! core against matrixmultiply's AVX-512 200 and `gemm`-v4's 250. `gemm`'s own threading tied
//! with the hand split when the machine was quiet and was a little slower when the other core
//! was busy; the hand split also puts batches and blocks in one parallel loop. More blocks per
//! thread (work stealing) measured slower (1024²: 4.80 vs 4.37 ms in one run). (c) would also make every ndarray
//! `dot` in the process multi-threaded and runs its own thread pool beside rayon. (d) a
//! hand-written kernel was not needed: the chosen path runs at ~95% of twice `gemm`'s one-thread
//! speed.
//! On one thread `gemm` beats ndarray from 48² up (48²: 1.6 vs 1.8 µs; 192²: 59 vs 72 µs).

use gemm::Parallelism;
use rayon::prelude::*;

use super::num::NumK;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::{Buffer, alloc};

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

pub(crate) trait Gemm: Element + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> {
    /// `self * b + c` with one rounding.
    fn mul_add(self, b: Self, c: Self) -> Self;

    /// `c[m×n] = a[m×k] · b[k×n]` on the calling thread, with element strides for a and b
    /// and row stride `rsc` (column stride 1) for c. c is overwritten, never read; with
    /// `acc = Some(beta)`, `c += beta · a · b` instead (c is read).
    ///
    /// # Safety
    /// The pointers must cover the described matrices, `k >= 1`, and c must not overlap a or b
    /// (nor be written by anyone else during the call).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        ar: usize,
        ac: usize,
        b: *const Self,
        br: usize,
        bc: usize,
        c: *mut Self,
        rsc: usize,
        acc: Option<Self>,
    );
}

macro_rules! impl_gemm {
    ($t:ty) => {
        impl Gemm for $t {
            #[inline(always)]
            fn mul_add(self, b: $t, c: $t) -> $t {
                <$t>::mul_add(self, b, c)
            }
            unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: *const $t,
                ar: usize,
                ac: usize,
                b: *const $t,
                br: usize,
                bc: usize,
                c: *mut $t,
                rsc: usize,
                acc: Option<$t>,
            ) {
                // Strides are element counts of in-bounds buffers, so they fit in isize.
                let s = |x: usize| x as isize;
                // SAFETY: forwarded from the caller. `gemm` computes
                // dst = alpha·dst + beta·lhs·rhs; with read_dst = false dst is only written.
                let (read, alpha, beta) = match acc {
                    Some(beta) => (true, 1.0, beta),
                    None => (false, 0.0, 1.0),
                };
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c,
                        1,
                        s(rsc),
                        read,
                        a,
                        s(ac),
                        s(ar),
                        b,
                        s(bc),
                        s(br),
                        alpha,
                        beta,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    )
                }
            }
        }
    };
}
impl_gemm!(f32);
impl_gemm!(f64);

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

/// A rows×cols view at strides (rs, cs) as a row-major one: `(pointer, row stride)` with
/// column stride 1, copied into `buf` unless its elements already lie so. A single row or
/// column is re-strided, never copied, and gets the row stride a dense copy would have:
/// `gemm` tests strides against 1, so equal data must come with equal tests.
///
/// # Safety
/// `p` must cover the view.
unsafe fn row_major<T: Copy>(
    p: *const T,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    buf: &mut Vec<T>,
) -> (*const T, usize) {
    if rows == 1 && (cs == 1 || cols == 1) {
        return (p, cols);
    }
    if cols == 1 && rs == 1 {
        return (p, 1);
    }
    if cs == 1 && cols > 1 {
        return (p, rs);
    }
    // SAFETY (all reads): every (r, c) < (rows, cols) lies inside the view (caller).
    buf.reserve(rows * cols);
    for r in 0..rows {
        buf.extend((0..cols).map(|c| unsafe { *p.add(r * rs + c * cs) }));
    }
    (buf.as_ptr(), cols)
}

/// Widest product (columns of the output) that [`thin_mm`] computes instead of `gemm`.
const THIN: usize = 16;
/// Rows of a [`thin_mm`] block: 8 accumulators of `THIN` lanes.
const THIN_ROWS: usize = 8;

/// One row block of `thin_mm`: `R` rows starting at `a`, every `k` of them summed in order.
///
/// # Safety
/// As [`thin_mm`], for rows `0..R` of the given pointers.
#[inline(always)]
unsafe fn thin_rows<T: Gemm, const R: usize>(
    k: usize,
    a: *const T,
    ar: usize,
    ac: usize,
    bp: &[T],
    acc: &mut [[T; THIN]; R],
) {
    for (kk, bk) in bp.chunks_exact(THIN).take(k).enumerate() {
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: (r, kk) lies inside the caller's m×k view of a.
            let v = unsafe { *a.add(r * ar + kk * ac) };
            for (o, &w) in row.iter_mut().zip(bk) {
                *o = v.mul_add(w, *o);
            }
        }
    }
}

/// One thin product's geometry (see [`thin_mm`]): a is m×k at strides (ar, ac), c is m×n
/// at row stride rsc; `beta` as `Gemm::gemm`'s `acc`.
#[derive(Clone, Copy)]
struct ThinJob<T> {
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    ar: usize,
    ac: usize,
    c: *mut T,
    rsc: usize,
    beta: Option<T>,
}

crate::backend::cpu::simd::multiversion! {
    /// The rows of a thin product into `c`: blocks of [`THIN_ROWS`], then single rows; `bp`
    /// is b padded to k × THIN.
    fn thin_all<T: Gemm>(job: ThinJob<T>, bp: &[T]) {
        let ThinJob { m, k, n, a, ar, ac, c, rsc, beta } = job;
        let put = |i: usize, row: &[T; THIN]| {
            for (j, &v) in row.iter().take(n).enumerate() {
                // SAFETY: (i, j) lies inside the caller's m×n view of c.
                unsafe {
                    let o = c.add(i * rsc + j);
                    *o = match beta {
                        None => v,
                        Some(beta) => *o + beta * v,
                    };
                }
            }
        };
        let full = m - m % THIN_ROWS;
        for i in (0..full).step_by(THIN_ROWS) {
            let mut acc = [[T::default(); THIN]; THIN_ROWS];
            // SAFETY: rows i..i + THIN_ROWS lie inside a's view (caller).
            unsafe { thin_rows(k, a.add(i * ar), ar, ac, bp, &mut acc) };
            for (r, row) in acc.iter().enumerate() {
                put(i + r, row);
            }
        }
        for i in full..m {
            let mut acc = [[T::default(); THIN]; 1];
            // SAFETY: row i lies inside a's view (caller).
            unsafe { thin_rows(k, a.add(i * ar), ar, ac, bp, &mut acc) };
            put(i, &acc[0]);
        }
    }
}

/// `c[m×n] = a · b` (or `c += beta · a · b`) for `n <= THIN` columns: each output summed
/// over `k` in order with fused multiply-adds, the `n` columns of a row in the lanes of one
/// vector, eight rows at a time. `gemm` runs such products on its 16-row micro-kernel with
/// the output transposed (10 of 16 lanes busy for a 10-class head): 8.8 µs for the
/// [128, 256] x [256, 10] logits of the MLP step against 5.8 µs here. The order of the sums
/// does not depend on the operands' strides, so folded transposes keep the bits.
///
/// # Safety
/// As [`Gemm::gemm`], for `job`'s a and c and for b (k×n at strides (br, bc)).
unsafe fn thin_mm<T: Gemm>(job: ThinJob<T>, b: *const T, br: usize, bc: usize) {
    // b's rows padded to THIN lanes with zeros (k × THIN, a few KiB).
    let mut bp = vec![T::default(); job.k * THIN];
    for (kk, row) in bp.chunks_exact_mut(THIN).enumerate() {
        for (j, v) in row.iter_mut().take(job.n).enumerate() {
            // SAFETY: (kk, j) lies inside b's k×n view (caller).
            *v = unsafe { *b.add(kk * br + j * bc) };
        }
    }
    thin_all(job, &bp);
}

/// Whether a block goes to [`thin_mm`]: 2 to [`THIN`] columns and at least 2 rows (single
/// rows and columns stay on `gemm`'s gemv, see [`flags_are_exact`]), on CPUs with FMA
/// (elsewhere `mul_add` is a libm call).
fn is_thin(rows: usize, cols: usize) -> bool {
    (2..=THIN).contains(&cols)
        && rows >= 2
        && crate::backend::cpu::simd::level() != crate::backend::cpu::simd::Level::Base
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
            } else if rows > 1 && cols > 1 && (k <= 2 || rows * cols <= 256) {
                // gemm's outer-product and dot-product kernels: one layout for every flag.
                let (mut abuf, mut bbuf) = (Vec::new(), Vec::new());
                let (a, ar) = row_major(a, rows, k, ma.rs, ma.cs, &mut abuf);
                let (b, br) = row_major(b, k, cols, mb.rs, mb.cs, &mut bbuf);
                T::gemm(rows, k, cols, a, ar, 1, b, br, 1, c, n, acc)
            } else {
                T::gemm(rows, k, cols, a, ma.rs, ma.cs, b, mb.rs, mb.cs, c, n, acc)
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

/// `dst += beta · op(a) · op(b)` for 2-D f32/f64 operands, written over `dst`'s buffer (a
/// variable's, in a training step's fused update). `Ok(false)` when the operands do not
/// qualify (other dtypes or ranks, a size that does not match `dst`); nothing is written then.
pub(crate) fn matmul_accumulate(
    dst: &mut Buffer,
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
    beta: f64,
) -> Result<bool> {
    if a.rank() != 2 || b.rank() != 2 || a.dtype() != b.dtype() {
        return Ok(false);
    }
    let (ma, mb) = (operand(a.shape(), ta), operand(b.shape(), tb));
    if ma.cols != mb.rows {
        return Ok(false);
    }
    let offs = [(0, 0)];
    match dst {
        Buffer::F32(d) if a.dtype() == DType::F32 && d.len() == ma.rows * mb.cols => {
            let (x, y) = (a.host_slice::<f32>("matmul")?, b.host_slice::<f32>("matmul")?);
            float_mm_into(d, x, y, ma, mb, &offs, Some(beta as f32), None);
        }
        Buffer::F64(d) if a.dtype() == DType::F64 && d.len() == ma.rows * mb.cols => {
            let (x, y) = (a.host_slice::<f64>("matmul")?, b.host_slice::<f64>("matmul")?);
            float_mm_into(d, x, y, ma, mb, &offs, Some(beta), None);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn int_mm<T: NumK>(x: &[T], y: &[T], ma: Mat, mb: Mat, offs: &[(usize, usize)]) -> Vec<T> {
    let (m, k, n) = (ma.rows, ma.cols, mb.cols);
    let mut out = alloc::<T>(offs.len() * m * n);
    if m * n == 0 {
        return out;
    }
    let threads = rayon::current_num_threads();
    let mut bt = Vec::new();
    for (bi, c) in out.chunks_mut(m * n).enumerate() {
        let (oa, ob) = offs[bi];
        // b as a contiguous k×n row-major matrix, so the inner loop is a plain slice zip the
        // compiler vectorizes (b is already so unless transposed).
        let b: &[T] = if mb.cs == 1 {
            &y[ob..ob + k * n]
        } else {
            bt.clear();
            bt.extend((0..k).flat_map(|p| (0..n).map(move |j| y[ob + p * mb.rs + j * mb.cs])));
            &bt
        };
        let row = |(i, cr): (usize, &mut [T])| {
            cr.fill(T::zero());
            for (p, br) in b.chunks_exact(n).enumerate() {
                let av = x[oa + i * ma.rs + p * ma.cs];
                for (cv, &bv) in cr.iter_mut().zip(br) {
                    *cv = cv.add(av.mul(bv));
                }
            }
        };
        if threads > 1 && m > 1 && m * n * k >= PAR_MACS / 4 {
            c.par_chunks_mut(n).enumerate().for_each(row);
        } else {
            c.chunks_mut(n).enumerate().for_each(row);
        }
    }
    out
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
