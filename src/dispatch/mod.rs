//! The one way down: every primitive a public op, a gradient rule or a composite runs goes
//! through `apply`, the only place that decides between eager and traced (record a graph
//! node), whether a gradient tape records it (`tape`), and, for eager ops, hands it to
//! `runtime::placement` (which picks the device and calls the backend).
//!
//! Layer: above `graph` (it calls `graph::trace::record`) and `runtime`; below the public
//! ops, autograd's rules and everything a user calls. Nothing below imports it.

pub(crate) mod created;
pub(crate) mod tape;

use crate::error::{Loc, Result};
use crate::prim::PrimOp;
use crate::tensor::Tensor;

/// Runs one primitive: inference (all user errors), then the kernel of the inputs' device.
/// Errors get the user's call location.
#[inline]
pub(crate) fn apply(op: PrimOp, inputs: &[&Tensor], loc: Loc) -> Result<Tensor> {
    let (shape, dtype) = match crate::prim::infer::infer(&op, inputs) {
        Ok(m) => m,
        Err(e) => return Err(e.at(loc)),
    };
    // Traced mode: symbolic inputs record a node with the same (shape, dtype) instead of
    // running a kernel. So do ops on concrete tensors while a trace is active (as in
    // TensorFlow's graphs and JAX's omnistaging): the graph holds the whole computation,
    // and the optimizer's constant folding decides what to precompute, under its size cap.
    // A weak host scalar taking a tensor's dtype is a literal's conversion, not an op.
    let weak_literal = matches!(op, PrimOp::Cast(_)) && inputs.first().is_some_and(|t| t.is_weak());
    // Gradient tapes see every primitive here, eager or traced (one thread-local read when
    // none is recording).
    let taped = tape::is_recording().then(|| op.clone());
    let out = if inputs.iter().any(|t| t.is_symbolic()) || (!weak_literal && crate::graph::trace::active().is_some()) {
        crate::graph::trace::record(op, inputs, shape, dtype, loc)?
    } else {
        let _span = crate::profiler::op_span(op.name(), crate::runtime::placement::requested(inputs));
        crate::runtime::placement::run(&op, inputs, shape, dtype).map_err(|e| e.at(loc))?
    };
    if let Some(op) = taped {
        tape::record_prim(&op, inputs, &out);
    }
    Ok(out)
}
