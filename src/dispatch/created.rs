//! Where a created tensor goes (zeros, ranges, initializers, random draws): eagerly, to the
//! scope's device (`runtime::placement`); while tracing, nowhere yet: it stays on the host
//! and enters the graph as a constant, placed when the plan runs.

use crate::dtype::DType;
use crate::error::Result;
use crate::runtime::placement::{self, Dist};
use crate::tensor::Tensor;

/// A tensor a creation op made on the host, on the scope's GPU when there is one and no
/// trace is being recorded (counted as an upload).
pub(crate) fn place_created(t: Tensor) -> Result<Tensor> {
    if crate::graph::trace::active().is_some() {
        return Ok(t);
    }
    placement::place_created(t)
}

/// A seeded draw made on the scope's GPU, or `None` to draw on the host (see
/// `placement::random_on_gpu`; always the host while tracing).
pub(crate) fn random_on_gpu(shape: &[usize], dtype: DType, seed: u64, dist: Dist) -> Option<Result<Tensor>> {
    if crate::graph::trace::active().is_some() {
        return None;
    }
    placement::random_on_gpu(shape, dtype, seed, dist)
}
