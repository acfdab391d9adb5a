//! The gradient rule (vector-Jacobian product) of every primitive, in one `match` over
//! `PrimOp` with no wildcard arm: a new primitive does not compile until it has a rule here,
//! even if the rule is "not differentiable". Rules are written with ferroflow primitives,
//! so inside a traced function they add backward nodes to the same graph, which the
//! optimizer and executor then treat like any other nodes.
//!
//! Conventions: `x` are the op's inputs, `y` its output, `g` the gradient flowing into `y`
//! (same shape and dtype), `need[i]` whether input `i` needs a gradient (inputs nobody asked
//! about get none computed). Each result has its input's shape and dtype.

use smallvec::{SmallVec, smallvec};

use crate::dispatch::apply;
use crate::dtype::DType;
use crate::error::{Error, Loc, Result};
use crate::prim::{ArgOp, BinaryOp, PrimOp, ReduceOp, SparseOp, UnaryOp};
use crate::shape::{Shape, UNKNOWN};
use crate::tensor::Tensor;

/// One gradient per input (`None`: not needed, not differentiable, or zero by construction).
pub(crate) type Grads = SmallVec<[Option<Tensor>; 3]>;

/// A strong rank-0 constant of dtype `d`.
pub(crate) fn konst(v: f64, d: DType) -> Tensor {
    crate::with_dtype!(d, T => Tensor::from_vec_unchecked(vec![<T as crate::dtype::Element>::from_f64(v)], Shape::scalar()))
}

fn bin(op: BinaryOp, a: &Tensor, b: &Tensor, loc: Loc) -> Result<Tensor> {
    apply(PrimOp::Binary(op), &[a, b], loc)
}
fn un(op: UnaryOp, a: &Tensor, loc: Loc) -> Result<Tensor> {
    apply(PrimOp::Unary(op), &[a], loc)
}
fn mul(a: &Tensor, b: &Tensor, loc: Loc) -> Result<Tensor> {
    bin(BinaryOp::Mul, a, b, loc)
}
fn sub(a: &Tensor, b: &Tensor, loc: Loc) -> Result<Tensor> {
    bin(BinaryOp::Sub, a, b, loc)
}
fn div(a: &Tensor, b: &Tensor, loc: Loc) -> Result<Tensor> {
    bin(BinaryOp::Div, a, b, loc)
}
fn mul_s(a: &Tensor, s: f64, loc: Loc) -> Result<Tensor> {
    mul(a, &konst(s, a.dtype()), loc)
}
fn select(c: &Tensor, a: &Tensor, b: &Tensor, loc: Loc) -> Result<Tensor> {
    apply(PrimOp::Select, &[c, a, b], loc)
}
fn cmp_s(op: BinaryOp, a: &Tensor, s: f64, loc: Loc) -> Result<Tensor> {
    bin(op, a, &konst(s, a.dtype()), loc)
}
fn reduce(op: ReduceOp, x: &Tensor, axes: &[usize], keepdims: bool, loc: Loc) -> Result<Tensor> {
    apply(PrimOp::Reduce { op, axes: axes.iter().copied().collect(), keepdims }, &[x], loc)
}
fn reshape(x: &Tensor, dims: &[isize], loc: Loc) -> Result<Tensor> {
    crate::ops::shape::reshape_impl(x, dims, loc)
}
fn cast(x: &Tensor, d: DType, loc: Loc) -> Result<Tensor> {
    crate::ops::math::cast_to(x, d, loc)
}
fn i64s(v: Vec<i64>, dims: &[usize]) -> Tensor {
    Tensor::from_vec_unchecked(v, Shape::new(dims))
}

/// Reshape dims for `shape`: unknown dims become -1 (`None` when more than one is unknown).
fn spec(shape: &Shape) -> Option<SmallVec<[isize; 4]>> {
    if shape.iter().filter(|&&d| d == UNKNOWN).count() > 1 {
        return None;
    }
    Some(shape.iter().map(|&d| if d == UNKNOWN { -1 } else { d as isize }).collect())
}

fn unknown_dims(op: &'static str, what: &str, shape: &Shape) -> Error {
    Error::NoGradient {
        op,
        message: format!(
            "the gradient {what} needs static dims, found shape {shape}; trace with a fully known input_signature"
        ),
        location: None,
    }
}

