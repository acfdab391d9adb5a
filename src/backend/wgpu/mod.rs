//! The GPU backend on wgpu (Vulkan, and Metal/DX12 where built): WGSL kernels for every
//! dense primitive and generated kernels for fusion groups (`codegen` for loops, `fused`
//! for reductions with their elementwise producers and matmuls with their epilogues: one
//! dispatch each). `check` says whether an op can run here (dtypes, data-dependent shapes);
//! `execute` runs it on inputs already placed on the device (placement and copies are
//! `crate::placement`'s job). Like the CPU backend, `execute` is one `match` over `PrimOp`
//! with no wildcard arm.
//!
//! What runs where: f32, i32, u8 and bool compute on the GPU; i64 is storage-only (moved,
//! gathered with, cast to and from i32, produced by argmax); f64, f16 and bf16, and the
//! sparse primitives (whose output shapes depend on the data), run on the CPU.

pub(crate) mod codegen;
pub(crate) mod context;
pub(crate) mod fused;
pub(crate) mod kernels;
pub(crate) mod storage;

use std::sync::Arc;

use codegen::{Ew, compute_dtype};
use context::Ctx;
use storage::words;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::fusion::{Fusion, FusionKind, Instr};
use crate::op::{BinaryOp, PrimOp, UnaryOp};
use crate::shape::Shape;
use crate::tensor::Tensor;

pub(crate) fn unsupported(op: &'static str, message: String) -> Error {
    Error::Unsupported { op, message, location: None }
}

fn need(op: &'static str, ok: bool, d: DType) -> Result<()> {
    if ok { Ok(()) } else { Err(storage::dtype_unsupported(op, d)) }
}

/// Whether `op` (inputs' dtypes, output `dtype`) has a GPU kernel: `Error::Unsupported`
/// saying why not.
pub(crate) fn check(op: &PrimOp, inputs: &[&Tensor], dtype: DType) -> Result<()> {
    let name = op.name();
    let x = inputs.first().map_or(dtype, |t| t.dtype());
    match op {
        PrimOp::Unary(_) | PrimOp::Binary(_) | PrimOp::Reduce { .. } | PrimOp::ArgReduce { .. } => {
            need(name, compute_dtype(x), x)
        }
        PrimOp::Select => {
            let y = inputs.get(1).map_or(x, |t| t.dtype());
            need(name, compute_dtype(y), y)
        }
        PrimOp::Cast(to) => {
            let ok = (compute_dtype(x) && compute_dtype(*to))
                || matches!((x, *to), (DType::I64, DType::I32) | (DType::I32, DType::I64) | (DType::I64, DType::I64));
            if ok {
                Ok(())
            } else {
                Err(unsupported(
                    name,
                    format!("cast from {x} to {to} has no GPU kernel (i64 casts only to and from i32)"),
                ))
            }
        }
        PrimOp::Reshape(_)
        | PrimOp::Transpose(_)
        | PrimOp::BroadcastTo(_)
        | PrimOp::Concat(_)
        | PrimOp::Slice { .. } => need(name, words(x).is_some(), x),
        PrimOp::Gather(_) => need(name, words(x).is_some(), x),
        PrimOp::OneHot { dtype, .. } => need(name, compute_dtype(*dtype), *dtype),
        PrimOp::MatMul { .. } => need(name, matches!(x, DType::F32 | DType::I32 | DType::U8), x),
        PrimOp::Softmax { .. } => need(name, x == DType::F32, x),
        PrimOp::SparseValidate(_)
        | PrimOp::SparseToDense(_)
        | PrimOp::SparseMatMul(_)
        | PrimOp::SparseReorder
        | PrimOp::SparseUnique
        | PrimOp::SparseSegmentSum
        | PrimOp::NonZero => Err(unsupported(
            name,
            "sparse primitives have no GPU kernel (their output shapes depend on the data): they run on the CPU".into(),
        )),
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
        PrimOp::SparseValidate(_)
        | PrimOp::SparseToDense(_)
        | PrimOp::SparseMatMul(_)
        | PrimOp::SparseReorder
        | PrimOp::SparseUnique
        | PrimOp::SparseSegmentSum
        | PrimOp::NonZero => Err(unsupported(op.name(), "no GPU kernel".into())),
    }
}

/// Whether a fused kernel can run on the GPU (f32 groups only).
pub(crate) fn check_fused(f: &Fusion) -> Result<()> {
    need(f.name(), f.dtype == DType::F32, f.dtype)
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
    check_fused(f)?;
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
