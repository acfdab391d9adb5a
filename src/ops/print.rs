//! `ff::print`, as `tf.print`: eagerly it prints at once; inside a traced function it is a
//! graph op that prints on every call (host `println!` there runs only while tracing).
//! Output goes through `runtime::print` (stdout, or the buffer of `capture_prints`).

use crate::error::{Loc, Result};
use crate::tensor::Tensor;

/// Prints `x` now (eager) or on every run of the graph being traced (whether `x` is
/// symbolic or a concrete tensor the body made or captured).
#[track_caller]
pub fn print(x: &Tensor) -> Result<()> {
    let loc = Loc::caller();
    // Inside a trace even a concrete tensor prints on every call, as tf.print does: the
    // print node reads it as a constant.
    if x.is_symbolic() || crate::graph::trace::active().is_some() {
        crate::graph::trace::record_print(x, loc)?;
    } else {
        crate::runtime::print::emit(x);
    }
    Ok(())
}
