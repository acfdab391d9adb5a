//! Data movement: the strided copy (`wgsl/copy.wgsl`) behind transpose, broadcast_to,
//! slice and concat, then gather (`wgsl/gather.wgsl`) and one_hot (`wgsl/one_hot.wgsl`).
//! Elements move as storage units (`storage::move_unit`: 8-byte dtypes as two u32 words,
//! f16 as halves), so these need no 64-bit shader feature.

use std::sync::Arc;

use super::cast::cast_expr;
use super::{bcast_strides, buf, groups, strides};
use crate::backend::wgpu::codegen::{WG, elem, enables, store};
use crate::backend::wgpu::context::Ctx;
use crate::backend::wgpu::storage::{self, GpuStorage};
use crate::backend::wgpu::template::{params, render};
use crate::dtype::DType;
use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::Tensor;

const COPY: &str = include_str!("../wgsl/copy.wgsl");
const GATHER: &str = include_str!("../wgsl/gather.wgsl");
const ONE_HOT: &str = include_str!("../wgsl/one_hot.wgsl");

/// The fixed parameters of `wgsl/copy.wgsl` (then `shape`: dims, in and out strides).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CopyParams {
    n: u32,
    rank: u32,
    w: u32,
    in_off: u32,
    out_off: u32,
}

/// The parameters of `wgsl/gather.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GatherParams {
    n: u32,
    dim: u32,
    inner: u32,
    m: u32,
}

/// The parameters of `wgsl/one_hot.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct OneHotParams {
    n: u32,
    depth: u32,
}

/// The WGSL of the strided copy of `d`'s elements; `None` where `d` has no storage unit.
pub(crate) fn copy_source(d: DType) -> Option<String> {
    let (unit, _) = storage::move_unit(d)?;
    Some(format!("{}{}", enables(&[d]), render(COPY, &[("ELEM", unit)])))
}

/// The strided copy: over index space `dims`, `out[out_off + c.out_strides] =
/// in[in_off + c.in_strides]`.
#[allow(clippy::too_many_arguments)]
fn strided_copy(
    ctx: &Arc<Ctx>,
    op: &'static str,
    x: &Tensor,
    out: &GpuStorage,
    dims: &[usize],
    in_strides: &[u32],
    in_off: usize,
    out_strides: &[u32],
    out_off: usize,
) -> Result<()> {
    let n: usize = dims.iter().product(); // ok: the output's dims, its count checked at inference
    let (_, w) = storage::move_unit(x.dtype()).ok_or_else(|| storage::dtype_unsupported(op, x.dtype()))?;
    let src = copy_source(x.dtype()).ok_or_else(|| storage::dtype_unsupported(op, x.dtype()))?;
    let mut shape: Vec<u32> = dims.iter().map(|d| *d as u32).collect();
    shape.extend_from_slice(in_strides);
    shape.extend_from_slice(out_strides);
    let head = CopyParams {
        n: n as u32,
        rank: dims.len() as u32,
        w: w as u32,
        in_off: in_off as u32,
        out_off: out_off as u32,
    };
    let k = ctx.kernel("copy", &src, 1)?;
    ctx.dispatch(op, &k, &[buf(op, x)?], &out.buffer, &params(&head, &shape), groups(n, WG))
}

fn contiguous(dims: &[usize]) -> Vec<u32> {
    strides(dims).into_iter().map(|s| s as u32).collect()
}

pub(crate) fn transpose(ctx: &Arc<Ctx>, x: &Tensor, perm: &[usize], shape: &Shape) -> Result<Tensor> {
    let st = strides(x.shape().dims());
    let ins: Vec<u32> = perm.iter().map(|p| st[*p] as u32).collect();
    let out = storage::alloc(ctx, "transpose", x.dtype(), shape.num_elements())?;
    strided_copy(ctx, "transpose", x, &out, shape.dims(), &ins, 0, &contiguous(shape.dims()), 0)?;
    Ok(storage::tensor(out, shape.clone(), x.dtype()))
}

pub(crate) fn broadcast_to(ctx: &Arc<Ctx>, x: &Tensor, shape: &Shape) -> Result<Tensor> {
    let ins = bcast_strides(x.shape().dims(), shape.dims());
    let out = storage::alloc(ctx, "broadcast_to", x.dtype(), shape.num_elements())?;
    strided_copy(ctx, "broadcast_to", x, &out, shape.dims(), &ins, 0, &contiguous(shape.dims()), 0)?;
    Ok(storage::tensor(out, shape.clone(), x.dtype()))
}

pub(crate) fn slice(ctx: &Arc<Ctx>, x: &Tensor, begin: &[usize], shape: &Shape) -> Result<Tensor> {
    let st = strides(x.shape().dims());
    let off: usize = begin.iter().zip(&st).map(|(b, s)| b * s).sum();
    let ins: Vec<u32> = st.iter().map(|s| *s as u32).collect();
    let out = storage::alloc(ctx, "slice", x.dtype(), shape.num_elements())?;
    strided_copy(ctx, "slice", x, &out, shape.dims(), &ins, off, &contiguous(shape.dims()), 0)?;
    Ok(storage::tensor(out, shape.clone(), x.dtype()))
}

