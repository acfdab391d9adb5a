//! The float blocks that go to the `gemm` crate: the [`Gemm`] trait over its packed
//! micro-kernels (one block per call, single-threaded, `Parallelism::None`), and
//! [`gemm_block`], which copies a small block's operands row-major first so that `gemm`
//! picks the same kernel for every operand layout.

use ::gemm::Parallelism;

use crate::dtype::Element;

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
                    ::gemm::gemm(
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

/// One block `c[rows×cols] = a · b` (or `c += beta · a · b`, as [`Gemm::gemm`]'s `acc`) on
/// the calling thread, with a and b given as (pointer, row stride, column stride) and c at
/// row stride `rsc`. For `k <= 2` or at most 256 outputs `gemm` runs its outer-product and
/// dot-product kernels, chosen by the strides as well as the shape: the operands are copied
/// row-major first there, so that every layout gets the same kernel and the same bits.
///
/// # Safety
/// As [`Gemm::gemm`].
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_block<T: Gemm>(
    rows: usize,
    k: usize,
    cols: usize,
    (a, ar, ac): (*const T, usize, usize),
    (b, br, bc): (*const T, usize, usize),
    c: *mut T,
    rsc: usize,
    acc: Option<T>,
) {
    // SAFETY (both calls): forwarded from the caller; `row_major` reads only inside the views.
    unsafe {
        if rows > 1 && cols > 1 && (k <= 2 || rows * cols <= 256) {
            // gemm's outer-product and dot-product kernels: one layout for every flag.
            let (mut abuf, mut bbuf) = (Vec::new(), Vec::new());
            let (a, ar) = row_major(a, rows, k, ar, ac, &mut abuf);
            let (b, br) = row_major(b, k, cols, br, bc, &mut bbuf);
            T::gemm(rows, k, cols, a, ar, 1, b, br, 1, c, rsc, acc)
        } else {
            T::gemm(rows, k, cols, a, ar, ac, b, br, bc, c, rsc, acc)
        }
    }
}
