//! The GPU backend on wgpu (Vulkan, and Metal/DX12 where built): WGSL kernels for every
//! primitive (`kernels` for the dense ones, `sparse` for the sparse ones) and generated
//! kernels for fusion groups (`codegen` for loops, `fused` for reductions with their
//! elementwise producers and matmuls with their epilogues: one dispatch each). `check`
//! says whether an op can run here (dtypes);
//! `execute` runs it on inputs already placed on the device (placement and copies are
//! `crate::runtime::placement`'s job). Like the CPU backend, `execute` is one `match` over `PrimOp`
//! with no wildcard arm.
//!
//! What runs where (`Ctx::computes`, decided per device from the shader features it was
//! opened with): f32, i32, u8 and bool compute on every GPU; f16 where the adapter has
//! `SHADER_F16` (stored as f16, computed in f32 registers, rounded once per op as on the
//! CPU); i64 where it has `SHADER_INT64` (without it i64 is storage-only: moved, gathered
//! with, cast to and from i32, produced by argmax); f64 where it has `SHADER_F64` and
//! `SHADER_INT64`, every op included: SPIR-V's GLSL.std.450 exp/log/sin/cos/tanh/pow are
//! 16/32-bit only, so f64's transcendentals are a software library in WGSL (`math`, within
//! a few ulp of the CPU's). bf16 runs on the CPU. An op that has no kernel here runs on the
//! CPU under soft placement (one logged notice per op and dtypes), or is
//! `Error::Unsupported` with soft placement off. Fused kernels run here for f32 groups, and
//! f64 groups where f64 computes.
//!
//! Submissions: kernels record into the context's pending encoder and nothing waits, except
//! at a sync point. The sparse ops with a data-dependent output shape (`SparseOp::Unique`,
//! `SegmentSum`, `NonZero`) read their count back, and the index-checking ones
//! (`SparseOp::Validate`, `ToDense`, `MatMul`) their status word: 4 bytes, counted,
//! but the read-back submits what is queued and waits for it. So a traced call is one
//! submission unless its plan holds such an op: then one more per sync point.

pub(crate) mod codegen;
pub(crate) mod context;
pub(crate) mod fused;
pub(crate) mod kernels;
pub(crate) mod math;
pub(crate) mod sparse;
pub(crate) mod storage;
pub(crate) mod template;
#[cfg(test)]
mod validate;

use std::sync::Arc;

use codegen::Ew;
use context::Ctx;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::prim::fusion::{Fusion, FusionKind, Instr};
use crate::prim::{BinaryOp, PrimOp, UnaryOp};
use crate::shape::Shape;
use crate::tensor::Tensor;

pub(crate) fn unsupported(op: &'static str, message: String) -> Error {
    Error::Unsupported { op, message, location: None }
}

fn need(op: &'static str, ok: bool, d: DType) -> Result<()> {
    if ok { Ok(()) } else { Err(storage::dtype_unsupported(op, d)) }
}

/// Whether `op` (inputs' dtypes, output `dtype`) has a kernel on `ctx`'s device:
/// `Error::Unsupported` saying why not.
pub(crate) fn check(ctx: &Ctx, op: &PrimOp, inputs: &[&Tensor], dtype: DType) -> Result<()> {
    let name = op.name();
    let x = inputs.first().map_or(dtype, |t| t.dtype());
    let computes = |d: DType| need(name, ctx.computes(d), d);
    match op {
        PrimOp::Unary(_) | PrimOp::Binary(_) | PrimOp::Reduce { .. } | PrimOp::ArgReduce { .. } => computes(x),
        PrimOp::Select => computes(inputs.get(1).map_or(x, |t| t.dtype())),
        PrimOp::Cast(to) => {
            let ok = (ctx.computes(x) && ctx.computes(*to))
                || matches!((x, *to), (DType::I64, DType::I32) | (DType::I32, DType::I64) | (DType::I64, DType::I64));
            if ok {
                Ok(())
            } else {
                Err(unsupported(
                    name,
                    format!(
                        "cast from {x} to {to} has no GPU kernel on this device ({}; {})",
                        storage::DTYPES_NOTE,
                        "storage-only i64 casts only to and from i32"
                    ),
                ))
            }
        }
        PrimOp::Reshape(_)
        | PrimOp::Transpose(_)
        | PrimOp::BroadcastTo(_)
        | PrimOp::Concat(_)
        | PrimOp::Slice { .. }
        | PrimOp::Gather(_) => need(name, ctx.stores(x), x),
        PrimOp::OneHot { dtype, .. } => computes(*dtype),
        PrimOp::MatMul { .. } => need(name, x != DType::Bool && ctx.computes(x), x),
        PrimOp::Softmax { .. } => need(name, matches!(x, DType::F32 | DType::F16 | DType::F64) && ctx.computes(x), x),
        PrimOp::Sparse(s) => sparse::check(ctx, s, inputs),
    }
}