pub(crate) fn concat(ctx: &Arc<Ctx>, inputs: &[&Tensor], axis: usize, shape: &Shape) -> Result<Tensor> {
    let dtype = inputs.first().map_or(DType::F32, |t| t.dtype());
    let out = storage::alloc(ctx, "concat", dtype, shape.num_elements())?;
    let ost = contiguous(shape.dims());
    let mut at = 0usize;
    for t in inputs {
        if t.num_elements() > 0 {
            strided_copy(
                ctx,
                "concat",
                t,
                &out,
                t.shape().dims(),
                &contiguous(t.shape().dims()),
                0,
                &ost,
                at * ost[axis] as usize,
            )?;
        }
        at += t.shape()[axis];
    }
    Ok(storage::tensor(out, shape.clone(), dtype))
}

/// An index as an i32-range value: i32 and u8 words as they are, i64 from its two words
/// (anything outside i32 becomes -1, which is out of range).
fn index_load(d: DType, arr: &str, j: &str) -> String {
    match d {
        DType::I64 => format!(
            "select(-1, bitcast<i32>({arr}[2u * {j}]), ({arr}[2u * {j} + 1u] == 0u && bitcast<i32>({arr}[2u * {j}]) >= 0) || ({arr}[2u * {j} + 1u] == 0xffffffffu && bitcast<i32>({arr}[2u * {j}]) < 0))"
        ),
        DType::I32 => format!("bitcast<i32>({arr}[{j}])"),
        _ => format!("i32({arr}[{j}])"),
    }
}

/// The WGSL of `gather` of `x` elements by `idx` indices; `None` where `x` has no unit.
pub(crate) fn gather_source(x: DType, idx: DType) -> Option<String> {
    let (unit, w) = storage::move_unit(x)?;
    let w = w.to_string();
    let ix = index_load(idx, "in1", "j");
    Some(format!("{}{}", enables(&[x]), render(GATHER, &[("UNIT", unit), ("W", &w), ("INDEX_J", &ix)])))
}

/// `gather(x, idx, axis)`: out-of-range indices give zeros (as TensorFlow on a GPU; the CPU
/// reports them as `IndexOutOfBounds`).
pub(crate) fn gather(ctx: &Arc<Ctx>, x: &Tensor, idx: &Tensor, axis: usize, shape: &Shape) -> Result<Tensor> {
    let xs = x.shape();
    let dim = xs[axis];
    let inner: usize = xs[axis + 1..].iter().product(); // ok: dims of an existing tensor
    let m = idx.num_elements();
    let n = shape.num_elements();
    let src = gather_source(x.dtype(), idx.dtype()).ok_or_else(|| storage::dtype_unsupported("gather", x.dtype()))?;
    let out = storage::alloc(ctx, "gather", x.dtype(), n)?;
    if n > 0 {
        let k = ctx.kernel("gather", &src, 2)?;
        let p = params(&GatherParams { n: n as u32, dim: dim as u32, inner: inner as u32, m: m as u32 }, &[]);
        ctx.dispatch("gather", &k, &[buf("gather", x)?, buf("gather", idx)?], &out.buffer, &p, groups(n, WG))?;
    }
    Ok(storage::tensor(out, shape.clone(), x.dtype()))
}

/// The WGSL of `one_hot` of `idx` indices into `dtype`.
pub(crate) fn one_hot_source(idx: DType, dtype: DType) -> String {
    let st = store(dtype, &cast_expr(DType::Bool, dtype, "hit"));
    let ix = index_load(idx, "in0", "j");
    format!("{}{}", enables(&[dtype]), render(ONE_HOT, &[("ELEM", elem(dtype)), ("INDEX_J", &ix), ("STORE_HIT", &st)]))
}

/// `one_hot`: out-of-range indices give an all-zero row (as TensorFlow).
pub(crate) fn one_hot(ctx: &Arc<Ctx>, idx: &Tensor, depth: usize, dtype: DType, shape: &Shape) -> Result<Tensor> {
    let n = shape.num_elements();
    let src = one_hot_source(idx.dtype(), dtype);
    let out = storage::alloc(ctx, "one_hot", dtype, n)?;
    if n > 0 {
        let k = ctx.kernel("one_hot", &src, 1)?;
        let p = params(&OneHotParams { n: n as u32, depth: depth as u32 }, &[]);
        ctx.dispatch("one_hot", &k, &[buf("one_hot", idx)?], &out.buffer, &p, groups(n, WG))?;
    }
    Ok(storage::tensor(out, shape.clone(), dtype))
}
