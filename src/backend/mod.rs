//! Backends: the kernels that run primitives on a device (`cpu`: rayon; `wgpu`: WGSL on a
//! GPU). Backends see primitives only; `crate::placement` picks one per op.

pub(crate) mod cpu;
pub(crate) mod wgpu;