/// Runs one primitive on the GPU. Inputs live on `ctx`'s device, except host rank-0 scalars
/// of elementwise ops (passed as kernel parameters).
pub(crate) fn execute(ctx: &Arc<Ctx>, op: &PrimOp, inputs: &[&Tensor], shape: Shape, dtype: DType) -> Result<Tensor> {
    let x = inputs[0]; // ok: infer checked the arity
    match op {
        PrimOp::Unary(u) => kernels::unary(ctx, *u, x),
        PrimOp::Binary(b) => kernels::binary(ctx, *b, x, inputs[1], &shape),
        PrimOp::Select => kernels::select(ctx, x, inputs[1], inputs[2], &shape),
        PrimOp::Cast(_) => kernels::cast(ctx, x, dtype),
        PrimOp::Reduce { op, axes, .. } => kernels::reduce(ctx, x, *op, axes, &shape),
        PrimOp::ArgReduce { op, axis, .. } => kernels::arg_reduce(ctx, x, *op, *axis, &shape),
        PrimOp::Reshape(_) => Ok(x.alias(shape)),
        PrimOp::Transpose(perm) => kernels::transpose(ctx, x, perm, &shape),
        PrimOp::BroadcastTo(_) => kernels::broadcast_to(ctx, x, &shape),
        PrimOp::Concat(axis) => kernels::concat(ctx, inputs, *axis, &shape),
        PrimOp::Slice { begin, .. } => kernels::slice(ctx, x, begin, &shape),
        PrimOp::Gather(axis) => kernels::gather(ctx, x, inputs[1], *axis, &shape),
        PrimOp::OneHot { depth, .. } => kernels::one_hot(ctx, x, *depth, dtype, &shape),
        PrimOp::MatMul { transpose_a, transpose_b } => {
            kernels::matmul(ctx, x, inputs[1], *transpose_a, *transpose_b, &shape)
        }
        PrimOp::Softmax { axis, log } => kernels::softmax(ctx, x, *axis, *log),
        PrimOp::Sparse(s) => sparse::execute(ctx, s, inputs, &shape),
    }
}

/// Whether a fused kernel can run on `ctx`'s device (fusion groups are f32 or f64): f32
/// always, f64 where f64 computes.
pub(crate) fn check_fused(ctx: &Ctx, f: &Fusion) -> Result<()> {
    need(f.name(), f.dtype == DType::F32 || (f.dtype == DType::F64 && ctx.computes(DType::F64)), f.dtype)
}

/// The elementwise program of a fusion as SSA lines and the helpers it calls.
fn program(f: &Fusion) -> (Vec<String>, String, String) {
    let t = f.dtype;
    let mut lines = Vec::new();
    let mut helpers = String::new();
    let (mut seen_u, mut seen_b): (Vec<UnaryOp>, Vec<BinaryOp>) = (vec![], vec![]);
    for (k, ins) in f.program.iter().enumerate() {
        let r = f.n_loads + k;
        match *ins {
            Instr::Unary(u, a) => {
                if !seen_u.contains(&u) {
                    seen_u.push(u);
                    helpers.push_str(&codegen::unary_fn(u));
                }
                lines.push(format!("let r{r} = {};", codegen::unary_expr(u, t, &format!("r{a}"))));
            }
            Instr::Binary(b, a, c) => {
                if !seen_b.contains(&b) {
                    seen_b.push(b);
                    helpers.push_str(&codegen::binary_fn(b));
                }
                lines.push(format!("let r{r} = {};", codegen::binary_expr(b, t, &format!("r{a}"), &format!("r{c}"))));
            }
        }
    }
    let last = f.n_loads + f.program.len();
    let result = if f.program.is_empty() { "r0".to_string() } else { format!("r{}", last - 1) };
    (lines, result, helpers)
}

/// Runs a fused kernel as one generated kernel, cached by its text (i.e. by the fusion's
/// structure): a loop fusion is `codegen::Ew`; a reduce or matmul fusion is `fused`'s.
pub(crate) fn run_fused(ctx: &Arc<Ctx>, f: &Fusion, inputs: &[&Tensor], shape: Shape) -> Result<Tensor> {
    check_fused(ctx, f)?;
    match &f.kind {
        FusionKind::Loop => {
            let (lines, result, helpers) = program(f);
            let ew = Ew { t: f.dtype, loads: vec![], lines, result, out: f.dtype, helpers };
            kernels::run_ew(ctx, "fused_loop", ew, inputs, &shape)
        }
        FusionKind::Reduce { op, axes, .. } => fused::reduce(ctx, f, *op, axes, inputs, &shape),
        FusionKind::MatMul { transpose_a, transpose_b } => {
            fused::matmul(ctx, f, *transpose_a, *transpose_b, inputs, &shape)
        }
    }
}
