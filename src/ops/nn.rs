//! `matmul` (batched, broadcast batch dims, transpose flags), `softmax`, `log_softmax`.

use super::arg;
use crate::dispatch::apply;
use crate::error::{Loc, Result};
use crate::interop::ndarray::IntoTensor;
use crate::prim::PrimOp;
use crate::shape::normalize_axis;
use crate::tensor::Tensor;

/// `a @ b` over the last two dims; leading (batch) dims broadcast. Both inputs need rank >= 2.
#[track_caller]
pub fn matmul(a: impl IntoTensor, b: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    mm(&arg(a, loc)?, &arg(b, loc)?, false, false, loc)
}

/// `op(a) @ op(b)` where `op` transposes the last two dims when its flag is set; no
/// transposed copy is made.
#[track_caller]
pub fn matmul_with(a: impl IntoTensor, b: impl IntoTensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
    let loc = Loc::caller();
    mm(&arg(a, loc)?, &arg(b, loc)?, transpose_a, transpose_b, loc)
}

pub(crate) fn mm(a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool, loc: Loc) -> Result<Tensor> {
    let (ca, cb);
    let (a, b) = if a.dtype() != b.dtype() {
        let d = crate::prim::promote::unify("matmul", a, b).map_err(|e| e.at(loc))?;
        ca = super::math::cast_to(a, d, loc)?;
        cb = super::math::cast_to(b, d, loc)?;
        (&ca, &cb)
    } else {
        (a, b)
    };
    apply(PrimOp::MatMul { transpose_a, transpose_b }, &[a, b], loc)
}

pub(crate) fn soft(x: &Tensor, axis: isize, log: bool, loc: Loc) -> Result<Tensor> {
    let name = if log { "log_softmax" } else { "softmax" };
    let rank = x.rank().max(1);
    let axis = normalize_axis(name, axis, rank).map_err(|e| e.at(loc))?;
    apply(PrimOp::Softmax { axis, log }, &[x], loc)
}

/// `exp(x) / sum(exp(x))` along `axis` (usually -1), computed stably (max subtracted).
#[track_caller]
pub fn softmax(x: impl IntoTensor, axis: isize) -> Result<Tensor> {
    let loc = Loc::caller();
    soft(&arg(x, loc)?, axis, false, loc)
}

/// `x - log(sum(exp(x)))` along `axis`, computed stably.
#[track_caller]
pub fn log_softmax(x: impl IntoTensor, axis: isize) -> Result<Tensor> {
    let loc = Loc::caller();
    soft(&arg(x, loc)?, axis, true, loc)
}

impl Tensor {
    /// See [`matmul`].
    #[track_caller]
    pub fn matmul(&self, other: impl IntoTensor) -> Result<Tensor> {
        let loc = Loc::caller();
        mm(self, &arg(other, loc)?, false, false, loc)
    }
    /// See [`softmax`].
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        soft(self, axis, false, Loc::caller())
    }
    /// See [`log_softmax`].
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        soft(self, axis, true, Loc::caller())
    }
}
