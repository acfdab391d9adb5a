//! Elementwise kernels: unary maps, broadcasting binary maps, `where_` and `cast`. The
//! dispatch from (op, dtype) to a monomorphized loop is generated from the tables in
//! `prim::elementwise`, so there is no per-element dynamic dispatch.

use rayon::prelude::*;
use smallvec::SmallVec;

use super::num::{BoolK, CmpK, FloatK, NumK};
use super::par::{PAR_MIN, map1, map2};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::prim::elementwise::{binary_table, unary_table};
use crate::prim::{BinaryOp, UnaryOp};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::alloc;

/// Runs `$body` with `$T` bound to each Rust type of an `Accepts` class.
macro_rules! dispatch_class {
    (Float, $d:expr, $T:ident => $body:expr) => {
        match $d {
            DType::F32 => { type $T = f32; $body }
            DType::F64 => { type $T = f64; $body }
            DType::F16 => { type $T = half::f16; $body }
            DType::BF16 => { type $T = half::bf16; $body }
            other => Err(internal(other)),
        }
    };
    (Signed, $d:expr, $T:ident => $body:expr) => {
        match $d {
            DType::I32 => { type $T = i32; $body }
            DType::I64 => { type $T = i64; $body }
            other => dispatch_class!(Float, other, $T => $body),
        }
    };
    (Num, $d:expr, $T:ident => $body:expr) => {
        match $d {
            DType::U8 => { type $T = u8; $body }
            other => dispatch_class!(Signed, other, $T => $body),
        }
    };
    (Bool, $d:expr, $T:ident => $body:expr) => {
        match $d {
            DType::Bool => { type $T = bool; $body }
            other => Err(internal(other)),
        }
    };
    (All, $d:expr, $T:ident => $body:expr) => {
        match $d {
            DType::Bool => { type $T = bool; $body }
            other => dispatch_class!(Num, other, $T => $body),
        }
    };
}

fn internal(d: DType) -> Error {
    Error::unsupported("kernel", format!("no CPU kernel for dtype {d} (inference should have rejected it)"))
}

macro_rules! gen_unary {
    ($($v:ident $name:literal $acc:ident $k:ident::$f:ident $wgsl:literal;)*) => {
        /// `op(x)` written over `x`'s own buffer when `x` is the only handle to it;
        /// gives `x` back untouched otherwise.
        pub(crate) fn unary_inplace(op: UnaryOp, mut x: Tensor) -> std::result::Result<Tensor, Tensor> {
            let dtype = x.dtype();
            let Some(buf) = x.host_buffer_mut() else { return Err(x) };
            let done: Result<()> = (|| match op {
                $(UnaryOp::$v => dispatch_class!($acc, dtype, T => {
                    let xs = T::slice_mut(buf).ok_or_else(|| internal(dtype))?;
                    map_inplace(xs, |v: T| <T as $k>::$f(v));
                    Ok(())
                }),)*
            })();
            if done.is_ok() { Ok(x) } else { Err(x) }
        }

        /// `op(x)` elementwise.
        pub(crate) fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
            match op {
                $(UnaryOp::$v => dispatch_class!($acc, x.dtype(), T => {
                    let xs = x.host_slice::<T>($name)?;
                    let mut out = alloc::<T>(xs.len());
                    map1(xs, &mut out, |v: T| <T as $k>::$f(v));
                    Ok(Tensor::from_vec_unchecked(out, x.shape().clone()))
                }),)*
            }
        }
    };
}
unary_table!(gen_unary);

/// One arm of `binary_inplace`: comparisons change the dtype, so they never run in place.
macro_rules! inplace_arm {
    (Bool, $acc:ident, $dtype:expr, $buf:expr, $other:expr, $rhs:expr, $name:literal, $k:ident::$f:ident) => {
        Err(internal($dtype))
    };
    (Same, $acc:ident, $dtype:expr, $buf:expr, $other:expr, $rhs:expr, $name:literal, $k:ident::$f:ident) => {
        dispatch_class!($acc, $dtype, T => {
            let xs = T::slice_mut($buf).ok_or_else(|| internal($dtype))?;
            let ys = $other.host_slice::<T>($name)?;
            zip_inplace(xs, ys, $rhs, |p: T, q: T| <T as $k>::$f(p, q));
            Ok(())
        })
    };
}

