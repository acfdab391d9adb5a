//! Numerically stable softmax and log-softmax along one axis, fused into one pass per row
//! (max, exp and sum, scale) with the vectorizable `exp`. On x86-64 with AVX2 and FMA the
//! f32 row kernel is compiled a second time for those features and picked at run time.

use rayon::prelude::*;

use super::num::FloatK;
use super::par::PAR_MIN;
use crate::dtype::DType;
use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::alloc;

/// One row: `o = softmax(x)` or `o = log_softmax(x)`, accumulating in f32/f64.
#[inline(always)]
fn row<T: FloatK>(x: &[T], o: &mut [T], log: bool) {
    let mut m = [T::lowest(); 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            m[i] = m[i].maximum(c[i]);
        }
    }
    let mut mx = chunks.remainder().iter().fold(T::lowest(), |a, &b| a.maximum(b));
    for v in m {
        mx = mx.maximum(v);
    }
    if mx == T::lowest() {
        mx = T::zero(); // an all -inf row: exp gives 0s, and the division gives NaN as in TF
    }
    for (o, &v) in o.iter_mut().zip(x) {
        *o = v.sub(mx).exp();
    }
    let mut s = [T::zero(); 8];
    let mut chunks = o.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            s[i] = s[i].add(c[i]);
        }
    }
    let mut sum = chunks.remainder().iter().fold(T::zero(), |a, &b| a.add(b));
    for v in s {
        sum = sum.add(v);
    }
    if log {
        let ls = sum.ln().add(mx);
        for (o, &v) in o.iter_mut().zip(x) {
            *o = v.sub(ls);
        }
    } else {
        let inv = T::one().div(sum);
        for o in o.iter_mut() {
            *o = o.mul(inv);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_f32_avx2(x: &[f32], o: &mut [f32], log: bool) {
    row(x, o, log)
}

fn row_f32(x: &[f32], o: &mut [f32], log: bool) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the features were detected on this CPU just above.
        unsafe { row_f32_avx2(x, o, log) };
        return;
    }
    row(x, o, log)
}

fn rows<T: FloatK>(x: &[T], n: usize, log: bool, f: impl Fn(&[T], &mut [T], bool) + Sync) -> Vec<T> {
    let mut out = alloc::<T>(x.len());
    if n == 0 || x.is_empty() {
        return out;
    }
    if x.len() >= PAR_MIN {
        out.par_chunks_mut(n).zip(x.par_chunks(n)).for_each(|(o, x)| f(x, o, log));
    } else {
        out.chunks_mut(n).zip(x.chunks(n)).for_each(|(o, x)| f(x, o, log));
    }
    out
}

pub(crate) fn softmax(x: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
    let rank = x.rank();
    if rank > 0 && axis != rank - 1 {
        // Move the axis last, run rows, move it back.
        let mut perm: Vec<usize> = (0..rank).filter(|&d| d != axis).collect();
        perm.push(axis);
        let tshape: Shape = perm.iter().map(|&p| x.shape()[p]).collect::<Vec<_>>().into();
        let t = super::movement::transpose(x, &perm, tshape)?;
        let y = softmax(&t, rank - 1, log)?;
        let mut inv = vec![0; rank];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        return super::movement::transpose(&y, &inv, x.shape().clone());
    }
    let n = if rank == 0 { 1 } else { x.shape()[rank - 1] };
    let shape = x.shape().clone();
    match x.dtype() {
        DType::F32 => Ok(Tensor::from_vec_unchecked(rows(x.host_slice::<f32>("softmax")?, n, log, row_f32), shape)),
        DType::F64 => Ok(Tensor::from_vec_unchecked(rows(x.host_slice::<f64>("softmax")?, n, log, row::<f64>), shape)),
        d => {
            // Half types compute in f32 and round once.
            let wide = super::elementwise::cast(x, DType::F32)?;
            let y = softmax(&wide, axis, log)?;
            super::elementwise::cast(&y, d)
        }
    }
}
