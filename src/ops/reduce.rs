//! Reductions over `axes: Option<&[isize]>` (`None` = every axis, as TensorFlow's
//! `axis=None`; negative axes count from the end) with `keepdims`, and arg-reductions.

use super::arg;
use crate::dispatch::apply;
use crate::error::{Error, Loc, Result};
use crate::interop::ndarray::IntoTensor;
use crate::prim::{ArgOp, PrimOp, ReduceOp};
use crate::shape::{normalize_axes, normalize_axis};
use crate::tensor::Tensor;

pub(crate) fn reduce(op: ReduceOp, x: &Tensor, axes: Option<&[isize]>, keepdims: bool, loc: Loc) -> Result<Tensor> {
    let axes = normalize_axes(op.name(), axes, x.rank()).map_err(|e| e.at(loc))?;
    apply(PrimOp::Reduce { op, axes, keepdims }, &[x], loc)
}

fn arg_reduce(op: ArgOp, x: &Tensor, axes: Option<&[isize]>, keepdims: bool, loc: Loc) -> Result<Tensor> {
    let name = if op == ArgOp::Max { "argmax" } else { "argmin" };
    let axis = match axes {
        None => None,
        Some([a]) => Some(normalize_axis(name, *a, x.rank()).map_err(|e| e.at(loc))?),
        Some(more) => {
            return Err(Error::InvalidArgument {
                op: name,
                message: format!("expected one axis (or None for the flattened tensor), found {more:?}"),
                location: Some(loc),
            });
        }
    };
    apply(PrimOp::ArgReduce { op, axis, keepdims }, &[x], loc)
}

macro_rules! reduce_api {
    ($($f:ident => $v:ident, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            #[track_caller]
            pub fn $f(x: impl IntoTensor, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
                let loc = Loc::caller();
                reduce(ReduceOp::$v, &arg(x, loc)?, axes, keepdims, loc)
            }
        )*
        impl Tensor {
            $(
                #[doc = $doc]
                #[track_caller]
                pub fn $f(&self, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
                    reduce(ReduceOp::$v, self, axes, keepdims, Loc::caller())
                }
            )*
        }
    };
}

reduce_api! {
    reduce_sum => Sum, "Sum over `axes` (`None` = all). Integer sums wrap; f16/bf16 accumulate in f32.";
    reduce_mean => Mean, "Mean over `axes` (`None` = all). Integer means truncate, as in TensorFlow.";
    reduce_max => Max, "Maximum over `axes` (`None` = all); NaN propagates. An empty axis gives the dtype's lowest value.";
    reduce_min => Min, "Minimum over `axes` (`None` = all); NaN propagates. An empty axis gives the dtype's highest value.";
    reduce_prod => Prod, "Product over `axes` (`None` = all).";
}

/// Index (i64) of the largest value along one axis, or of the flattened tensor when
/// `axes` is `None`; the first one on ties, NaN counts as largest (NumPy).
#[track_caller]
pub fn argmax(x: impl IntoTensor, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
    let loc = Loc::caller();
    arg_reduce(ArgOp::Max, &arg(x, loc)?, axes, keepdims, loc)
}

/// Index (i64) of the smallest value along one axis, or of the flattened tensor when
/// `axes` is `None`; the first one on ties, NaN counts as smallest (NumPy).
#[track_caller]
pub fn argmin(x: impl IntoTensor, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
    let loc = Loc::caller();
    arg_reduce(ArgOp::Min, &arg(x, loc)?, axes, keepdims, loc)
}

impl Tensor {
    /// See [`argmax`].
    #[track_caller]
    pub fn argmax(&self, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
        arg_reduce(ArgOp::Max, self, axes, keepdims, Loc::caller())
    }
    /// See [`argmin`].
    #[track_caller]
    pub fn argmin(&self, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
        arg_reduce(ArgOp::Min, self, axes, keepdims, Loc::caller())
    }
}
