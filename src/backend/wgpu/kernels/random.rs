//! Seeded random tensors on the GPU (`wgsl/random.wgsl`, and `wgsl/random_f64.wgsl` for
//! f64) with the CPU's generator (`crate::random`).

use std::sync::Arc;

use super::groups;
use crate::backend::wgpu::codegen::{self, WG};
use crate::backend::wgpu::context::Ctx;
use crate::backend::wgpu::math;
use crate::backend::wgpu::storage;
use crate::backend::wgpu::template::{params, render};
use crate::dtype::DType;
use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::Tensor;

const RANDOM: &str = include_str!("../wgsl/random.wgsl");
const RANDOM_F64: &str = include_str!("../wgsl/random_f64.wgsl");

/// The parameters of `wgsl/random.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RandomParams {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
}

/// Which distribution `random` draws.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dist {
    Uniform,
    Normal,
}

/// The WGSL of drawing `dist` as `dtype` (f32 or f64).
pub(crate) fn random_source(dist: Dist, dtype: DType) -> String {
    let wide = dtype == DType::F64;
    let draw = match (dist, wide) {
        (Dist::Uniform, false) => "uniform_f32",
        (Dist::Normal, false) => "normal_f32",
        (Dist::Uniform, true) => "uniform_f64",
        (Dist::Normal, true) => "normal_f64",
    };
    let store = if wide { "v" } else { "bitcast<u32>(v)" };
    let mut src = render(RANDOM, &[("ELEM", codegen::elem(dtype)), ("DRAW", draw), ("STORE", store)]);
    if wide {
        src.push_str(RANDOM_F64);
        src.push_str(&math::helpers(DType::F64, RANDOM_F64));
    }
    src
}

/// Seeded f32 or f64 random values on the GPU with the CPU's generator (`crate::random`):
/// Philox-4x32-10, element `i` from counter `i / 2` under `seed`. Uniform values are
/// bit-identical to the CPU's (the 53-bit draw is rounded to f32 exactly, in integers; f64
/// holds it exactly). Normal f32 values compute Box-Muller in f32 (the CPU in f64), so they
/// agree to a few ulps; normal f64 values compute it in f64 with `math`'s log, sin and cos
/// (within an ulp of the CPU's libm), so they agree to an ulp or two.
pub(crate) fn random(ctx: &Arc<Ctx>, shape: &Shape, seed: u64, dist: Dist, dtype: DType) -> Result<Tensor> {
    let n = shape.num_elements();
    let name = if dist == Dist::Uniform { "random::uniform" } else { "random::normal" };
    let out = storage::alloc(ctx, name, dtype, n)?;
    if n > 0 {
        let k = ctx.kernel(name, &random_source(dist, dtype), 0)?;
        let p = params(&RandomParams { n: n as u32, seed_lo: seed as u32, seed_hi: (seed >> 32) as u32 }, &[]);
        ctx.dispatch(name, &k, &[], &out.buffer, &p, groups(n, WG))?;
    }
    Ok(storage::tensor(out, shape.clone(), dtype))
}
