//! The thin-product kernel [`thin_mm`] (2 to [`THIN`] output columns, at least 2 rows: a
//! classifier head), run instead of `gemm`: each output summed over `k` in order with fused
//! multiply-adds, whatever the operand strides, so its bits do not depend on the layout. It
//! is compiled per SIMD level (`simd::multiversion!`); the level does not change the bits.

use super::Gemm;

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
pub(super) struct ThinJob<T> {
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) a: *const T,
    pub(super) ar: usize,
    pub(super) ac: usize,
    pub(super) c: *mut T,
    pub(super) rsc: usize,
    pub(super) beta: Option<T>,
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
pub(super) unsafe fn thin_mm<T: Gemm>(job: ThinJob<T>, b: *const T, br: usize, bc: usize) {
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
/// rows and columns stay on `gemm`'s gemv, see [`super::flags_are_exact`]), on CPUs with FMA
/// (elsewhere `mul_add` is a libm call).
pub(super) fn is_thin(rows: usize, cols: usize) -> bool {
    (2..=THIN).contains(&cols)
        && rows >= 2
        && crate::backend::cpu::simd::level() != crate::backend::cpu::simd::Level::Base
}
