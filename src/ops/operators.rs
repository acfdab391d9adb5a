//! `std::ops` for tensors. Every operator returns `Result<Tensor>` and is implemented for
//! `&Tensor`, `Tensor` and `Result<Tensor>` on the left (a `Result` only with a tensor on the
//! right: the orphan rule forbids `Result + f32`) and host scalars on either side, so
//! `(&x * &w + &b)?` and `(2.0f32 * &t)?` read naturally. An `Err` on the left passes
//! through; host scalars are weak (they take the tensor's dtype).

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::error::{Loc, Result};
use crate::ops::math::{binary, true_div, unary};
use crate::prim::BinaryOp;
use crate::prim::UnaryOp;
use crate::tensor::Tensor;

/// One side of an operator, borrowed as a `&Tensor` without cloning where possible.
trait Operand {
    fn with<R>(self, f: impl FnOnce(&Tensor) -> Result<R>) -> Result<R>;
}

impl Operand for &Tensor {
    #[inline(always)]
    fn with<R>(self, f: impl FnOnce(&Tensor) -> Result<R>) -> Result<R> {
        f(self)
    }
}
impl Operand for Tensor {
    #[inline(always)]
    fn with<R>(self, f: impl FnOnce(&Tensor) -> Result<R>) -> Result<R> {
        f(&self)
    }
}
impl Operand for Result<Tensor> {
    #[inline(always)]
    fn with<R>(self, f: impl FnOnce(&Tensor) -> Result<R>) -> Result<R> {
        f(&self?)
    }
}

macro_rules! scalar_operand {
    ($($s:ty),*) => {$(
        impl Operand for $s {
            #[inline(always)]
            fn with<R>(self, f: impl FnOnce(&Tensor) -> Result<R>) -> Result<R> {
                f(&Tensor::weak_scalar(self))
            }
        }
    )*};
}
scalar_operand!(f32, f64, i32, i64, u8);

#[inline(always)]
fn run(op: BinaryOp, a: impl Operand, b: impl Operand, loc: Loc) -> Result<Tensor> {
    a.with(|a| {
        b.with(|b| match op {
            BinaryOp::Div => true_div(a, b, loc),
            _ => binary(op, a, b, loc),
        })
    })
}

macro_rules! op_impls {
    ($tr:ident, $m:ident, $op:ident; $(($l:ty, $r:ty)),* $(,)?) => {$(
        impl $tr<$r> for $l {
            type Output = Result<Tensor>;
            #[track_caller]
            #[inline]
            fn $m(self, rhs: $r) -> Result<Tensor> {
                run(BinaryOp::$op, self, rhs, Loc::caller())
            }
        }
    )*};
}

macro_rules! all_pairs {
    ($tr:ident, $m:ident, $op:ident) => {
        op_impls!($tr, $m, $op;
            (&Tensor, &Tensor), (&Tensor, Tensor), (&Tensor, Result<Tensor>),
            (Tensor, &Tensor), (Tensor, Tensor), (Tensor, Result<Tensor>),
            (Result<Tensor>, &Tensor), (Result<Tensor>, Tensor),
            (&Tensor, f32), (&Tensor, f64), (&Tensor, i32), (&Tensor, i64), (&Tensor, u8),
            (Tensor, f32), (Tensor, f64), (Tensor, i32), (Tensor, i64), (Tensor, u8),
            (f32, &Tensor), (f64, &Tensor), (i32, &Tensor), (i64, &Tensor), (u8, &Tensor),
            (f32, Tensor), (f64, Tensor), (i32, Tensor), (i64, Tensor), (u8, Tensor),
        );
    };
}

all_pairs!(Add, add, Add);
all_pairs!(Sub, sub, Sub);
all_pairs!(Mul, mul, Mul);
all_pairs!(Div, div, Div);

impl Neg for &Tensor {
    type Output = Result<Tensor>;
    #[track_caller]
    fn neg(self) -> Result<Tensor> {
        unary(UnaryOp::Neg, self, Loc::caller())
    }
}

impl Neg for Tensor {
    type Output = Result<Tensor>;
    #[track_caller]
    fn neg(self) -> Result<Tensor> {
        unary(UnaryOp::Neg, &self, Loc::caller())
    }
}
