//! Reductions (`wgsl/reduce.wgsl`, any axes; the tree of `wgsl/reduce_tree.wgsl`, shared
//! with the fused reduce) and arg-reductions (`wgsl/arg_reduce.wgsl`): one workgroup of
//! 64 threads per output element.

use std::sync::Arc;

use super::{buf, strides};
use crate::backend::wgpu::codegen::{elem, enables, load, prelude, store};
use crate::backend::wgpu::context::Ctx;
use crate::backend::wgpu::storage;
use crate::backend::wgpu::template::{params, render};
use crate::dtype::DType;
use crate::error::Result;
use crate::prim::{ArgOp, ReduceOp};
use crate::shape::Shape;
use crate::tensor::Tensor;

const REDUCE: &str = include_str!("../wgsl/reduce.wgsl");
/// The workgroup tree (`tree_total`) of `reduce.wgsl` and the fused reduce.
pub(crate) const REDUCE_TREE: &str = include_str!("../wgsl/reduce_tree.wgsl");
const ARG_REDUCE: &str = include_str!("../wgsl/arg_reduce.wgsl");

/// The fixed parameters of `wgsl/reduce.wgsl` (then `shape`: kept dims and strides, the
/// reduced rank, reduced dims and strides).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    n_out: u32,
    row: u32,
    kr: u32,
}

/// The parameters of `wgsl/arg_reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ArgReduceParams {
    n_out: u32,
    row: u32,
    inner: u32,
}

/// `lowest`/`highest` of dtype `t` as WGSL literals.
pub(crate) fn extreme(t: DType, low: bool) -> &'static str {
    match (t, low) {
        (DType::F32 | DType::F16, true) => "bitcast<f32>(0xff800000u)",
        (DType::F32 | DType::F16, false) => "bitcast<f32>(0x7f800000u)",
        (DType::F64, true) => "bitcast<f64>(0xfff0000000000000lu)",
        (DType::F64, false) => "bitcast<f64>(0x7ff0000000000000lu)",
        (DType::I32, true) => "i32(-2147483648)",
        (DType::I32, false) => "2147483647",
        (DType::I64, true) => "(-9223372036854775807li - 1li)",
        (DType::I64, false) => "9223372036854775807li",
        (_, true) => "0u",
        (_, false) => "255u",
    }
}

/// Splits `dims` into the kept and reduced axes, with their input strides.
fn split_axes(dims: &[usize], axes: &[usize]) -> (Vec<u32>, Vec<u32>, Vec<u32>, Vec<u32>) {
    let st = strides(dims);
    let (mut kd, mut ks, mut rd, mut rs) = (vec![], vec![], vec![], vec![]);
    for (i, d) in dims.iter().enumerate() {
        if axes.contains(&i) {
            rd.push(*d as u32);
            rs.push(st[i] as u32);
        } else {
            kd.push(*d as u32);
            ks.push(st[i] as u32);
        }
    }
    (kd, ks, rd, rs)
}

/// The WGSL of reduction `op` over dtype `t`.
pub(crate) fn reduce_source(t: DType, op: ReduceOp) -> String {
    let (id, comb) = match op {
        ReduceOp::Sum | ReduceOp::Mean => ("T(0)", "a + b"),
        ReduceOp::Prod => ("T(1)", "a * b"),
        ReduceOp::Max => (extreme(t, true), "ff_max(a, b)"),
        ReduceOp::Min => (extreme(t, false), "ff_min(a, b)"),
    };
    // u8 sums wrap at 256, but a mean divides the exact sum: keep 32 bits for it.
    let comb = if t == DType::U8 && op == ReduceOp::Prod { "(a * b) & 255u" } else { comb };
    let finish = match (op, t) {
        (ReduceOp::Mean, DType::F32 | DType::F16 | DType::F64) => "acc / T(p.row)",
        (ReduceOp::Mean, DType::U8) => "select((acc & 255u) / p.row, 0u, p.row == 0u)",
        (ReduceOp::Mean, _) => "select(acc / T(max(p.row, 1u)), T(0), p.row == 0u)",
        (ReduceOp::Sum, DType::U8) => "acc & 255u",
        _ => "acc",
    };
    let body = render(
        REDUCE,
        &[
            ("ELEM", elem(t)),
            ("ID", id),
            ("COMB", comb),
            ("LOAD", &load(t, "in0[base + off]")),
            ("STORE", &store(t, finish)),
        ],
    );
    format!("{}{}{body}{REDUCE_TREE}", enables(&[t]), prelude(t))
}

pub(crate) fn reduce(ctx: &Arc<Ctx>, x: &Tensor, op: ReduceOp, axes: &[usize], shape: &Shape) -> Result<Tensor> {
    let t = x.dtype();
    let n_out = shape.num_elements();
    let (kd, ks, rd, rs) = split_axes(x.shape().dims(), axes);
    let r: usize = rd.iter().map(|d| *d as usize).product(); // ok: dims of an existing tensor
    let mut tail = kd.clone();
    tail.extend(&ks);
    tail.push(rd.len() as u32);
    tail.extend(&rd);
    tail.extend(&rs);
    let p = params(&ReduceParams { n_out: n_out as u32, row: r as u32, kr: kd.len() as u32 }, &tail);
    let out = storage::alloc(ctx, op.name(), t, n_out)?;
    let k = ctx.kernel(op.name(), &reduce_source(t, op), 1)?;
    ctx.dispatch(op.name(), &k, &[buf(op.name(), x)?], &out.buffer, &p, n_out as u32)?;
    Ok(storage::tensor(out, shape.clone(), t))
}

/// The WGSL of argmax (`op == ArgOp::Max`) or argmin over dtype `t`.
pub(crate) fn arg_reduce_source(t: DType, op: ArgOp) -> String {
    let cmp = if op == ArgOp::Max { ">" } else { "<" };
    let body = render(ARG_REDUCE, &[("ELEM", elem(t)), ("CMP", cmp), ("LOAD", &load(t, "in0[base + j * inner]"))]);
    format!("{}{}{body}", enables(&[t]), prelude(t))
}

/// argmax/argmin along one axis (or the flattened tensor): the first extreme, a NaN
/// counting as the extreme (as the CPU and NumPy); the i64 result is written as two words.
pub(crate) fn arg_reduce(ctx: &Arc<Ctx>, x: &Tensor, op: ArgOp, axis: Option<usize>, shape: &Shape) -> Result<Tensor> {
    let t = x.dtype();
    let s = x.shape();
    let (outer, r, inner) = match axis {
        None => (1, s.num_elements(), 1),
        Some(a) => (s[..a].iter().product::<usize>(), s[a], s[a + 1..].iter().product::<usize>()), // ok: an existing tensor's dims
    };
    let n_out = outer * inner;
    let name = if op == ArgOp::Max { "argmax" } else { "argmin" };
    let out = storage::alloc(ctx, name, DType::I64, n_out)?;
    let k = ctx.kernel(name, &arg_reduce_source(t, op), 1)?;
    let p = params(&ArgReduceParams { n_out: n_out as u32, row: r as u32, inner: inner.max(1) as u32 }, &[]);
    ctx.dispatch(name, &k, &[buf(name, x)?], &out.buffer, &p, n_out as u32)?;
    Ok(storage::tensor(out, shape.clone(), DType::I64))
}
