//! The float products that `gemm` special-cases, computed here in one fixed order.
//!
//! For a single row or column, `k <= 2`, or at most 256 outputs, `gemm` picks its kernel by
//! the operands' strides as well as their shape: a dot-product kernel with SIMD lanes when
//! both operands run contiguously along k, an axpy or outer-product one otherwise. The same
//! logical product then rounds differently once the optimizer folds a transpose into a
//! matmul flag, and traced code differed from eager in the last bit. Here every element is
//! `Σ_p a[i,p]·b[p,j]` summed in `p` order, one multiply and one add per term (Rust never
//! contracts them into an FMA), whatever the strides; SIMD runs across `j` and the rows of a
//! tile, which are independent sums. Larger shapes take `gemm`'s packed path, whose packing
//! makes it layout-blind (tested in `matmul.rs`).

use std::ops::{Add, Mul};

/// Whether `gemm` would special-case an m×k·k×n product (see the module docs).
pub(super) fn applies(m: usize, k: usize, n: usize) -> bool {
    m <= 1 || n <= 1 || k <= 2 || m * n <= 256
}

/// Rows of `a` per tile: independent sums in flight when `n` is small (a matrix-vector
/// product would otherwise be one chain of dependent adds).
const TILE: usize = 8;

/// `c[m×n] = a·b`, or `c += beta·a·b` with `acc = Some(beta)`; strides as for `Gemm::gemm`.
///
/// # Safety
/// As `Gemm::gemm`: the pointers cover the described matrices, c overlaps neither, and
/// m, k, n >= 1.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm<T>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    ar: usize,
    ac: usize,
    b: *const T,
    br: usize,
    bc: usize,
    c: *mut T,
    rsc: usize,
    acc: Option<T>,
) where
    T: Copy + Default + Add<Output = T> + Mul<Output = T>,
{
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; the rest is forwarded from the caller.
            return unsafe { gemm_avx512(m, k, n, a, ar, ac, b, br, bc, c, rsc, acc) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2; the rest is forwarded from the caller.
            return unsafe { gemm_avx2(m, k, n, a, ar, ac, b, br, bc, c, rsc, acc) };
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { gemm_any(m, k, n, a, ar, ac, b, br, bc, c, rsc, acc) }
}

/// [`gemm_any`] compiled for AVX-512 (wider vectors; still no FMA contraction).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_avx512<T>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    ar: usize,
    ac: usize,
    b: *const T,
    br: usize,
    bc: usize,
    c: *mut T,
    rsc: usize,
    acc: Option<T>,
) where
    T: Copy + Default + Add<Output = T> + Mul<Output = T>,
{
    // SAFETY: forwarded from the caller.
    unsafe { gemm_any(m, k, n, a, ar, ac, b, br, bc, c, rsc, acc) }
}

/// [`gemm_any`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_avx2<T>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    ar: usize,
    ac: usize,
    b: *const T,
    br: usize,
    bc: usize,
    c: *mut T,
    rsc: usize,
    acc: Option<T>,
) where
    T: Copy + Default + Add<Output = T> + Mul<Output = T>,
{
    // SAFETY: forwarded from the caller.
    unsafe { gemm_any(m, k, n, a, ar, ac, b, br, bc, c, rsc, acc) }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_any<T>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    ar: usize,
    ac: usize,
    b: *const T,
    br: usize,
    bc: usize,
    c: *mut T,
    rsc: usize,
    acc: Option<T>,
) where
    T: Copy + Default + Add<Output = T> + Mul<Output = T>,
{
    // b's rows contiguous: read in place, else copied once (k·n, no more than the products).
    let packed: Vec<T>;
    let (b, br) = if bc == 1 {
        (b, br)
    } else {
        // SAFETY: every (p, j) < (k, n) lies inside b (caller).
        packed = (0..k * n).map(|i| unsafe { *b.add((i / n) * br + (i % n) * bc) }).collect();
        (packed.as_ptr(), n)
    };
    let mut sums = vec![T::default(); TILE * n];
    for i0 in (0..m).step_by(TILE) {
        let rows = TILE.min(m - i0);
        let sums = &mut sums[..rows * n];
        sums.fill(T::default());
        for p in 0..k {
            // SAFETY: row p of b has n elements from b + p·br (checked or packed above).
            let brow = unsafe { std::slice::from_raw_parts(b.add(p * br), n) };
            for (r, row) in sums.chunks_exact_mut(n).enumerate() {
                // SAFETY: (i0 + r, p) lies inside a.
                let av = unsafe { *a.add((i0 + r) * ar + p * ac) };
                for (s, &bv) in row.iter_mut().zip(brow) {
                    *s = *s + av * bv;
                }
            }
        }
        for (r, row) in sums.chunks_exact(n).enumerate() {
            // SAFETY: row i0 + r of c has n elements from c + (i0 + r)·rsc and nothing else
            // touches it during the call (caller).
            let out = unsafe { std::slice::from_raw_parts_mut(c.add((i0 + r) * rsc), n) };
            match acc {
                None => out.copy_from_slice(row),
                Some(beta) => out.iter_mut().zip(row).for_each(|(o, &s)| *o = *o + beta * s),
            }
        }
    }
}
