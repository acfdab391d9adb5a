//! Batched matmul with transpose flags and broadcast batch dims. f32/f64 use
//! `matrixmultiply`'s packed micro-kernels (runtime-detected AVX2/FMA) on each thread, with
//! rows split across rayon by hand: on 2 cores that beats the libraries' own threading.
//! Integers use a cache-friendly i-k-j loop; f16/bf16 compute in f32.

use rayon::prelude::*;

use super::num::NumK;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::alloc;

/// Geometry of one (possibly transposed) matrix operand in row-major storage.
#[derive(Clone, Copy)]
struct Mat {
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

fn operand(shape: &Shape, transposed: bool) -> Mat {
    let r = shape.rank();
    let (a, b) = (shape[r - 2], shape[r - 1]);
    if transposed {
        Mat { rows: b, cols: a, rs: 1, cs: b as isize }
    } else {
        Mat { rows: a, cols: b, rs: b as isize, cs: 1 }
    }
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

trait Gemm: Element {
    /// `c[m×n] = a[m×k] · b[k×n]` with arbitrary strides; c row-major with row stride n.
    ///
    /// # Safety
    /// The pointers must cover the described matrices.
    unsafe fn gemm(m: usize, k: usize, n: usize, a: *const Self, ar: isize, ac: isize, b: *const Self, br: isize, bc: isize, c: *mut Self);
}

impl Gemm for f32 {
    unsafe fn gemm(m: usize, k: usize, n: usize, a: *const f32, ar: isize, ac: isize, b: *const f32, br: isize, bc: isize, c: *mut f32) {
        // SAFETY: forwarded from the caller.
        unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a, ar, ac, b, br, bc, 0.0, c, n as isize, 1) }
    }
}

impl Gemm for f64 {
    unsafe fn gemm(m: usize, k: usize, n: usize, a: *const f64, ar: isize, ac: isize, b: *const f64, br: isize, bc: isize, c: *mut f64) {
        // SAFETY: forwarded from the caller.
        unsafe { matrixmultiply::dgemm(m, k, n, 1.0, a, ar, ac, b, br, bc, 0.0, c, n as isize, 1) }
    }
}

/// Minimum multiply-adds before a matmul is split across threads.
const PAR_FLOPS: usize = 1 << 18;

fn float_mm<T: Gemm>(x: &[T], y: &[T], ma: Mat, mb: Mat, offs: &[(usize, usize)]) -> Vec<T> {
    let (m, k, n) = (ma.rows, ma.cols, mb.cols);
    let mut out = alloc::<T>(offs.len() * m * n);
    if m * n == 0 {
        return out;
    }
    if k == 0 {
        out.fill(T::default());
        return out;
    }
    let threads = rayon::current_num_threads();
    let one = |c: &mut [T], (oa, ob): (usize, usize), r0: usize, rows: usize| {
        // SAFETY: a covers rows r0..r0+rows of an m×k operand at offset oa, b a k×n operand at
        // ob (inference checked the shapes), c is rows×n.
        unsafe {
            T::gemm(
                rows,
                k,
                n,
                x.as_ptr().add(oa).offset(r0 as isize * ma.rs),
                ma.rs,
                ma.cs,
                y.as_ptr().add(ob),
                mb.rs,
                mb.cs,
                c.as_mut_ptr(),
            )
        }
    };
    if offs.len() >= threads || m * n * k < PAR_FLOPS {
        let run = |(bi, c): (usize, &mut [T])| one(c, offs[bi], 0, m);
        if offs.len() > 1 && offs.len() * m * n * k >= PAR_FLOPS {
            out.par_chunks_mut(m * n).enumerate().for_each(run);
        } else {
            out.chunks_mut(m * n).enumerate().for_each(run);
        }
    } else {
        // Few large matrices: split each one's rows into one block per thread.
        let block = m.div_ceil(threads).max(1);
        for (bi, c) in out.chunks_mut(m * n).enumerate() {
            c.par_chunks_mut(block * n).enumerate().for_each(|(i, cb)| one(cb, offs[bi], i * block, cb.len() / n));
        }
    }
    out
}

fn int_mm<T: NumK>(x: &[T], y: &[T], ma: Mat, mb: Mat, offs: &[(usize, usize)]) -> Vec<T> {
    let (m, k, n) = (ma.rows, ma.cols, mb.cols);
    let mut out = alloc::<T>(offs.len() * m * n);
    for (bi, c) in out.chunks_mut((m * n).max(1)).enumerate().take(offs.len()) {
        let (oa, ob) = offs[bi];
        c.fill(T::zero());
        for i in 0..m {
            for p in 0..k {
                let av = x[(oa as isize + i as isize * ma.rs + p as isize * ma.cs) as usize];
                let row = &mut c[i * n..(i + 1) * n];
                for (j, cv) in row.iter_mut().enumerate() {
                    let bv = y[(ob as isize + p as isize * mb.rs + j as isize * mb.cs) as usize];
                    *cv = cv.add(av.mul(bv));
                }
            }
        }
    }
    out
}

pub(crate) fn matmul(a: &Tensor, b: &Tensor, ta: bool, tb: bool, shape: Shape) -> Result<Tensor> {
    let (ma, mb) = (operand(a.shape(), ta), operand(b.shape(), tb));
    let offs = batch_offsets(a.shape(), b.shape(), &shape);
    match a.dtype() {
        DType::F32 => Ok(Tensor::from_vec_unchecked(float_mm(a.host_slice::<f32>("matmul")?, b.host_slice::<f32>("matmul")?, ma, mb, &offs), shape)),
        DType::F64 => Ok(Tensor::from_vec_unchecked(float_mm(a.host_slice::<f64>("matmul")?, b.host_slice::<f64>("matmul")?, ma, mb, &offs), shape)),
        DType::I32 => Ok(Tensor::from_vec_unchecked(int_mm(a.host_slice::<i32>("matmul")?, b.host_slice::<i32>("matmul")?, ma, mb, &offs), shape)),
        DType::I64 => Ok(Tensor::from_vec_unchecked(int_mm(a.host_slice::<i64>("matmul")?, b.host_slice::<i64>("matmul")?, ma, mb, &offs), shape)),
        DType::U8 => Ok(Tensor::from_vec_unchecked(int_mm(a.host_slice::<u8>("matmul")?, b.host_slice::<u8>("matmul")?, ma, mb, &offs), shape)),
        d @ (DType::F16 | DType::BF16) => {
            let (wa, wb) = (super::elementwise::cast(a, DType::F32)?, super::elementwise::cast(b, DType::F32)?);
            let r = matmul(&wa, &wb, ta, tb, shape)?;
            super::elementwise::cast(&r, d)
        }
        DType::Bool => Err(Error::unsupported("matmul", "bool matmul (inference rejects it)")),
    }
}
