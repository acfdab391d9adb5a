//! Elementwise kernels (unary, binary, select): `codegen::Ew` programs of one line, run by
//! `run_ew` over inputs broadcast to the output shape.

use std::sync::Arc;

use super::{bcast_strides, buf, groups, scalar_words};
use crate::backend::wgpu::codegen::{self, Ew, EwParams, LoadKind, WG};
use crate::backend::wgpu::context::Ctx;
use crate::backend::wgpu::storage;
use crate::backend::wgpu::template::params;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::prim::{BinaryOp, UnaryOp};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Runs an elementwise kernel over `inputs` broadcast to `shape`.
pub(crate) fn run_ew(
    ctx: &Arc<Ctx>,
    op: &'static str,
    mut ew: Ew,
    inputs: &[&Tensor],
    shape: &Shape,
) -> Result<Tensor> {
    let n = shape.num_elements();
    let out = storage::alloc(ctx, op, ew.out, n)?;
    let mut bufs = Vec::new();
    let mut strided: Vec<u32> = Vec::new();
    let mut words = Vec::new();
    ew.loads.clear();
    for t in inputs {
        if t.gpu_storage().is_none() {
            let w = scalar_words(t).ok_or_else(|| Error::invalid(op, "internal: a host input that is not a scalar"))?;
            ew.loads.push((LoadKind::Param, t.dtype()));
            words.extend(w);
        } else if t.num_elements() == n {
            ew.loads.push((LoadKind::Contig, t.dtype()));
            bufs.push(buf(op, t)?);
        } else {
            ew.loads.push((LoadKind::Strided, t.dtype()));
            strided.extend(bcast_strides(t.shape().dims(), shape.dims()));
            bufs.push(buf(op, t)?);
        }
    }
    let mut tail: Vec<u32> = shape.dims().iter().map(|d| *d as u32).collect();
    tail.extend(strided);
    tail.extend(words);
    let p = params(&EwParams { n: n as u32, rank: shape.rank() as u32 }, &tail);
    let k = ctx.kernel(op, &ew.source(), bufs.len())?;
    ctx.dispatch(op, &k, &bufs, &out.buffer, &p, groups(n, WG))?;
    Ok(storage::tensor(out, shape.clone(), ew.out))
}

/// The one-line program of unary op `u` on dtype `t` (loads filled in by `run_ew`).
pub(crate) fn unary_ew(u: UnaryOp, t: DType) -> Ew {
    let out = if u == UnaryOp::LogicalNot { DType::Bool } else { t };
    Ew {
        t,
        loads: vec![],
        lines: vec![format!("let r1 = {};", codegen::unary_expr(u, t, "r0"))],
        result: "r1".into(),
        out,
        helpers: codegen::unary_fn(u),
    }
}

/// The one-line program of binary op `b` on dtype `t`.
pub(crate) fn binary_ew(b: BinaryOp, t: DType) -> Ew {
    let out = if b.is_comparison() { DType::Bool } else { t };
    Ew {
        t,
        loads: vec![],
        lines: vec![format!("let r2 = {};", codegen::binary_expr(b, t, "r0", "r1"))],
        result: "r2".into(),
        out,
        helpers: codegen::binary_fn(b),
    }
}

/// The program of `where_(c, x, y)` with `x`, `y` of dtype `t`.
pub(crate) fn select_ew(t: DType) -> Ew {
    Ew {
        t,
        loads: vec![],
        lines: vec!["let r3 = select(r2, r1, r0);".into()],
        result: "r3".into(),
        out: t,
        helpers: String::new(),
    }
}

pub(crate) fn unary(ctx: &Arc<Ctx>, u: UnaryOp, x: &Tensor) -> Result<Tensor> {
    run_ew(ctx, u.name(), unary_ew(u, x.dtype()), &[x], &x.shape().clone())
}

pub(crate) fn binary(ctx: &Arc<Ctx>, b: BinaryOp, x: &Tensor, y: &Tensor, shape: &Shape) -> Result<Tensor> {
    run_ew(ctx, b.name(), binary_ew(b, x.dtype()), &[x, y], shape)
}

pub(crate) fn select(ctx: &Arc<Ctx>, c: &Tensor, x: &Tensor, y: &Tensor, shape: &Shape) -> Result<Tensor> {
    run_ew(ctx, "where_", select_ew(x.dtype()), &[c, x, y], shape)
}