/// `g` reshaped to `shape` (same number of elements).
fn reshape_to(g: &Tensor, shape: &Shape, loc: Loc) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let dims = spec(shape).ok_or_else(|| unknown_dims("reshape", "of a reshape", shape))?;
    reshape(g, &dims, loc)
}

/// A tensor of `v` with `t`'s shape and dtype: a broadcast scalar when the shape is known,
/// else a select that takes its shape from `t` at run time.
fn filled_like(t: &Tensor, v: f64, loc: Loc) -> Result<Tensor> {
    let s = konst(v, t.dtype());
    if t.rank() == 0 {
        return Ok(s);
    }
    if t.shape().is_fully_known() {
        return apply(PrimOp::BroadcastTo(t.shape().clone()), &[&s], loc);
    }
    select(&konst(1.0, DType::Bool), &s, t, loc)
}

/// Ones shaped like `t` (the seed of a target's gradient).
pub(crate) fn ones_like(t: &Tensor, loc: Loc) -> Result<Tensor> {
    filled_like(t, 1.0, loc)
}

/// Zeros shaped like `t` (`UnconnectedGradients::Zero`).
pub(crate) fn zeros_like(t: &Tensor, loc: Loc) -> Result<Tensor> {
    filled_like(t, 0.0, loc)
}

/// `g` (of a broadcast result's shape) summed back to `shape`: over the leading axes
/// broadcasting added and the axes where `shape` has size 1 but `g` does not.
pub(crate) fn unbroadcast(g: &Tensor, shape: &Shape, loc: Loc) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let lead = g.rank().saturating_sub(shape.rank());
    let mut axes: SmallVec<[usize; 4]> = (0..lead).collect();
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && g.shape()[lead + i] != 1 {
            axes.push(lead + i);
        }
    }
    let s = if axes.is_empty() { g.clone() } else { reduce(ReduceOp::Sum, g, &axes, false, loc)? };
    if s.shape() == shape {
        return Ok(s);
    }
    match spec(shape) {
        Some(dims) => reshape(&s, &dims, loc),
        // Two unknown dims: sum the leading axes away, keep the size-1 axes as dims.
        None => {
            let lead_axes: SmallVec<[usize; 4]> = (0..lead).collect();
            let s = if lead_axes.is_empty() { g.clone() } else { reduce(ReduceOp::Sum, g, &lead_axes, false, loc)? };
            let ones: SmallVec<[usize; 4]> =
                (0..shape.rank()).filter(|&i| shape[i] == 1 && s.shape()[i] != 1).collect();
            if ones.is_empty() { Ok(s) } else { reduce(ReduceOp::Sum, &s, &ones, true, loc) }
        }
    }
}

/// `g` of a keepdims-shaped reduction result, broadcast back to `x`'s shape.
fn broadcast_like(g: &Tensor, x: &Tensor, loc: Loc) -> Result<Tensor> {
    if g.shape() == x.shape() {
        return Ok(g.clone());
    }
    if x.shape().is_fully_known() {
        return apply(PrimOp::BroadcastTo(x.shape().clone()), &[g], loc);
    }
    select(&konst(1.0, DType::Bool), g, x, loc)
}

/// A reduction's output gradient with the reduced axes kept (as size 1).
fn keep_dims(g: &Tensor, x: &Tensor, axes: &[usize], keepdims: bool, loc: Loc) -> Result<Tensor> {
    if keepdims {
        return Ok(g.clone());
    }
    let kept = crate::prim::infer::reduced_shape(x.shape(), axes, true);
    reshape_to(g, &kept, loc)
}

