//! The public ops: free functions (`ff::add(&a, &b)`) and the same names as methods
//! (`a.add(&b)`). Each is `#[track_caller]`, converts its arguments (`IntoTensor`),
//! resolves dtypes (weak scalars, promotion) and calls `dispatch::apply` with one primitive, or is
//! a composite of other public ops written once here.

pub(crate) mod control;
pub(crate) mod creation;
pub(crate) mod math;
pub(crate) mod nn;
mod operators;
pub(crate) mod print;
pub(crate) mod reduce;
pub(crate) mod shape;

use crate::error::{Loc, Result};
use crate::interop::ndarray::IntoTensor;
use crate::tensor::Tensor;

/// Converts an argument, tagging a conversion error with the user's call site.
#[inline]
pub(crate) fn arg(x: impl IntoTensor, loc: Loc) -> Result<Tensor> {
    x.into_tensor().map_err(|e| e.at(loc))
}
