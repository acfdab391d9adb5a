//! Kernels that move data without arithmetic: one strided copy serves transpose, slice and
//! broadcast_to; plus concat, gather and one_hot (which validate their indices).

use rayon::prelude::*;
use smallvec::SmallVec;

use super::par::PAR_MIN;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::alloc;

/// Copies `src` read at `base + sum(i_d * strides[d])` into a row-major output of `dims`.
pub(crate) fn strided_copy<T: Element>(src: &[T], base: usize, dims: &[usize], strides: &[usize]) -> Vec<T> {
    let n: usize = dims.iter().product();
    let mut out = alloc::<T>(n);
    if n == 0 {
        return out;
    }
    // Merge dims that are contiguous in the source too; drop size-1 dims.
    let mut cd: SmallVec<[usize; 6]> = SmallVec::new();
    let mut cs: SmallVec<[usize; 6]> = SmallVec::new();
    for (&d, &s) in dims.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        match (cd.last_mut(), cs.last_mut()) {
            (Some(ld), Some(ls)) if *ls == s * d => {
                *ld *= d;
                *ls = s;
            }
            _ => {
                cd.push(d);
                cs.push(s);
            }
        }
    }
    if cd.is_empty() {
        out[0] = src[base];
        return out;
    }
    let r = cd.len();
    let inner = cd[r - 1];
    let is = cs[r - 1];
    let row = |ri: usize, o: &mut [T]| {
        let (mut off, mut rem) = (base, ri);
        for d in (0..r - 1).rev() {
            off += (rem % cd[d]) * cs[d];
            rem /= cd[d];
        }
        match is {
            1 => o.copy_from_slice(&src[off..off + inner]),
            0 => o.fill(src[off]),
            _ => {
                for (k, o) in o.iter_mut().enumerate() {
                    *o = src[off + k * is];
                }
            }
        }
    };
    if n >= PAR_MIN {
        out.par_chunks_mut(inner).enumerate().with_min_len((PAR_MIN / inner).max(1)).for_each(|(i, o)| row(i, o));
    } else {
        out.chunks_mut(inner).enumerate().for_each(|(i, o)| row(i, o));
    }
    out
}

pub(crate) fn transpose(x: &Tensor, perm: &[usize], shape: Shape) -> Result<Tensor> {
    let st = x.shape().strides();
    let strides: SmallVec<[usize; 6]> = perm.iter().map(|&p| st[p]).collect();
    crate::with_dtype!(x.dtype(), T => {
        let out = strided_copy(x.host_slice::<T>("transpose")?, 0, &shape, &strides);
        Ok(Tensor::from_vec_unchecked(out, shape))
    })
}

pub(crate) fn slice(x: &Tensor, begin: &[usize], shape: Shape) -> Result<Tensor> {
    let st = x.shape().strides();
    let base: usize = begin.iter().zip(&st).map(|(b, s)| b * s).sum();
    crate::with_dtype!(x.dtype(), T => {
        let out = strided_copy(x.host_slice::<T>("slice")?, base, &shape, &st);
        Ok(Tensor::from_vec_unchecked(out, shape))
    })
}

pub(crate) fn broadcast_to(x: &Tensor, shape: Shape) -> Result<Tensor> {
    let rank = shape.rank();
    let xs = x.shape();
    let st = xs.strides();
    let mut strides: SmallVec<[usize; 6]> = SmallVec::from_elem(0, rank);
    for i in 0..xs.rank() {
        let o = i + rank - xs.rank();
        strides[o] = if xs[i] == 1 { 0 } else { st[i] };
    }
    crate::with_dtype!(x.dtype(), T => {
        let out = strided_copy(x.host_slice::<T>("broadcast_to")?, 0, &shape, &strides);
        Ok(Tensor::from_vec_unchecked(out, shape))
    })
}

pub(crate) fn concat(xs: &[&Tensor], axis: usize, shape: Shape) -> Result<Tensor> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let row = shape[axis] * inner;
    crate::with_dtype!(shape_dtype(xs), T => {
        let srcs: Vec<(&[T], usize)> = xs
            .iter()
            .map(|t| Ok((t.host_slice::<T>("concat")?, t.shape()[axis] * inner)))
            .collect::<Result<_>>()?;
        let mut out = alloc::<T>(shape.num_elements());
        if row > 0 {
            let fill = |o: usize, dst: &mut [T]| {
                let mut at = 0;
                for (s, len) in &srcs {
                    dst[at..at + len].copy_from_slice(&s[o * len..(o + 1) * len]);
                    at += len;
                }
            };
            if out.len() >= PAR_MIN {
                out.par_chunks_mut(row).enumerate().for_each(|(o, d)| fill(o, d));
            } else {
                out.chunks_mut(row).enumerate().for_each(|(o, d)| fill(o, d));
            }
        }
        let _ = outer;
        Ok(Tensor::from_vec_unchecked(out, shape))
    })
}

fn shape_dtype(xs: &[&Tensor]) -> DType {
    xs.first().map(|t| t.dtype()).unwrap_or(DType::F32)
}

/// Indices as i64, each checked against `0..bound` (negative indices are errors, as in
/// TensorFlow's CPU kernels).
fn indices(op: &'static str, idx: &Tensor, bound: usize) -> Result<Vec<i64>> {
    let v: Vec<i64> = match idx.dtype() {
        DType::I64 => idx.host_slice::<i64>(op)?.to_vec(),
        DType::I32 => idx.host_slice::<i32>(op)?.iter().map(|&i| i as i64).collect(),
        DType::U8 => idx.host_slice::<u8>(op)?.iter().map(|&i| i as i64).collect(),
        d => return Err(Error::dtype(op, "integer indices", d.name(), None)),
    };
    if let Some(&bad) = v.iter().find(|&&i| i < 0 || i as u64 >= bound as u64) {
        return Err(Error::index(op, bad, bound));
    }
    Ok(v)
}

pub(crate) fn gather(params: &Tensor, idx: &Tensor, axis: usize, shape: Shape) -> Result<Tensor> {
    let ps = params.shape();
    let outer: usize = ps[..axis].iter().product();
    let dim = ps[axis];
    let inner: usize = ps[axis + 1..].iter().product();
    let ids = indices("gather", idx, dim)?;
    crate::with_dtype!(params.dtype(), T => {
        let src = params.host_slice::<T>("gather")?;
        let mut out = alloc::<T>(shape.num_elements());
        if inner > 0 {
            for (k, dst) in out.chunks_mut(inner).enumerate() {
                let (o, j) = (k / ids.len(), k % ids.len());
                let at = (o * dim + ids[j] as usize) * inner;
                dst.copy_from_slice(&src[at..at + inner]);
            }
        }
        let _ = outer;
        Ok(Tensor::from_vec_unchecked(out, shape))
    })
}

pub(crate) fn one_hot(idx: &Tensor, depth: usize, dtype: DType, shape: Shape) -> Result<Tensor> {
    let ids = indices("one_hot", idx, depth)?;
    crate::with_dtype!(dtype, T => {
        let (on, off) = (T::from_f64(1.0), T::from_f64(0.0));
        let mut out = alloc::<T>(shape.num_elements());
        out.fill(off);
        for (i, &k) in ids.iter().enumerate() {
            out[i * depth + k as usize] = on;
        }
        Ok(Tensor::from_vec_unchecked(out, shape))
    })
}