/// The gradients of primitive `op` with inputs `x` and output `y`, given `g`.
pub(crate) fn vjp(op: &PrimOp, x: &[Tensor], y: &Tensor, g: &Tensor, need: &[bool], loc: Loc) -> Result<Grads> {
    let n = |i: usize| need.get(i).copied().unwrap_or(false);
    let none = || -> Grads { smallvec![None; x.len()] };
    let x0 = &x[0];
    Ok(match op {
        PrimOp::Unary(u) => {
            if !n(0) {
                return Ok(none());
            }
            let d = match u {
                UnaryOp::Neg => un(UnaryOp::Neg, g, loc)?,
                // sign(x) * g, 0 at 0 (as TensorFlow).
                UnaryOp::Abs => {
                    let zero = konst(0.0, g.dtype());
                    let neg = select(&cmp_s(BinaryOp::Less, x0, 0.0, loc)?, &un(UnaryOp::Neg, g, loc)?, &zero, loc)?;
                    select(&cmp_s(BinaryOp::Greater, x0, 0.0, loc)?, g, &neg, loc)?
                }
                UnaryOp::Square => mul(g, &mul_s(x0, 2.0, loc)?, loc)?,
                // TensorFlow's ReluGrad, gated by the output y > 0 (the same as x > 0, 0 at 0):
                // one elementwise primitive that the optimizer fuses into the epilogue of the
                // matmul producing `g`; and reading `y`, not `x`, leaves `x` with one reader,
                // so the forward relu fuses into its own matmul's epilogue too.
                UnaryOp::Relu => bin(BinaryOp::ReluGrad, g, y, loc)?,
                UnaryOp::Exp => mul(g, y, loc)?,
                UnaryOp::Log => div(g, x0, loc)?,
                UnaryOp::Sqrt => div(&mul_s(g, 0.5, loc)?, y, loc)?,
                UnaryOp::Rsqrt => mul(&mul_s(g, -0.5, loc)?, &mul(&mul(y, y, loc)?, y, loc)?, loc)?,
                UnaryOp::Sigmoid => {
                    let one_minus = sub(&konst(1.0, y.dtype()), y, loc)?;
                    mul(g, &mul(y, &one_minus, loc)?, loc)?
                }
                UnaryOp::Tanh => mul(g, &sub(&konst(1.0, y.dtype()), &mul(y, y, loc)?, loc)?, loc)?,
                // d/dx x Φ(x) = Φ(x) + x φ(x); Φ(x) = gelu(x) / x (0.5 at 0), so no erf is needed.
                UnaryOp::Gelu => {
                    let is0 = cmp_s(BinaryOp::Equal, x0, 0.0, loc)?;
                    let cdf = select(&is0, &konst(0.5, y.dtype()), &div(y, x0, loc)?, loc)?;
                    let pdf = mul_s(
                        &un(UnaryOp::Exp, &mul_s(&mul(x0, x0, loc)?, -0.5, loc)?, loc)?,
                        0.398_942_280_401_432_7,
                        loc,
                    )?;
                    mul(g, &bin(BinaryOp::Add, &cdf, &mul(x0, &pdf, loc)?, loc)?, loc)?
                }
                UnaryOp::Sin => mul(g, &un(UnaryOp::Cos, x0, loc)?, loc)?,
                UnaryOp::Cos => un(UnaryOp::Neg, &mul(g, &un(UnaryOp::Sin, x0, loc)?, loc)?, loc)?,
                UnaryOp::LogicalNot => return Ok(none()), // bool: not differentiable
            };
            smallvec![Some(d)]
        }
        PrimOp::Binary(b) => {
            let (a, bb) = (x0, &x[1]);
            let (ga, gb): (Option<Tensor>, Option<Tensor>) = match b {
                BinaryOp::Add => (n(0).then(|| g.clone()), n(1).then(|| g.clone())),
                BinaryOp::Sub => (n(0).then(|| g.clone()), if n(1) { Some(un(UnaryOp::Neg, g, loc)?) } else { None }),
                BinaryOp::Mul => {
                    (if n(0) { Some(mul(g, bb, loc)?) } else { None }, if n(1) { Some(mul(g, a, loc)?) } else { None })
                }
                // d(a/b)/db = -a/b² = -y/b.
                BinaryOp::Div => (
                    if n(0) { Some(div(g, bb, loc)?) } else { None },
                    if n(1) { Some(un(UnaryOp::Neg, &div(&mul(g, y, loc)?, bb, loc)?, loc)?) } else { None },
                ),
                // d(a^b)/da = b a^(b-1); d(a^b)/db = a^b log(a), taken as 0 where a <= 0 (TensorFlow).
                BinaryOp::Pow => (
                    if n(0) {
                        let bm1 = sub(bb, &konst(1.0, bb.dtype()), loc)?;
                        Some(mul(g, &mul(bb, &bin(BinaryOp::Pow, a, &bm1, loc)?, loc)?, loc)?)
                    } else {
                        None
                    },
                    if n(1) {
                        let pos = cmp_s(BinaryOp::Greater, a, 0.0, loc)?;
                        let safe = select(&pos, a, &konst(1.0, a.dtype()), loc)?;
                        let log = select(&pos, &un(UnaryOp::Log, &safe, loc)?, &konst(0.0, a.dtype()), loc)?;
                        Some(mul(g, &mul(y, &log, loc)?, loc)?)
                    } else {
                        None
                    },
                ),
                // The gradient goes to `a` where a >= b (a <= b for minimum), else to `b`.
                BinaryOp::Maximum | BinaryOp::Minimum => {
                    let op = if *b == BinaryOp::Maximum { BinaryOp::GreaterEqual } else { BinaryOp::LessEqual };
                    let mask = bin(op, a, bb, loc)?;
                    let zero = konst(0.0, g.dtype());
                    (
                        if n(0) { Some(select(&mask, g, &zero, loc)?) } else { None },
                        if n(1) { Some(select(&mask, &zero, g, loc)?) } else { None },
                    )
                }
                // Piecewise constant (TensorFlow registers no gradient): none.
                BinaryOp::FloorDiv => (None, None),
                // relu_grad(a, y) is linear in `a` under the same gate; piecewise constant in `y`.
                BinaryOp::ReluGrad => (if n(0) { Some(bin(BinaryOp::ReluGrad, g, bb, loc)?) } else { None }, None),
                // Bool outputs: not differentiable.
                BinaryOp::Equal
                | BinaryOp::NotEqual
                | BinaryOp::Less
                | BinaryOp::LessEqual
                | BinaryOp::Greater
                | BinaryOp::GreaterEqual
                | BinaryOp::LogicalAnd
                | BinaryOp::LogicalOr => (None, None),
            };
            smallvec![
                ga.map(|t| unbroadcast(&t, a.shape(), loc)).transpose()?,
                gb.map(|t| unbroadcast(&t, bb.shape(), loc)).transpose()?
            ]
        }
        PrimOp::Select => {
            let zero = konst(0.0, g.dtype());
            let (c, a, b) = (x0, &x[1], &x[2]);
            smallvec![
                None,
                if n(1) { Some(unbroadcast(&select(c, g, &zero, loc)?, a.shape(), loc)?) } else { None },
                if n(2) { Some(unbroadcast(&select(c, &zero, g, loc)?, b.shape(), loc)?) } else { None }
            ]
        }
        // Between floats the gradient is cast back; to or from integers and bool there is none.
        PrimOp::Cast(d) => {
            if n(0) && d.is_float() && x0.dtype().is_float() {
                smallvec![Some(cast(g, x0.dtype(), loc)?)]
            } else {
                none()
            }
        }
        PrimOp::Reduce { op, axes, keepdims } => {
            if !n(0) {
                return Ok(none());
            }
            let gk = keep_dims(g, x0, axes, *keepdims, loc)?;
            let d = match op {
                ReduceOp::Sum => broadcast_like(&gk, x0, loc)?,
                ReduceOp::Mean => {
                    let count: Option<usize> = axes.iter().try_fold(1usize, |a, &ax| x0.shape().dim(ax).map(|d| a * d));
                    let b = broadcast_like(&gk, x0, loc)?;
                    match count {
                        Some(c) => mul_s(&b, 1.0 / c as f64, loc)?,
                        None => div(&b, &reduce(ReduceOp::Sum, &ones_like(x0, loc)?, axes, true, loc)?, loc)?,
                    }
                }
                // Split evenly among the elements equal to the extreme (TensorFlow's rule).
                ReduceOp::Max | ReduceOp::Min => {
                    let yk = keep_dims(y, x0, axes, *keepdims, loc)?;
                    let ind = cast(&bin(BinaryOp::Equal, x0, &yk, loc)?, x0.dtype(), loc)?;
                    let count = reduce(ReduceOp::Sum, &ind, axes, true, loc)?;
                    mul(&div(&ind, &count, loc)?, &gk, loc)?
                }
                // The product of the other elements, exact with zeros: with no zero it is
                // prod / x; with one zero only that element gets the product of the rest; with
                // more, every element gets 0.
                ReduceOp::Prod => {
                    let dt = x0.dtype();
                    let is0 = cmp_s(BinaryOp::Equal, x0, 0.0, loc)?;
                    let nonzero = select(&is0, &konst(1.0, dt), x0, loc)?;
                    let prod = reduce(ReduceOp::Prod, &nonzero, axes, true, loc)?;
                    let zeros = reduce(ReduceOp::Sum, &cast(&is0, dt, loc)?, axes, true, loc)?;
                    let zero = konst(0.0, dt);
                    let at_zero = select(&cmp_s(BinaryOp::Equal, &zeros, 1.0, loc)?, &prod, &zero, loc)?;
                    let elsewhere =
                        select(&cmp_s(BinaryOp::Equal, &zeros, 0.0, loc)?, &div(&prod, x0, loc)?, &zero, loc)?;
                    mul(&select(&is0, &at_zero, &elsewhere, loc)?, &gk, loc)?
                }
            };
            smallvec![Some(d)]
        }
        // Integer outputs: not differentiable.
        PrimOp::ArgReduce { op: ArgOp::Max | ArgOp::Min, .. } => none(),
        PrimOp::Reshape(_) => smallvec![if n(0) { Some(reshape_to(g, x0.shape(), loc)?) } else { None }],
        PrimOp::Transpose(perm) => {
            let mut inv: SmallVec<[usize; 4]> = smallvec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            smallvec![if n(0) { Some(apply(PrimOp::Transpose(inv), &[g], loc)?) } else { None }]
        }
        PrimOp::BroadcastTo(_) => smallvec![if n(0) { Some(unbroadcast(g, x0.shape(), loc)?) } else { None }],
        // Each input gets its block of `g` back.
        PrimOp::Concat(axis) => {
            let mut out = Grads::new();
            let mut at = 0usize;
            for (i, xi) in x.iter().enumerate() {
                let len = xi.shape().dim(*axis).ok_or_else(|| unknown_dims("concat", "of concat", xi.shape()))?;
                if n(i) {
                    let mut begin: SmallVec<[usize; 4]> = smallvec![0; xi.rank()];
                    begin[*axis] = at;
                    let size: SmallVec<[isize; 4]> =
                        (0..xi.rank()).map(|d| if d == *axis { len as isize } else { -1 }).collect();
                    out.push(Some(apply(PrimOp::Slice { begin, size }, &[g], loc)?));
                } else {
                    out.push(None);
                }
                at += len;
            }
            out
        }
        // `g` placed back into zeros of the input's shape (padded with concats).
        PrimOp::Slice { begin, .. } => {
            if !n(0) {
                return Ok(none());
            }
            if !x0.shape().is_fully_known() || !g.shape().is_fully_known() {
                return Err(unknown_dims("slice", "of slice", x0.shape()).at(loc));
            }
            let mut cur = g.clone();
            for d in 0..x0.rank() {
                let (before, len) = (begin[d], g.shape()[d]);
                let after = x0.shape()[d] - before - len;
                if before == 0 && after == 0 {
                    continue;
                }
                let mut parts: Vec<Tensor> = Vec::with_capacity(3);
                let pad = |k: usize| -> Result<Tensor> {
                    let mut s = cur.shape().clone();
                    s.0[d] = k;
                    apply(PrimOp::BroadcastTo(s), &[&konst(0.0, g.dtype())], loc)
                };
                if before > 0 {
                    parts.push(pad(before)?);
                }
                parts.push(cur.clone());
                if after > 0 {
                    parts.push(pad(after)?);
                }
                let refs: Vec<&Tensor> = parts.iter().collect();
                cur = apply(PrimOp::Concat(d), &refs, loc)?;
            }
            smallvec![Some(cur)]
        }
        // Scatter-add of `g` into zeros of the input's shape (SparseOp::ToDense adds repeats).
        PrimOp::Gather(axis) => {
            if !n(0) {
                return Ok(none());
            }
            smallvec![Some(gather_grad(x0, &x[1], g, *axis, loc)?), None]
        }
        PrimOp::OneHot { .. } => none(), // integer indices in: not differentiable
        PrimOp::MatMul { transpose_a: ta, transpose_b: tb } => {
            let (a, b) = (x0, &x[1]);
            let mm = |p: &Tensor, q: &Tensor, tp: bool, tq: bool| {
                apply(PrimOp::MatMul { transpose_a: tp, transpose_b: tq }, &[p, q], loc)
            };
            // C = op(A) op(B): each case is one matmul with transpose flags, no transposed copy.
            let ga = if n(0) {
                Some(match (ta, tb) {
                    (false, false) => mm(g, b, false, true)?,
                    (false, true) => mm(g, b, false, false)?,
                    (true, false) => mm(b, g, false, true)?,
                    (true, true) => mm(b, g, true, true)?,
                })
            } else {
                None
            };
            let gb = if n(1) {
                Some(match (ta, tb) {
                    (false, false) => mm(a, g, true, false)?,
                    (false, true) => mm(g, a, true, false)?,
                    (true, false) => mm(a, g, false, false)?,
                    (true, true) => mm(g, a, true, true)?,
                })
            } else {
                None
            };
            smallvec![
                ga.map(|t| unbroadcast(&t, a.shape(), loc)).transpose()?,
                gb.map(|t| unbroadcast(&t, b.shape(), loc)).transpose()?
            ]
        }
        // softmax: y (g - sum(g y)); log_softmax: g - softmax(x) sum(g), softmax(x) = exp(y).
        PrimOp::Softmax { axis, log } => {
            if !n(0) {
                return Ok(none());
            }
            let ax = [*axis];
            let d = if *log {
                let s = reduce(ReduceOp::Sum, g, &ax, true, loc)?;
                sub(g, &mul(&un(UnaryOp::Exp, y, loc)?, &s, loc)?, loc)?
            } else {
                let s = reduce(ReduceOp::Sum, &mul(g, y, loc)?, &ax, true, loc)?;
                mul(y, &sub(g, &s, loc)?, loc)?
            };
            smallvec![Some(d)]
        }
        // Integer outputs: not differentiable.
        PrimOp::Sparse(SparseOp::Validate(_))
        | PrimOp::Sparse(SparseOp::Reorder)
        | PrimOp::Sparse(SparseOp::Unique)
        | PrimOp::Sparse(SparseOp::NonZero) => none(),
        // (indices, values, default): values get `g` at their indices, the default the sum of
        // `g` where no index lands.
        PrimOp::Sparse(SparseOp::ToDense(dense)) => {
            let (idx, vals) = (x0, &x[1]);
            let gv = if n(1) { Some(gather_nd(g, idx, dense, loc)?) } else { None };
            let gd = if n(2) {
                let ones = ones_like(vals, loc)?;
                let covered = apply(
                    PrimOp::Sparse(SparseOp::ToDense(dense.clone())),
                    &[idx, &ones, &konst(0.0, g.dtype())],
                    loc,
                )?;
                let free = select(&cmp_s(BinaryOp::Greater, &covered, 0.0, loc)?, &konst(0.0, g.dtype()), g, loc)?;
                let all: SmallVec<[usize; 4]> = (0..free.rank()).collect();
                Some(reduce(ReduceOp::Sum, &free, &all, false, loc)?)
            } else {
                None
            };
            smallvec![None, gv, gd]
        }
        // (indices, values) of A [m, k], dense B [k, n] -> C = A B. dvalues_e = g[row_e] . B[col_e];
        // dB = Aᵀ g, a sparse matmul with the transposed (re-sorted) entries.
        PrimOp::Sparse(SparseOp::MatMul(dense)) => {
            let (idx, vals, b) = (x0, &x[1], &x[2]);
            let col = |c: i64| -> Result<Tensor> {
                let t = apply(PrimOp::Gather(1), &[idx, &i64s(vec![c], &[1])], loc)?;
                reshape(&t, &[-1], loc)
            };
            let gv = if n(1) {
                let rows = apply(PrimOp::Gather(0), &[g, &col(0)?], loc)?;
                let bs = apply(PrimOp::Gather(0), &[b, &col(1)?], loc)?;
                Some(reduce(ReduceOp::Sum, &mul(&rows, &bs, loc)?, &[1], false, loc)?)
            } else {
                None
            };
            let gb = if n(2) {
                let swapped = apply(PrimOp::Gather(1), &[idx, &i64s(vec![1, 0], &[2])], loc)?;
                let perm = apply(PrimOp::Sparse(SparseOp::Reorder), &[&swapped], loc)?;
                let ti = apply(PrimOp::Gather(0), &[&swapped, &perm], loc)?;
                let tv = apply(PrimOp::Gather(0), &[vals, &perm], loc)?;
                let t_shape = Shape::new(&[dense[1], dense[0]]);
                Some(apply(PrimOp::Sparse(SparseOp::MatMul(t_shape)), &[&ti, &tv, g], loc)?)
            } else {
                None
            };
            smallvec![None, gv, gb]
        }
        // Float output, but each output element's inputs are found by a data-dependent
        // grouping that no primitive exposes: no gradient (TensorFlow's LookupError).
        PrimOp::Sparse(SparseOp::SegmentSum) => {
            if n(1) {
                return Err(Error::NoGradient {
                    op: "sparse::segment_sum",
                    message: "no gradient is defined for the values of sparse::coalesce (segment_sum); differentiate sparse::to_dense or sparse::matmul of the uncoalesced tensor instead (repeated entries add up there too)".into(),
                    location: Some(loc),
                });
            }
            none()
        }
    })
}

