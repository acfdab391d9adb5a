//! `cast`: an elementwise program (`cast_expr`, the CPU's conversion rules) where both
//! dtypes compute, and `wgsl/cast_i64.wgsl` on the words of storage-only i64.

use std::sync::Arc;

use super::elementwise::run_ew;
use super::{buf, groups};
use crate::backend::wgpu::codegen::{Ew, WG, ty};
use crate::backend::wgpu::context::Ctx;
use crate::backend::wgpu::storage;
use crate::backend::wgpu::template::{params, render};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;

const CAST_I64: &str = include_str!("../wgsl/cast_i64.wgsl");

/// The parameters of `wgsl/cast_i64.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CastI64Params {
    n: u32,
}

/// The WGSL of converting `x` (a value of `s` in its compute type) to what `store(d, ..)`
/// takes, as the CPU does: integers wrap, floats saturate into integers with NaN to 0,
/// anything non-zero (NaN included) is `true`, floats round to nearest even (f64 to f16 in
/// one step, as the CPU).
pub(crate) fn cast_expr(s: DType, d: DType, x: &str) -> String {
    use DType::*;
    let float = |t: DType| matches!(t, F32 | F16 | F64);
    match (s, d) {
        _ if s == d => x.into(),
        (_, Bool) if float(s) => format!("({x} != 0.0 || ff_isnan({x}))"),
        (_, Bool) => format!("({x} != {}(0))", ty(s)),
        (Bool, _) => format!("select({t}(0), {t}(1), {x})", t = ty(d)),
        (F64, I32) => format!("select(i32(clamp({x}, -2147483648.0, 2147483647.0)), 0, ff_isnan({x}))"),
        (_, I32) if float(s) => format!(
            "select(select(i32(clamp({x}, -2147483648.0, 2147483520.0)), 2147483647, {x} >= 2147483648.0), 0, ff_isnan({x}))"
        ),
        (_, I64) if float(s) => {
            // The largest value below 2^63 in the source type.
            let hi = if s == F64 { "9223372036854774784.0" } else { "9223371487098961920.0" };
            format!(
                "select(select(i64(clamp({x}, -9223372036854775808.0, {hi})), 9223372036854775807li, {x} >= 9223372036854775808.0), 0li, ff_isnan({x}))"
            )
        }
        (_, U8) if float(s) => format!("select(u32(clamp({x}, 0.0, 255.0)), 0u, ff_isnan({x}))"),
        (F64, F32) => format!("f32({x})"),
        (_, F32 | F16) if float(s) => x.into(), // f16 computes in f32; `store` rounds
        (_, F64) => format!("f64({x})"),
        (_, F32 | F16) => format!("f32({x})"),
        (I32, U8) => format!("(bitcast<u32>({x}) & 255u)"),
        (I64, U8) => format!("u32({x} & 255li)"),
        (_, I32) => format!("i32({x})"),
        (_, I64) => format!("i64({x})"),
        _ => x.into(),
    }
}

/// The program of a cast from `from` to `to` (both computing on the device).
pub(crate) fn cast_ew(from: DType, to: DType) -> Ew {
    Ew {
        t: from,
        loads: vec![],
        lines: vec![format!("let r1 = {};", cast_expr(from, to, "r0"))],
        result: "r1".into(),
        out: to,
        helpers: String::new(),
    }
}

/// The WGSL of an i64 <-> i32 cast on i64's words; `None` for other pairs.
pub(crate) fn cast_i64_source(from: DType, to: DType) -> Option<String> {
    let f = match (from, to) {
        (DType::I64, DType::I32) => "i64_to_i32",
        (DType::I32, DType::I64) => "i32_to_i64",
        _ => return None,
    };
    Some(render(CAST_I64, &[("CAST", f)]))
}

pub(crate) fn cast(ctx: &Arc<Ctx>, x: &Tensor, to: DType) -> Result<Tensor> {
    let from = x.dtype();
    if from == to {
        return Ok(x.clone());
    }
    if (from == DType::I64 || to == DType::I64) && !ctx.computes(DType::I64) {
        return cast_i64(ctx, x, to);
    }
    run_ew(ctx, "cast", cast_ew(from, to), &[x], &x.shape().clone())
}

/// i64 <-> i32 (wrapping, sign-extending) on i64's two words: the casts of storage-only
/// i64 (a device without `SHADER_INT64`).
fn cast_i64(ctx: &Arc<Ctx>, x: &Tensor, to: DType) -> Result<Tensor> {
    let (from, n) = (x.dtype(), x.num_elements());
    let Some(src) = cast_i64_source(from, to) else {
        return Err(crate::backend::wgpu::unsupported(
            "cast",
            format!("cast from {from} to {to} on the GPU (i64 is storage-only)"),
        ));
    };
    let out = storage::alloc(ctx, "cast", to, n)?;
    let k = ctx.kernel("cast", &src, 1)?;
    let p = params(&CastI64Params { n: n as u32 }, &[]);
    ctx.dispatch("cast", &k, &[buf("cast", x)?], &out.buffer, &p, groups(n, WG))?;
    Ok(storage::tensor(out, x.shape().clone(), to))
}
