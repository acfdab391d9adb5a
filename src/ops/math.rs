//! Elementwise math: unary functions, binary arithmetic with broadcasting and dtype
//! resolution, comparisons, logic, `where_`, `clip` and `cast`.

use super::arg;
use crate::dispatch::apply;
use crate::dtype::DType;
use crate::error::{Loc, Result};
use crate::interop::ndarray::IntoTensor;
use crate::prim::promote::unify;
use crate::prim::{BinaryOp, PrimOp, UnaryOp};
use crate::tensor::Tensor;

#[inline]
pub(crate) fn unary(op: UnaryOp, x: &Tensor, loc: Loc) -> Result<Tensor> {
    apply(PrimOp::Unary(op), &[x], loc)
}

#[inline]
pub(crate) fn cast_to(x: &Tensor, d: DType, loc: Loc) -> Result<Tensor> {
    if x.dtype() == d && !x.is_weak() {
        return Ok(x.clone());
    }
    apply(PrimOp::Cast(d), &[x], loc)
}

/// A binary op after dtype resolution: one fast path when dtypes agree, else weak-scalar
/// adoption or promotion (strict mode rejects two different strong dtypes).
#[inline]
pub(crate) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor, loc: Loc) -> Result<Tensor> {
    if a.dtype() == b.dtype() {
        return apply(PrimOp::Binary(op), &[a, b], loc);
    }
    let d = unify(op.name(), a, b).map_err(|e| e.at(loc))?;
    let (ca, cb) = (cast_to(a, d, loc)?, cast_to(b, d, loc)?);
    apply(PrimOp::Binary(op), &[&ca, &cb], loc)
}

/// True division: integers are divided as floats (`i32 / i32 -> f64`, `u8 / u8 -> f32`),
/// as TensorFlow's `/` does; `floor_div` is the integer division.
pub(crate) fn true_div(a: &Tensor, b: &Tensor, loc: Loc) -> Result<Tensor> {
    let d = if a.dtype() == b.dtype() { a.dtype() } else { unify("div", a, b).map_err(|e| e.at(loc))? };
    let target = match d {
        DType::U8 => DType::F32,
        DType::I32 | DType::I64 => DType::F64,
        _ => return binary(BinaryOp::Div, a, b, loc),
    };
    let (ca, cb) = (cast_to(a, target, loc)?, cast_to(b, target, loc)?);
    apply(PrimOp::Binary(BinaryOp::Div), &[&ca, &cb], loc)
}

macro_rules! unary_api {
    ($($f:ident => $v:ident, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            #[track_caller]
            pub fn $f(x: impl IntoTensor) -> Result<Tensor> {
                let loc = Loc::caller();
                unary(UnaryOp::$v, &arg(x, loc)?, loc)
            }
        )*
        impl Tensor {
            $(
                #[doc = $doc]
                #[track_caller]
                pub fn $f(&self) -> Result<Tensor> {
                    unary(UnaryOp::$v, self, Loc::caller())
                }
            )*
        }
    };
}

unary_api! {
    neg => Neg, "`-x` elementwise (floats, i32, i64; integers wrap).";
    abs => Abs, "`|x|` elementwise.";
    square => Square, "`x * x` elementwise.";
    relu => Relu, "`max(x, 0)` elementwise (NaN stays NaN).";
    exp => Exp, "`e^x` elementwise (floats).";
    log => Log, "Natural logarithm elementwise (floats).";
    sqrt => Sqrt, "Square root elementwise (floats).";
    rsqrt => Rsqrt, "`1 / sqrt(x)` elementwise (floats).";
    sigmoid => Sigmoid, "`1 / (1 + e^-x)` elementwise, stable for large `|x|` (floats).";
    tanh => Tanh, "Hyperbolic tangent elementwise (floats).";
    gelu => Gelu, "GELU, exact (erf) form: `x * Φ(x)` (floats).";
    sin => Sin, "Sine elementwise (floats).";
    cos => Cos, "Cosine elementwise (floats).";
    logical_not => LogicalNot, "`!x` elementwise (bool).";
}

macro_rules! binary_api {
    ($($f:ident => $v:ident, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            #[track_caller]
            pub fn $f(a: impl IntoTensor, b: impl IntoTensor) -> Result<Tensor> {
                let loc = Loc::caller();
                binary(BinaryOp::$v, &arg(a, loc)?, &arg(b, loc)?, loc)
            }
        )*
        impl Tensor {
            $(
                #[doc = $doc]
                #[track_caller]
                pub fn $f(&self, other: impl IntoTensor) -> Result<Tensor> {
                    let loc = Loc::caller();
                    binary(BinaryOp::$v, self, &arg(other, loc)?, loc)
                }
            )*
        }
    };
}