/// `g` at `indices` (i64 `[nnz, rank]`) of a dense tensor of shape `dense`: flat offsets,
/// then a gather from the flattened `g`.
fn gather_nd(g: &Tensor, idx: &Tensor, dense: &Shape, loc: Loc) -> Result<Tensor> {
    let strides: Vec<i64> = dense.strides().iter().map(|&s| s as i64).collect();
    let r = strides.len();
    let off = mul(idx, &i64s(strides, &[r]), loc)?;
    let off = reduce(ReduceOp::Sum, &off, &[1], false, loc)?;
    let flat = reshape(g, &[-1], loc)?;
    apply(PrimOp::Gather(0), &[&flat, &off], loc)
}

/// The gradient of `gather(x, idx, axis)`: `g` scatter-added into zeros of `x`'s shape. The
/// input is seen as `[A, n, B]` (before, on and after the axis); each element of `g` goes to
/// `(a, idx[k], b)` through `SparseOp::ToDense`, which adds repeated indices.
fn gather_grad(x: &Tensor, idx: &Tensor, g: &Tensor, axis: usize, loc: Loc) -> Result<Tensor> {
    if !x.shape().is_fully_known() || !idx.shape().is_fully_known() {
        return Err(unknown_dims("gather", "of gather", x.shape()).at(loc));
    }
    let s = x.shape();
    let a: usize = s[..axis].iter().product();
    let nn = s[axis];
    let b: usize = s[axis + 1..].iter().product();
    let k = idx.num_elements();
    let total = a * k * b;
    let col = |t: Tensor, dims: [isize; 4]| -> Result<Tensor> {
        let t = reshape(&t, &dims, loc)?;
        apply(PrimOp::BroadcastTo(Shape::new(&[a, k, b, 1])), &[&t], loc)
    };
    let ia = col(i64s((0..a as i64).collect(), &[a]), [a as isize, 1, 1, 1])?;
    let ik = col(cast(idx, DType::I64, loc)?, [1, k as isize, 1, 1])?;
    let ib = col(i64s((0..b as i64).collect(), &[b]), [1, 1, b as isize, 1])?;
    let indices = apply(PrimOp::Concat(3), &[&ia, &ik, &ib], loc)?;
    let indices = reshape(&indices, &[total as isize, 3], loc)?;
    let values = reshape(g, &[total as isize], loc)?;
    let dense = apply(
        PrimOp::Sparse(SparseOp::ToDense(Shape::new(&[a, nn, b]))),
        &[&indices, &values, &konst(0.0, g.dtype())],
        loc,
    )?;
    reshape_to(&dense, s, loc)
}
