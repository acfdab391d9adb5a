//! Reductions (sum, mean, max, min, prod) and arg-reductions. Every reduction is viewed as
//! `[outer, R, inner]`; non-adjacent axes are first moved last by a transpose. Sums keep 16
//! independent lanes so the compiler vectorizes them without reassociating one accumulator;
//! reductions over leading axes add whole rows into a row of accumulators with
//! `simd::zip_self`, compiled for the CPU (a bias gradient, [128, 256] over axis 0: 2.6 ->
//! 1.95 µs), the same bits at every level.

use rayon::prelude::*;

use super::num::NumK;
use super::par::PAR_MIN;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::prim::{ArgOp, ReduceOp};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::alloc;

const LANES: usize = 16;

/// Folds a contiguous run with 16 lanes.
#[inline(always)]
fn fold_lanes<T: NumK>(x: &[T], id: T, f: impl Fn(T, T) -> T + Copy) -> T {
    let mut acc = [id; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = f(acc[i], c[i]);
        }
    }
    let mut r = id;
    for &v in chunks.remainder() {
        r = f(r, v);
    }
    // Pairwise tree over the lanes.
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] = f(acc[i], acc[i + w]);
        }
    }
    f(acc[0], r)
}

/// Folds a long contiguous run, split across threads when large.
fn fold_all<T: NumK>(x: &[T], id: T, f: impl Fn(T, T) -> T + Copy + Sync + Send) -> T {
    if x.len() >= PAR_MIN * 4 {
        let c = super::par::chunk_len(x.len()).max(1 << 16);
        x.par_chunks(c).map(|c| fold_lanes(c, id, f)).reduce(|| id, f)
    } else {
        fold_lanes(x, id, f)
    }
}

/// Reduces `[outer, r, inner]` into `[outer, inner]`.
fn reduce_3d<T: NumK>(
    x: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    id: T,
    f: impl Fn(T, T) -> T + Copy + Sync + Send,
) -> Vec<T> {
    let mut out = alloc::<T>(outer * inner);
    if out.is_empty() {
        return out;
    }
    if inner == 1 {
        if outer == 1 {
            out[0] = fold_all(x, id, f);
        } else if outer * r >= PAR_MIN {
            out.par_iter_mut().enumerate().for_each(|(o, y)| *y = fold_lanes(&x[o * r..(o + 1) * r], id, f));
        } else {
            out.iter_mut().enumerate().for_each(|(o, y)| *y = fold_lanes(&x[o * r..(o + 1) * r], id, f));
        }
        return out;
    }
    let block = |o: usize, acc: &mut [T]| {
        acc.fill(id);
        for k in 0..r {
            super::simd::zip_self(acc, &x[(o * r + k) * inner..(o * r + k + 1) * inner], &f);
        }
    };
    if outer > 1 && outer * r * inner >= PAR_MIN {
        out.par_chunks_mut(inner).enumerate().for_each(|(o, acc)| block(o, acc));
    } else if outer == 1 && r * inner >= PAR_MIN {
        // One outer block: split the inner columns instead.
        let c = super::par::chunk_len(inner).min(inner).max(256);
        out.par_chunks_mut(c).enumerate().for_each(|(ci, acc)| {
            acc.fill(id);
            for k in 0..r {
                super::simd::zip_self(acc, &x[k * inner + ci * c..k * inner + ci * c + acc.len()], &f);
            }
        });
    } else {
        out.chunks_mut(inner).enumerate().for_each(|(o, acc)| block(o, acc));
    }
    out
}