binary_api! {
    add => Add, "`a + b` with broadcasting (integers wrap).";
    sub => Sub, "`a - b` with broadcasting.";
    mul => Mul, "`a * b` with broadcasting.";
    floor_div => FloorDiv, "`floor(a / b)`: integer division for integers (rounding toward -inf; `x // 0` is 0).";
    pow => Pow, "`a ^ b` with broadcasting.";
    maximum => Maximum, "Elementwise maximum (NaN propagates).";
    minimum => Minimum, "Elementwise minimum (NaN propagates).";
    equal => Equal, "`a == b` elementwise, a bool tensor.";
    not_equal => NotEqual, "`a != b` elementwise, a bool tensor.";
    less => Less, "`a < b` elementwise, a bool tensor.";
    less_equal => LessEqual, "`a <= b` elementwise, a bool tensor.";
    greater => Greater, "`a > b` elementwise, a bool tensor.";
    greater_equal => GreaterEqual, "`a >= b` elementwise, a bool tensor.";
    logical_and => LogicalAnd, "`a && b` elementwise (bool).";
    logical_or => LogicalOr, "`a || b` elementwise (bool).";
}

/// `a / b`: true division (integers divide as floats: `i32 / i32` is f64, as in TensorFlow).
#[track_caller]
pub fn div(a: impl IntoTensor, b: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    true_div(&arg(a, loc)?, &arg(b, loc)?, loc)
}

/// `cond ? x : y` elementwise; the three inputs broadcast together.
#[track_caller]
pub fn where_(cond: impl IntoTensor, x: impl IntoTensor, y: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    let (c, x, y) = (arg(cond, loc)?, arg(x, loc)?, arg(y, loc)?);
    select(&c, &x, &y, loc)
}

pub(crate) fn select(c: &Tensor, x: &Tensor, y: &Tensor, loc: Loc) -> Result<Tensor> {
    if x.dtype() == y.dtype() {
        return apply(PrimOp::Select, &[c, x, y], loc);
    }
    let d = unify("where_", x, y).map_err(|e| e.at(loc))?;
    let (cx, cy) = (cast_to(x, d, loc)?, cast_to(y, d, loc)?);
    apply(PrimOp::Select, &[c, &cx, &cy], loc)
}

/// `min(max(x, lo), hi)` elementwise (TensorFlow's `clip_by_value`).
#[track_caller]
pub fn clip(x: impl IntoTensor, lo: impl IntoTensor, hi: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    clip_impl(&arg(x, loc)?, &arg(lo, loc)?, &arg(hi, loc)?, loc)
}

/// `minimum(maximum(x, lo), hi)`, with dtype errors named after `clip`.
fn clip_impl(x: &Tensor, lo: &Tensor, hi: &Tensor, loc: Loc) -> Result<Tensor> {
    unify("clip", x, lo).and_then(|_| unify("clip", x, hi)).map_err(|e| e.at(loc))?;
    let m = binary(BinaryOp::Maximum, x, lo, loc)?;
    binary(BinaryOp::Minimum, &m, hi, loc)
}

/// `x` converted to `dtype`: floats to integers truncate toward zero and saturate, integers
/// wrap, anything to bool is `x != 0`.
#[track_caller]
pub fn cast(x: impl IntoTensor, dtype: DType) -> Result<Tensor> {
    let loc = Loc::caller();
    apply(PrimOp::Cast(dtype), &[&arg(x, loc)?], loc)
}

impl Tensor {
    /// `self / other`: true division (see [`div`]).
    #[track_caller]
    pub fn div(&self, other: impl IntoTensor) -> Result<Tensor> {
        let loc = Loc::caller();
        true_div(self, &arg(other, loc)?, loc)
    }
    /// `self` where `cond`, else `other` (see [`where_`]).
    #[track_caller]
    pub fn where_(&self, cond: impl IntoTensor, other: impl IntoTensor) -> Result<Tensor> {
        let loc = Loc::caller();
        select(&arg(cond, loc)?, self, &arg(other, loc)?, loc)
    }
    /// Clips to `[lo, hi]` (see [`clip`]).
    #[track_caller]
    pub fn clip(&self, lo: impl IntoTensor, hi: impl IntoTensor) -> Result<Tensor> {
        let loc = Loc::caller();
        clip_impl(self, &arg(lo, loc)?, &arg(hi, loc)?, loc)
    }
    /// Converts to `dtype` (see [`cast`]).
    #[track_caller]
    pub fn cast(&self, dtype: DType) -> Result<Tensor> {
        apply(PrimOp::Cast(dtype), &[self], Loc::caller())
    }
}
