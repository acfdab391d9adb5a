//! Backends: the kernels that run primitives on a device (`cpu`: rayon and gemm; `wgpu`:
//! WGSL on a GPU, compiled with the `gpu` feature; `no_gpu.rs` stands in without it). Backends see primitives (`prim`) and tensors, never a graph, the
//! dispatch layer or a public op; `runtime::placement` picks one per op.
//!
//! The interface the layers above use: `cpu::execute` and `wgpu::{check, execute,
//! check_fused, run_fused}` (called by `runtime::placement` only), the host fast paths in
//! `host` (called by `runtime`: the graph executor's in-place steps and a variable's
//! updates), and the capability queries in `caps` (asked by the optimizer).

pub(crate) mod cpu;
#[cfg(feature = "gpu")]
pub(crate) mod wgpu;
/// Without the `gpu` feature: the same interface, for a machine with no adapter.
#[cfg(not(feature = "gpu"))]
#[path = "no_gpu.rs"]
pub(crate) mod wgpu;

/// The CPU backend's kernels that write into a buffer the caller owns (no allocation):
/// in-place elementwise steps, a fused step into a planned buffer, a product accumulated
/// into a variable, and the worker kept awake while a plan runs.
pub(crate) mod host {
    pub(crate) use super::cpu::elementwise::{binary_inplace, unary_inplace};
    pub(crate) use super::cpu::fused::run as run_fused;
    pub(crate) use super::cpu::matmul::matmul_accumulate;
    pub(crate) use super::cpu::par::KeepAwake;
}

/// What the optimizer asks a backend before a rewrite that must not change a bit.
pub(crate) mod caps {
    use crate::dtype::DType;
    use crate::error::Result;
    use crate::tensor::Tensor;

    /// Whether an `[m, k] x [k, n]` float product gives the same bits whichever operand is
    /// transposed, so a transpose may be folded into the product's flags.
    pub(crate) fn matmul_transposes_exact(m: usize, k: usize, n: usize) -> bool {
        super::cpu::matmul::flags_are_exact(m, k, n)
    }

    /// A host tensor's values cast to `to` exactly as the kernels cast (the optimizer reads
    /// small constants through it).
    pub(crate) fn cast_on_host(t: &Tensor, to: DType) -> Result<Tensor> {
        super::cpu::elementwise::cast(t, to)
    }
}