macro_rules! gen_binary {
    ($($v:ident $name:literal $acc:ident $out:ident $k:ident::$f:ident $wgsl:literal;)*) => {
        /// `op(x, other)` (or `op(other, x)` when `x_is_rhs`) written over `x`'s buffer
        /// when `x` is the only handle to it, the op keeps the dtype and `other` has `x`'s
        /// element count or one element; gives `x` back untouched otherwise.
        pub(crate) fn binary_inplace(op: BinaryOp, mut x: Tensor, other: &Tensor, x_is_rhs: bool) -> std::result::Result<Tensor, Tensor> {
            let (dtype, n) = (x.dtype(), x.num_elements());
            if op.is_comparison() || other.dtype() != dtype || (other.num_elements() != n && other.num_elements() != 1) {
                return Err(x);
            }
            let Some(buf) = x.host_buffer_mut() else { return Err(x) };
            let done: Result<()> = (|| match op {
                $(BinaryOp::$v => inplace_arm!($out, $acc, dtype, buf, other, x_is_rhs, $name, $k::$f),)*
            })();
            if done.is_ok() { Ok(x) } else { Err(x) }
        }

        /// `op(a, b)` with NumPy broadcasting; both inputs have one dtype.
        pub(crate) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor, shape: Shape) -> Result<Tensor> {
            match op {
                $(BinaryOp::$v => dispatch_class!($acc, a.dtype(), T => {
                    let (xa, xb) = (a.host_slice::<T>($name)?, b.host_slice::<T>($name)?);
                    let out = broadcast_map(xa, a.shape(), xb, b.shape(), &shape, |p: T, q: T| <T as $k>::$f(p, q));
                    Ok(Tensor::from_vec_unchecked(out, shape))
                }),)*
            }
        }
    };
}
binary_table!(gen_binary);

/// `x[i] = f(x[i])`, in parallel when large.
fn map_inplace<T: Copy + Send>(x: &mut [T], f: impl Fn(T) -> T + Sync) {
    if x.len() >= PAR_MIN {
        x.par_chunks_mut(super::par::chunk_len(x.len())).for_each(|c| super::simd::map_self(c, &f));
    } else {
        super::simd::map_self(x, &f);
    }
}

/// `x[i] = f(x[i], y[i])` (or `f(y[i], x[i])` when `x_is_rhs`); `y` may have one element.
fn zip_inplace<T: Copy + Send + Sync>(x: &mut [T], y: &[T], x_is_rhs: bool, f: impl Fn(T, T) -> T + Sync) {
    let g = |v: T, w: T| if x_is_rhs { f(w, v) } else { f(v, w) };
    let run = |xc: &mut [T], yc: &[T]| {
        if yc.len() == 1 {
            let w = yc[0];
            super::simd::map_self(xc, &|v| g(v, w));
        } else {
            super::simd::zip_self(xc, yc, &g);
        }
    };
    if x.len() >= PAR_MIN && y.len() == x.len() {
        let c = super::par::chunk_len(x.len());
        x.par_chunks_mut(c).zip(y.par_chunks(c)).for_each(|(xc, yc)| run(xc, yc));
    } else {
        run(x, y);
    }
}

/// Strides (in elements) of `dims` broadcast into an output of rank `rank`: 0 where the
/// input is broadcast.
fn bcast_strides(dims: &[usize], rank: usize, out: &[usize]) -> SmallVec<[usize; 6]> {
    let mut s: SmallVec<[usize; 6]> = SmallVec::from_elem(0, rank);
    let mut acc = 1;
    for i in (0..dims.len()).rev() {
        let o = i + rank - dims.len();
        s[o] = if dims[i] == 1 && out[o] != 1 { 0 } else { acc };
        acc *= dims[i];
    }
    s
}

/// Merges adjacent output dims that every input walks contiguously (or broadcasts over
/// together), so the inner loop runs as long as possible.
fn collapse(out: &[usize], strides: &mut [SmallVec<[usize; 6]>]) -> SmallVec<[usize; 6]> {
    let mut dims: SmallVec<[usize; 6]> = SmallVec::new();
    let mut ss: Vec<SmallVec<[usize; 6]>> = vec![SmallVec::new(); strides.len()];
    for d in 0..out.len() {
        if out[d] == 1 {
            continue;
        }
        let mergeable = !dims.is_empty()
            && strides.iter().zip(&ss).all(|(s, cur)| {
                let last = *cur.last().unwrap_or(&0); // ok: dims non-empty means cur non-empty
                last == s[d] * out[d]
            });
        if mergeable {
            let n = dims.len() - 1;
            dims[n] *= out[d];
            for (cur, s) in ss.iter_mut().zip(strides.iter()) {
                let m = cur.len() - 1;
                cur[m] = s[d];
            }
        } else {
            dims.push(out[d]);
            for (cur, s) in ss.iter_mut().zip(strides.iter()) {
                cur.push(s[d]);
            }
        }
    }
    for (s, c) in strides.iter_mut().zip(ss) {
        *s = c;
    }
    dims
}

