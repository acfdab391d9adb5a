//! The GPU backend's interface when the crate is built without the `gpu` feature (no wgpu,
//! naga or Vulkan loader compiled in): the same items `backend::wgpu` offers the runtime,
//! for a machine with no adapter. `adapter_names` is empty, so placement never picks a GPU:
//! a GPU scope falls back to the CPU under soft placement, or is `DeviceUnavailable`.
//! `Ctx` cannot be made, so every function taking one is unreachable by construction.

use std::sync::Arc;

use crate::dtype::DType;
use crate::error::Result;
use crate::prim::PrimOp;
use crate::prim::fusion::Fusion;
use crate::shape::Shape;
use crate::tensor::Tensor;

pub(crate) mod context {
    use std::convert::Infallible;
    use std::sync::Arc;

    use crate::device::Device;
    use crate::dtype::DType;
    use crate::error::{Error, Result};

    /// A GPU context: none exists in this build (the `Infallible` field makes it impossible).
    pub(crate) struct Ctx {
        pub(crate) ordinal: usize,
        never: Infallible,
    }

    impl Ctx {
        /// Any value: no context exists, so no call reaches this.
        pub(crate) fn absurd<T>(&self) -> T {
            match self.never {}
        }
        pub(crate) fn device_id(&self) -> Device {
            match self.never {}
        }
        pub(crate) fn computes(&self, _: DType) -> bool {
            match self.never {}
        }
        pub(crate) fn stores(&self, _: DType) -> bool {
            match self.never {}
        }
    }

    pub(crate) fn gpu_count() -> usize {
        0
    }
    pub(crate) fn adapter_names() -> Vec<String> {
        Vec::new()
    }
    pub(crate) fn thread_submissions() -> u64 {
        0
    }
    pub(crate) fn thread_dispatches() -> u64 {
        0
    }
    pub(crate) fn synchronize() -> Result<()> {
        Ok(())
    }
    pub(crate) fn batch<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
    /// No GPU can be opened in this build.
    pub(crate) fn ctx(ordinal: usize) -> Result<Arc<Ctx>> {
        Err(Error::DeviceUnavailable {
            op: "gpu",
            device: Device::Gpu(ordinal).to_string(),
            available: Device::Cpu.to_string(),
            fix: Some(
                "ferroflow was built without its `gpu` feature: enable it (it is on by default), or leave soft placement on to fall back to the CPU"
                    .into(),
            ),
            location: None,
        })
    }
}

pub(crate) mod storage {
    use std::sync::Arc;

    use super::context::Ctx;
    use crate::error::Result;
    use crate::tensor::Tensor;

    pub(crate) fn upload(ctx: &Arc<Ctx>, _: &Tensor) -> Result<Tensor> {
        ctx.absurd()
    }
}

pub(crate) mod kernels {
    use std::sync::Arc;

    use super::context::Ctx;
    use crate::dtype::DType;
    use crate::error::Result;
    use crate::shape::Shape;
    use crate::tensor::Tensor;

    /// Which distribution `random` draws.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Dist {
        Uniform,
        Normal,
    }

    pub(crate) fn random(ctx: &Arc<Ctx>, _: &Shape, _: u64, _: Dist, _: DType) -> Result<Tensor> {
        ctx.absurd()
    }
}

pub(crate) fn check(ctx: &context::Ctx, _: &PrimOp, _: &[&Tensor], _: DType) -> Result<()> {
    ctx.absurd()
}

pub(crate) fn execute(ctx: &Arc<context::Ctx>, _: &PrimOp, _: &[&Tensor], _: Shape, _: DType) -> Result<Tensor> {
    ctx.absurd()
}

pub(crate) fn check_fused(ctx: &context::Ctx, _: &Fusion) -> Result<()> {
    ctx.absurd()
}

pub(crate) fn run_fused(ctx: &Arc<context::Ctx>, _: &Fusion, _: &[&Tensor], _: Shape) -> Result<Tensor> {
    ctx.absurd()
}
