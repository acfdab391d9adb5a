//! Backends: the kernels that run primitives on a device. Backends see primitives only.

pub(crate) mod cpu;