/// `out = f(a, b)` over the broadcast of two row-major inputs.
pub(crate) fn broadcast_map<T: Element, U: Element>(
    a: &[T],
    sa: &[usize],
    b: &[T],
    sb: &[usize],
    out_shape: &[usize],
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U> {
    let n: usize = out_shape.iter().product();
    let mut out = alloc::<U>(n);
    if n == 0 {
        return out;
    }
    if a.len() == n && b.len() == n {
        map2(a, b, &mut out, f);
        return out;
    }
    if b.len() == 1 && a.len() == n {
        let y = b[0];
        map1(a, &mut out, |x| f(x, y));
        return out;
    }
    if a.len() == 1 && b.len() == n {
        let x = a[0];
        map1(b, &mut out, |y| f(x, y));
        return out;
    }
    let rank = out_shape.len();
    let mut st = [bcast_strides(sa, rank, out_shape), bcast_strides(sb, rank, out_shape)];
    let dims = collapse(out_shape, &mut st);
    let [s_a, s_b] = st;
    let r = dims.len();
    let inner = dims[r - 1];
    let (ia, ib) = (s_a[r - 1], s_b[r - 1]);
    let row = |ri: usize, o: &mut [U]| {
        // Offsets of this row in a and b, from its multi-index over the outer dims.
        let (mut oa, mut ob, mut rem) = (0, 0, ri);
        for d in (0..r - 1).rev() {
            let i = rem % dims[d];
            rem /= dims[d];
            oa += i * s_a[d];
            ob += i * s_b[d];
        }
        match (ia, ib) {
            (1, 1) => {
                for ((o, &x), &y) in o.iter_mut().zip(&a[oa..oa + inner]).zip(&b[ob..ob + inner]) {
                    *o = f(x, y);
                }
            }
            (1, 0) => {
                let y = b[ob];
                for (o, &x) in o.iter_mut().zip(&a[oa..oa + inner]) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (o, &y) in o.iter_mut().zip(&b[ob..ob + inner]) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (k, o) in o.iter_mut().enumerate() {
                    *o = f(a[oa + k * ia], b[ob + k * ib]);
                }
            }
        }
    };
    if n >= PAR_MIN {
        out.par_chunks_mut(inner).enumerate().with_min_len((PAR_MIN / inner).max(1)).for_each(|(ri, o)| row(ri, o));
    } else {
        out.chunks_mut(inner).enumerate().for_each(|(ri, o)| row(ri, o));
    }
    out
}

/// `where_(cond, a, b)`: inputs broadcast to `shape`.
pub(crate) fn select(c: &Tensor, a: &Tensor, b: &Tensor, shape: Shape) -> Result<Tensor> {
    let c = if c.shape() == &shape { c.clone() } else { super::movement::broadcast_to(c, shape.clone())? };
    let a = if a.shape() == &shape { a.clone() } else { super::movement::broadcast_to(a, shape.clone())? };
    let b = if b.shape() == &shape { b.clone() } else { super::movement::broadcast_to(b, shape.clone())? };
    let cs = c.host_slice::<bool>("where_")?;
    crate::with_dtype!(a.dtype(), T => {
        let (xa, xb) = (a.host_slice::<T>("where_")?, b.host_slice::<T>("where_")?);
        let mut out = alloc::<T>(cs.len());
        let body = |o: &mut [T], c: &[bool], x: &[T], y: &[T]| {
            for i in 0..o.len() {
                o[i] = if c[i] { x[i] } else { y[i] };
            }
        };
        if cs.len() >= PAR_MIN {
            let ch = super::par::chunk_len(cs.len());
            out.par_chunks_mut(ch)
                .zip(cs.par_chunks(ch))
                .zip(xa.par_chunks(ch).zip(xb.par_chunks(ch)))
                .for_each(|((o, c), (x, y))| body(o, c, x, y));
        } else {
            body(&mut out, cs, xa, xb);
        }
        Ok(Tensor::from_vec_unchecked(out, shape))
    })
}

#[inline(always)]
fn cast_elem<S: Element, D: Element>(s: S) -> D {
    // Constant-folded per instantiation: integers go through i64 (wrapping, as TensorFlow),
    // everything involving a float through f64 (saturating float-to-int, NaN to 0).
    if S::DTYPE.is_float() || D::DTYPE.is_float() || D::DTYPE == DType::Bool {
        D::from_f64(s.to_f64())
    } else {
        D::from_i64(s.to_i64())
    }
}

/// `x` converted to `to`.
pub(crate) fn cast(x: &Tensor, to: DType) -> Result<Tensor> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    crate::with_dtype!(x.dtype(), S => {
        let xs = x.host_slice::<S>("cast")?;
        crate::with_dtype!(to, D => {
            let mut out = alloc::<D>(xs.len());
            map1(xs, &mut out, cast_elem::<S, D>);
            Ok(Tensor::from_vec_unchecked(out, x.shape().clone()))
        })
    })
}
