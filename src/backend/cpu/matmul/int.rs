//! The integer products (i32, i64, u8): plain loops with wrapping arithmetic (`NumK`), b
//! copied row-major when transposed so that the inner loop vectorizes; rows split across
//! rayon from [`PAR_MACS`]` / 4` multiply-adds.

use rayon::prelude::*;

use super::{Mat, PAR_MACS};
use crate::backend::cpu::num::NumK;
use crate::tensor::storage::alloc;

/// The products of `offs.len()` integer matrices (offsets into x and y as
/// `batch_offsets`): each row summed over `k` in order.
pub(super) fn int_mm<T: NumK>(x: &[T], y: &[T], ma: Mat, mb: Mat, offs: &[(usize, usize)]) -> Vec<T> {
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