/// Moves the reduced axes last (when they are not one adjacent block) and returns
/// `(data tensor, outer, r, inner)`.
fn as_3d(x: &Tensor, axes: &[usize]) -> Result<(Tensor, usize, usize, usize)> {
    let s = x.shape();
    let contiguous = axes.windows(2).all(|w| w[1] == w[0] + 1);
    if axes.is_empty() {
        return Ok((x.clone(), s.num_elements(), 1, 1));
    }
    if contiguous {
        let (a0, a1) = (axes[0], axes[axes.len() - 1]);
        let outer = s[..a0].iter().product();
        let r = s[a0..=a1].iter().product();
        let inner = s[a1 + 1..].iter().product();
        return Ok((x.clone(), outer, r, inner));
    }
    let mut perm: Vec<usize> = (0..s.rank()).filter(|d| !axes.contains(d)).collect();
    perm.extend_from_slice(axes);
    let tshape: Shape = perm.iter().map(|&p| s[p]).collect::<Vec<_>>().into();
    let t = super::movement::transpose(x, &perm, tshape)?;
    let r: usize = axes.iter().map(|&a| s[a]).product();
    // The kept dims, not `num_elements / r`: a reduced dim of size 0 must still leave one
    // (identity) output per kept position.
    let outer = perm[..s.rank() - axes.len()].iter().map(|&d| s[d]).product();
    Ok((t, outer, r, 1))
}

pub(crate) fn reduce(x: &Tensor, op: ReduceOp, axes: &[usize], shape: Shape) -> Result<Tensor> {
    // f16 and bf16 accumulate in f32, as TensorFlow does, and round once at the end.
    if matches!(x.dtype(), DType::F16 | DType::BF16) {
        let wide = super::elementwise::cast(x, DType::F32)?;
        let r = reduce(&wide, op, axes, shape)?;
        return super::elementwise::cast(&r, x.dtype());
    }
    let (t, outer, r, inner) = as_3d(x, axes)?;
    macro_rules! go {
        ($T:ty) => {{
            let xs = t.host_slice::<$T>(op.name())?;
            let out = match op {
                ReduceOp::Sum => reduce_3d(xs, outer, r, inner, <$T>::zero(), NumK::add),
                ReduceOp::Mean => {
                    let mut o = reduce_3d(xs, outer, r, inner, <$T>::zero(), NumK::add);
                    o.iter_mut().for_each(|v| *v = v.div_count(r));
                    o
                }
                ReduceOp::Prod => reduce_3d(xs, outer, r, inner, <$T>::one(), NumK::mul),
                ReduceOp::Max => reduce_3d(xs, outer, r, inner, <$T>::lowest(), NumK::maximum),
                ReduceOp::Min => reduce_3d(xs, outer, r, inner, <$T>::highest(), NumK::minimum),
            };
            Ok(Tensor::from_vec_unchecked(out, shape))
        }};
    }
    match x.dtype() {
        DType::F32 => go!(f32),
        DType::F64 => go!(f64),
        DType::I32 => go!(i32),
        DType::I64 => go!(i64),
        DType::U8 => go!(u8),
        d @ (DType::F16 | DType::BF16 | DType::Bool) => {
            Err(crate::error::Error::unsupported(op.name(), format!("no reduction kernel for {d}")))
        }
    }
}

/// Index of the first largest (or smallest) value; NaN counts as the extreme, as in NumPy.
fn arg_3d<T: Element>(x: &[T], outer: usize, r: usize, inner: usize, op: ArgOp) -> Vec<i64> {
    let mut out = alloc::<i64>(outer * inner);
    for o in 0..outer {
        for j in 0..inner {
            let mut best = x[o * r * inner + j];
            let mut bi = 0usize;
            #[allow(clippy::eq_op)]
            for k in 1..r {
                let v = x[(o * r + k) * inner + j];
                if best != best {
                    break; // NaN already found
                }
                let better = match op {
                    ArgOp::Max => v > best,
                    ArgOp::Min => v < best,
                };
                if v != v || better {
                    best = v;
                    bi = k;
                }
            }
            out[o * inner + j] = bi as i64;
        }
    }
    out
}

pub(crate) fn arg_reduce(x: &Tensor, op: ArgOp, axis: Option<usize>, shape: Shape) -> Result<Tensor> {
    let s = x.shape();
    let (outer, r, inner) = match axis {
        None => (1, s.num_elements(), 1),
        Some(a) => (s[..a].iter().product(), s[a], s[a + 1..].iter().product()),
    };
    crate::with_dtype!(x.dtype(), T => {
        let out = arg_3d(x.host_slice::<T>("argmax")?, outer, r, inner, op);
        Ok(Tensor::from_vec_unchecked(out, shape))
    })
}
