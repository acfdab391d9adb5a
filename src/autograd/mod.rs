//! Automatic differentiation: `GradientTape` (`tape.rs`), the gradient rule of every
//! primitive (`rules.rs`), gradients through traced control flow and traced function calls
//! (`control.rs`), and `stop_gradient`.

mod control;
mod rules;
mod tape;

pub(crate) use control::{record_call, record_cond, record_while, trace_vjp};
pub use tape::{GradSource, GradSourceRef, GradientOptions, GradientTape, TapeOptions, UnconnectedGradients};

use crate::error::{Loc, Result};
use crate::interop::ndarray::IntoTensor;
use crate::tensor::Tensor;

/// `x` unchanged, as a tensor no gradient tape sees: gradients do not flow back through it
/// (`tf.stop_gradient`). It is a new handle to the same data, not a copy, and adds no graph
/// node when traced.
#[track_caller]
pub fn stop_gradient(x: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    Ok(crate::ops::arg(x, loc)?.fresh_handle())
}
