//! The WGSL kernels of every dense primitive: elementwise (generated, see `codegen`),
//! cast, strided copy (transpose, broadcast, slice, concat), reductions and arg-reductions
//! with a workgroup tree, a register-blocked tiled matmul, softmax, gather and one_hot.
//! Each function takes inputs already on the GPU (host rank-0 scalars are allowed where
//! elementwise ops take them as parameters) and records its dispatches; nothing waits.

use std::fmt::Write;
use std::sync::Arc;

use super::codegen::{self, Ew, LoadKind, WG, elem, enables, load, store, ty};
use super::context::Ctx;
use super::storage::{self, GpuStorage};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::prim::{ArgOp, BinaryOp, ReduceOp, UnaryOp};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::Buffer;

pub(super) fn buf<'a>(op: &'static str, t: &'a Tensor) -> Result<&'a wgpu::Buffer> {
    t.gpu_storage()
        .map(|g| &g.buffer)
        .ok_or_else(|| Error::invalid(op, "internal: a GPU kernel got an input that is not on the GPU"))
}

/// A host rank-0 tensor's value as parameter words (`codegen::param_load` reads them):
/// one word, two (low, high) for f64 and i64, an f16 as the f32 bits of its value.
pub(super) fn scalar_words(t: &Tensor) -> Option<Vec<u32>> {
    if t.rank() != 0 {
        return None;
    }
    let wide = |b: u64| vec![b as u32, (b >> 32) as u32];
    Some(match t.host_buffer()? {
        Buffer::F32(v) => vec![v.first()?.to_bits()],
        Buffer::I32(v) => vec![*v.first()? as u32],
        Buffer::U8(v) => vec![*v.first()? as u32],
        Buffer::Bool(v) => vec![*v.first()? as u32],
        Buffer::F16(v) => vec![v.first()?.to_f32().to_bits()],
        Buffer::F64(v) => wide(v.first()?.to_bits()),
        Buffer::I64(v) => wide(*v.first()? as u64),
        Buffer::BF16(_) => return None,
    })
}

/// Row-major strides of `dims` (in elements).
pub(super) fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![0; dims.len()];
    let mut acc = 1;
    for i in (0..dims.len()).rev() {
        s[i] = acc;
        acc *= dims[i];
    }
    s
}

/// Strides of `dims` broadcast to `out` (right-aligned; 0 where broadcast).
pub(super) fn bcast_strides(dims: &[usize], out: &[usize]) -> Vec<u32> {
    let st = strides(dims);
    let mut r = vec![0u32; out.len()];
    for (i, d) in dims.iter().enumerate() {
        let o = i + out.len() - dims.len();
        r[o] = if *d == 1 && out[o] != 1 { 0 } else { st[i] as u32 };
    }
    r
}

pub(super) fn groups(n: usize, per: u32) -> u32 {
    n.div_ceil(per as usize) as u32
}

fn u32s(v: &[usize]) -> impl Iterator<Item = u32> + '_ {
    v.iter().map(|x| *x as u32)
}

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
    let mut params_tail = Vec::new();
    ew.loads.clear();
    for t in inputs {
        if t.gpu_storage().is_none() {
            let w = scalar_words(t).ok_or_else(|| Error::invalid(op, "internal: a host input that is not a scalar"))?;
            ew.loads.push((LoadKind::Param, t.dtype()));
            params_tail.extend(w);
        } else if t.num_elements() == n {
            ew.loads.push((LoadKind::Contig, t.dtype()));
            bufs.push(buf(op, t)?);
        } else {
            ew.loads.push((LoadKind::Strided, t.dtype()));
            strided.extend(bcast_strides(t.shape().dims(), shape.dims()));
            bufs.push(buf(op, t)?);
        }
    }
    let mut params = vec![n as u32, shape.rank() as u32];
    params.extend(u32s(shape.dims()));
    params.extend(strided);
    params.extend(params_tail);
    let k = ctx.kernel(op, &ew.source(), bufs.len())?;
    ctx.dispatch(op, &k, &bufs, &out.buffer, &params, groups(n, WG))?;
    Ok(storage::tensor(out, shape.clone(), ew.out))
}

pub(crate) fn unary(ctx: &Arc<Ctx>, u: UnaryOp, x: &Tensor) -> Result<Tensor> {
    let t = x.dtype();
    let out = if u == UnaryOp::LogicalNot { DType::Bool } else { t };
    let ew = Ew {
        t,
        loads: vec![],
        lines: vec![format!("let r1 = {};", codegen::unary_expr(u, t, "r0"))],
        result: "r1".into(),
        out,
        helpers: codegen::unary_fn(u),
    };
    run_ew(ctx, u.name(), ew, &[x], &x.shape().clone())
}

pub(crate) fn binary(ctx: &Arc<Ctx>, b: BinaryOp, x: &Tensor, y: &Tensor, shape: &Shape) -> Result<Tensor> {
    let t = x.dtype();
    let out = if b.is_comparison() { DType::Bool } else { t };
    let ew = Ew {
        t,
        loads: vec![],
        lines: vec![format!("let r2 = {};", codegen::binary_expr(b, t, "r0", "r1"))],
        result: "r2".into(),
        out,
        helpers: codegen::binary_fn(b),
    };
    run_ew(ctx, b.name(), ew, &[x, y], shape)
}

pub(crate) fn select(ctx: &Arc<Ctx>, c: &Tensor, x: &Tensor, y: &Tensor, shape: &Shape) -> Result<Tensor> {
    let t = x.dtype();
    let ew = Ew {
        t,
        loads: vec![],
        lines: vec!["let r3 = select(r2, r1, r0);".into()],
        result: "r3".into(),
        out: t,
        helpers: String::new(),
    };
    run_ew(ctx, "where_", ew, &[c, x, y], shape)
}

/// The WGSL of converting `x` (a value of `s` in its compute type) to what `store(d, ..)`
/// takes, as the CPU does: integers wrap, floats saturate into integers with NaN to 0,
/// anything non-zero (NaN included) is `true`, floats round to nearest even (f64 to f16 in
/// one step, as the CPU).
fn cast_expr(s: DType, d: DType, x: &str) -> String {
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

pub(crate) fn cast(ctx: &Arc<Ctx>, x: &Tensor, to: DType) -> Result<Tensor> {
    let from = x.dtype();
    if from == to {
        return Ok(x.clone());
    }
    if (from == DType::I64 || to == DType::I64) && !ctx.computes(DType::I64) {
        return cast_i64(ctx, x, to);
    }
    let ew = Ew {
        t: from,
        loads: vec![],
        lines: vec![format!("let r1 = {};", cast_expr(from, to, "r0"))],
        result: "r1".into(),
        out: to,
        helpers: String::new(),
    };
    run_ew(ctx, "cast", ew, &[x], &x.shape().clone())
}

/// i64 <-> i32 (wrapping, sign-extending) on i64's two words: the casts of storage-only
/// i64 (a device without `SHADER_INT64`).
fn cast_i64(ctx: &Arc<Ctx>, x: &Tensor, to: DType) -> Result<Tensor> {
    let (from, n) = (x.dtype(), x.num_elements());
    let body = match (from, to) {
        (DType::I64, DType::I32) => "out[i] = in0[2u * i];",
        (DType::I32, DType::I64) => {
            "let v = in0[i]; out[2u * i] = v; out[2u * i + 1u] = select(0u, 0xffffffffu, bitcast<i32>(v) < 0);"
        }
        _ => {
            return Err(super::unsupported(
                "cast",
                format!("cast from {from} to {to} on the GPU (i64 is storage-only)"),
            ));
        }
    };
    let src = format!(
        "@group(0) @binding(0) var<storage, read> in0: array<u32>;\n@group(0) @binding(1) var<storage, read_write> out: array<u32>;\n@group(0) @binding(2) var<storage, read> p: array<u32>;\n@compute @workgroup_size({WG})\nfn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {{\n    let i = (wg.x + wg.y * nwg.x) * {WG}u + li;\n    if (i >= p[0]) {{ return; }}\n    {body}\n}}\n"
    );
    let out = storage::alloc(ctx, "cast", to, n)?;
    let k = ctx.kernel("cast", &src, 1)?;
    ctx.dispatch("cast", &k, &[buf("cast", x)?], &out.buffer, &[n as u32], groups(n, WG))?;
    Ok(storage::tensor(out, x.shape().clone(), to))
}

/// The strided copy: over index space `dims`, `out[out_off + c.out_strides] =
/// in[in_off + c.in_strides]`, `w` units per element (`ELEM` is the unit, see
/// `storage::move_unit`).
const COPY_SRC: &str = r#"
@group(0) @binding(0) var<storage, read> in0: array<ELEM>;
@group(0) @binding(1) var<storage, read_write> out: array<ELEM>;
@group(0) @binding(2) var<storage, read> p: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p[0]) { return; }
    let rank = p[1];
    let w = p[2];
    var a = p[3];
    var b = p[4];
    var rem = i;
    for (var d = i32(rank) - 1; d >= 0; d = d - 1) {
        let dim = p[5u + u32(d)];
        let c = rem % dim;
        rem = rem / dim;
        a = a + c * p[5u + rank + u32(d)];
        b = b + c * p[5u + 2u * rank + u32(d)];
    }
    for (var k = 0u; k < w; k = k + 1u) {
        out[b * w + k] = in0[a * w + k];
    }
}
"#;

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
    let n: usize = dims.iter().product();
    let (unit, w) = storage::move_unit(x.dtype()).ok_or_else(|| storage::dtype_unsupported(op, x.dtype()))?;
    let mut params = vec![n as u32, dims.len() as u32, w as u32, in_off as u32, out_off as u32];
    params.extend(u32s(dims));
    params.extend_from_slice(in_strides);
    params.extend_from_slice(out_strides);
    let src = format!("{}{}", enables(&[x.dtype()]), COPY_SRC.replace("ELEM", unit));
    let k = ctx.kernel("copy", &src, 1)?;
    ctx.dispatch(op, &k, &[buf(op, x)?], &out.buffer, &params, groups(n, WG))
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

/// `gather(x, idx, axis)`: out-of-range indices give zeros (as TensorFlow on a GPU; the CPU
/// reports them as `IndexOutOfBounds`).
pub(crate) fn gather(ctx: &Arc<Ctx>, x: &Tensor, idx: &Tensor, axis: usize, shape: &Shape) -> Result<Tensor> {
    let xs = x.shape();
    let dim = xs[axis];
    let inner: usize = xs[axis + 1..].iter().product();
    let m = idx.num_elements();
    let n = shape.num_elements();
    let (unit, w) = storage::move_unit(x.dtype()).ok_or_else(|| storage::dtype_unsupported("gather", x.dtype()))?;
    let src = format!(
        r#"{en}
@group(0) @binding(0) var<storage, read> in0: array<{unit}>;
@group(0) @binding(1) var<storage, read> in1: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<{unit}>;
@group(0) @binding(3) var<storage, read> p: array<u32>;
@compute @workgroup_size({WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {{
    let i = (wg.x + wg.y * nwg.x) * {WG}u + li;
    if (i >= p[0]) {{ return; }}
    let dim = p[1]; let inner = p[2]; let m = p[3];
    let k = i % inner;
    let j = (i / inner) % m;
    let o = i / (inner * m);
    let ix = {ix};
    for (var q = 0u; q < {w}u; q = q + 1u) {{
        if (ix < 0 || u32(ix) >= dim) {{ out[i * {w}u + q] = {unit}(0); }}
        else {{ out[i * {w}u + q] = in0[((o * dim + u32(ix)) * inner + k) * {w}u + q]; }}
    }}
}}
"#,
        ix = index_load(idx.dtype(), "in1", "j"),
        en = enables(&[x.dtype()]),
    );
    let out = storage::alloc(ctx, "gather", x.dtype(), n)?;
    if n > 0 {
        let k = ctx.kernel("gather", &src, 2)?;
        let params = [n as u32, dim as u32, inner as u32, m as u32];
        ctx.dispatch("gather", &k, &[buf("gather", x)?, buf("gather", idx)?], &out.buffer, &params, groups(n, WG))?;
    }
    Ok(storage::tensor(out, shape.clone(), x.dtype()))
}

/// `one_hot`: out-of-range indices give an all-zero row (as TensorFlow).
pub(crate) fn one_hot(ctx: &Arc<Ctx>, idx: &Tensor, depth: usize, dtype: DType, shape: &Shape) -> Result<Tensor> {
    let n = shape.num_elements();
    let on = cast_expr(DType::Bool, dtype, "hit");
    let src = format!(
        r#"{en}
@group(0) @binding(0) var<storage, read> in0: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<{el}>;
@group(0) @binding(2) var<storage, read> p: array<u32>;
@compute @workgroup_size({WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {{
    let i = (wg.x + wg.y * nwg.x) * {WG}u + li;
    if (i >= p[0]) {{ return; }}
    let depth = p[1];
    let j = i / depth;
    let ix = {ix};
    let hit = ix >= 0 && u32(ix) == i % depth;
    out[i] = {st};
}}
"#,
        ix = index_load(idx.dtype(), "in0", "j"),
        st = store(dtype, &on),
        en = enables(&[dtype]),
        el = elem(dtype),
    );
    let out = storage::alloc(ctx, "one_hot", dtype, n)?;
    if n > 0 {
        let k = ctx.kernel("one_hot", &src, 1)?;
        ctx.dispatch("one_hot", &k, &[buf("one_hot", idx)?], &out.buffer, &[n as u32, depth as u32], groups(n, WG))?;
    }
    Ok(storage::tensor(out, shape.clone(), dtype))
}

/// Threads per workgroup in reductions (one workgroup per output element).
const RWG: u32 = 64;

/// `lowest`/`highest` of dtype `t` as WGSL literals.
pub(super) fn extreme(t: DType, low: bool) -> &'static str {
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

/// The WGSL that turns linear index `var` over dims at `p[dims_at..]` (rank at `p[rank_at]`,
/// strides right after the dims) into an offset `off`.
fn offset_code(var: &str, off: &str, rank_at: &str, dims_at: &str) -> String {
    format!(
        "var {off} = 0u;\n    {{ var rem = {var}; let rk = {rank_at}; for (var d = i32(rk) - 1; d >= 0; d = d - 1) {{ let dim = p[{dims_at} + u32(d)]; let c = rem % dim; rem = rem / dim; {off} = {off} + c * p[{dims_at} + rk + u32(d)]; }} }}\n"
    )
}

/// The end of a reduction kernel, shared with the fused reduce (`fused.rs`): each of the
/// `RWG` threads puts its partial `acc` in workgroup memory `sh`, a tree combines them with
/// `comb`, and thread 0 stores `store` (an expression of the total `acc`) at `out[o]`.
pub(super) fn reduce_tree_tail(store: &str) -> String {
    format!(
        r#"    sh[li] = acc;
    workgroupBarrier();
    for (var s = {half}u; s > 0u; s = s >> 1u) {{
        if (li < s) {{ sh[li] = comb(sh[li], sh[li + s]); }}
        workgroupBarrier();
    }}
    if (li == 0u) {{ let acc = sh[0]; out[o] = {store}; }}
}}
"#,
        half = RWG / 2,
    )
}

pub(crate) fn reduce(ctx: &Arc<Ctx>, x: &Tensor, op: ReduceOp, axes: &[usize], shape: &Shape) -> Result<Tensor> {
    let t = x.dtype();
    let n_out = shape.num_elements();
    let (kd, ks, rd, rs) = split_axes(x.shape().dims(), axes);
    let r: usize = rd.iter().map(|d| *d as usize).product();
    let (id, comb) = match op {
        ReduceOp::Sum | ReduceOp::Mean => ("T(0)".to_string(), "a + b"),
        ReduceOp::Prod => ("T(1)".to_string(), "a * b"),
        ReduceOp::Max => (extreme(t, true).to_string(), "ff_max(a, b)"),
        ReduceOp::Min => (extreme(t, false).to_string(), "ff_min(a, b)"),
    };
    let comb = if t == DType::U8 && matches!(op, ReduceOp::Sum | ReduceOp::Mean | ReduceOp::Prod) {
        // u8 sums wrap at 256, but a mean divides the exact sum: keep 32 bits for it.
        if op == ReduceOp::Prod { "(a * b) & 255u" } else { comb }
    } else {
        comb
    };
    let finish = match (op, t) {
        (ReduceOp::Mean, DType::F32 | DType::F16 | DType::F64) => "acc / T(p[1])",
        (ReduceOp::Mean, DType::U8) => "select((acc & 255u) / p[1], 0u, p[1] == 0u)",
        (ReduceOp::Mean, _) => "select(acc / T(max(p[1], 1u)), T(0), p[1] == 0u)",
        (ReduceOp::Sum, DType::U8) => "acc & 255u",
        _ => "acc",
    };
    let mut s = enables(&[t]).to_string();
    s.push_str(&codegen::prelude(t));
    let _ = write!(
        s,
        r#"
fn comb(a: T, b: T) -> T {{ return {comb}; }}
@group(0) @binding(0) var<storage, read> in0: array<{el}>;
@group(0) @binding(1) var<storage, read_write> out: array<{el}>;
@group(0) @binding(2) var<storage, read> p: array<u32>;
var<workgroup> sh: array<T, {RWG}>;
@compute @workgroup_size({RWG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {{
    let o = wg.x + wg.y * nwg.x;
    if (o >= p[0]) {{ return; }}
    let r = p[1];
    let kr = p[2];
    {base}
    var acc: T = {id};
    for (var j = li; j < r; j = j + {RWG}u) {{
        {roff}
        acc = comb(acc, {ld});
    }}
"#,
        base = offset_code("o", "base", "kr", "3u"),
        roff = offset_code("j", "off", "p[3u + 2u * kr]", "4u + 2u * kr"),
        ld = load(t, "in0[base + off]"),
        el = elem(t),
    );
    s.push_str(&reduce_tree_tail(&store(t, finish)));
    let mut params = vec![n_out as u32, r as u32, kd.len() as u32];
    params.extend(&kd);
    params.extend(&ks);
    params.push(rd.len() as u32);
    params.extend(&rd);
    params.extend(&rs);
    let out = storage::alloc(ctx, op.name(), t, n_out)?;
    let k = ctx.kernel(op.name(), &s, 1)?;
    ctx.dispatch(op.name(), &k, &[buf(op.name(), x)?], &out.buffer, &params, n_out as u32)?;
    Ok(storage::tensor(out, shape.clone(), t))
}

/// argmax/argmin along one axis (or the flattened tensor): the first extreme, a NaN
/// counting as the extreme (as the CPU and NumPy); the i64 result is written as two words.
pub(crate) fn arg_reduce(ctx: &Arc<Ctx>, x: &Tensor, op: ArgOp, axis: Option<usize>, shape: &Shape) -> Result<Tensor> {
    let t = x.dtype();
    let s = x.shape();
    let (outer, r, inner) = match axis {
        None => (1, s.num_elements(), 1),
        Some(a) => (s[..a].iter().product::<usize>(), s[a], s[a + 1..].iter().product::<usize>()),
    };
    let n_out = outer * inner;
    let cmp = if op == ArgOp::Max { ">" } else { "<" };
    let mut src = enables(&[t]).to_string();
    src.push_str(&codegen::prelude(t));
    let _ = write!(
        src,
        r#"
@group(0) @binding(0) var<storage, read> in0: array<{el}>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> p: array<u32>;
var<workgroup> sv: array<T, {RWG}>;
var<workgroup> si: array<u32, {RWG}>;
// Whether (vb, ib) beats (va, ia): NaN first, then the extreme, then the lower index.
fn better(va: T, ia: u32, vb: T, ib: u32) -> bool {{
    if (ib == 0xffffffffu) {{ return false; }}
    if (ia == 0xffffffffu) {{ return true; }}
    if (ff_isnan(va)) {{ return ff_isnan(vb) && ib < ia; }}
    if (ff_isnan(vb)) {{ return true; }}
    if (vb {cmp} va) {{ return true; }}
    return vb == va && ib < ia;
}}
@compute @workgroup_size({RWG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {{
    let o = wg.x + wg.y * nwg.x;
    if (o >= p[0]) {{ return; }}
    let r = p[1]; let inner = p[2];
    let base = (o / inner) * r * inner + o % inner;
    var bv: T = T(0);
    var bi = 0xffffffffu;
    for (var j = li; j < r; j = j + {RWG}u) {{
        let v = {ld};
        if (better(bv, bi, v, j)) {{ bv = v; bi = j; }}
    }}
    sv[li] = bv; si[li] = bi;
    workgroupBarrier();
    for (var s = {half}u; s > 0u; s = s >> 1u) {{
        if (li < s && better(sv[li], si[li], sv[li + s], si[li + s])) {{ sv[li] = sv[li + s]; si[li] = si[li + s]; }}
        workgroupBarrier();
    }}
    if (li == 0u) {{ out[2u * o] = select(si[0], 0u, si[0] == 0xffffffffu); out[2u * o + 1u] = 0u; }}
}}
"#,
        ld = load(t, "in0[base + j * inner]"),
        half = RWG / 2,
        el = elem(t),
    );
    let name = if op == ArgOp::Max { "argmax" } else { "argmin" };
    let out = storage::alloc(ctx, name, DType::I64, n_out)?;
    let k = ctx.kernel(name, &src, 1)?;
    ctx.dispatch(
        name,
        &k,
        &[buf(name, x)?],
        &out.buffer,
        &[n_out as u32, r as u32, inner.max(1) as u32],
        n_out as u32,
    )?;
    Ok(storage::tensor(out, shape.clone(), DType::I64))
}

/// The entry point of the tiled matmul, shared with the fused matmul (`fused.rs`): 64x64
/// outputs per workgroup of 16x16 threads, each a 4x4 register block, K in steps of 16
/// through workgroup memory tiles padded by `pad` columns. Parameters as `matmul` writes
/// them. `la`/`lb` load an operand element (`in0`/`in1` at `ao`/`bo`, row `gr`/`hr`,
/// column `gc`/`hc`); `extra` adds declarations and per-batch-dim updates (index `d`, its
/// coordinate `c`) for an epilogue's inputs; `store` writes `acc[q][w]`, the output at
/// row `r` and column `c` (offset `oo + r * n + c`).
pub(super) fn tiled_matmul_main(la: &str, lb: &str, pad: usize, extra: (&str, &str), store: &str) -> String {
    let (decl, batch) = extra;
    format!(
        r#"var<workgroup> ta: array<array<T, {ta_w}>, 64>;
var<workgroup> tb: array<array<T, {tb_w}>, 16>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {{
    let m = p[0]; let n = p[1]; let k = p[2];
    let a_rs = p[3]; let a_cs = p[4]; let b_rs = p[5]; let b_cs = p[6];
    let nbd = p[7];
    // Batch offsets from the batch index (wg.z) over the broadcast batch dims.
    var ao = 0u; var bo = 0u;{decl}
    {{ var rem = wg.z; for (var d = i32(nbd) - 1; d >= 0; d = d - 1) {{ let dim = p[8u + u32(d)]; let c = rem % dim; rem = rem / dim; ao = ao + c * p[8u + nbd + u32(d)]; bo = bo + c * p[8u + 2u * nbd + u32(d)];{batch} }} }}
    let oo = wg.z * m * n;
    let row0 = wg.y * 64u; let col0 = wg.x * 64u;
    var acc: array<array<T, 4>, 4>;
    for (var q = 0u; q < 4u; q = q + 1u) {{ for (var w = 0u; w < 4u; w = w + 1u) {{ acc[q][w] = T(0); }} }}
    for (var k0 = 0u; k0 < k; k0 = k0 + 16u) {{
        for (var x = li; x < 1024u; x = x + 256u) {{
            let ar = x / 16u; let ac = x % 16u;
            let gr = row0 + ar; let gc = k0 + ac;
            var va = T(0);
            if (gr < m && gc < k) {{ va = {la}; }}
            ta[ar][ac] = va;
            let br = x / 64u; let bc = x % 64u;
            let hr = k0 + br; let hc = col0 + bc;
            var vb = T(0);
            if (hr < k && hc < n) {{ vb = {lb}; }}
            tb[br][bc] = vb;
        }}
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk = kk + 1u) {{
            var av: array<T, 4>;
            var bv: array<T, 4>;
            for (var q = 0u; q < 4u; q = q + 1u) {{ av[q] = ta[lid.y * 4u + q][kk]; bv[q] = tb[kk][lid.x * 4u + q]; }}
            for (var q = 0u; q < 4u; q = q + 1u) {{ for (var w = 0u; w < 4u; w = w + 1u) {{ acc[q][w] = acc[q][w] + av[q] * bv[w]; }} }}
        }}
        workgroupBarrier();
    }}
    for (var q = 0u; q < 4u; q = q + 1u) {{
        for (var w = 0u; w < 4u; w = w + 1u) {{
            let r = row0 + lid.y * 4u + q; let c = col0 + lid.x * 4u + w;
            if (r < m && c < n) {{ {store} }}
        }}
    }}
}}
"#,
        ta_w = 16 + pad,
        tb_w = 64 + pad,
    )
}

/// Tile of the matmul kernel: 64x64 outputs per workgroup of 16x16 threads, each thread a
/// 4x4 register block; K in steps of 16 through workgroup memory.
const MM_TILE: u32 = 64;

/// The parameters of the tiled matmul (`m, n, k`, operand row and column strides, `nbd`,
/// the batch dims and both operands' batch strides, 0 where broadcast) and its workgroup
/// grid (column tiles, row tiles, batch).
pub(super) fn matmul_params(a: &Tensor, b: &Tensor, ta: bool, tb: bool, shape: &Shape) -> (Vec<u32>, (u32, u32, u32)) {
    let (sa, sb) = (a.shape().dims(), b.shape().dims());
    let (ra, rb) = (sa.len(), sb.len());
    let (m, k) = if ta { (sa[ra - 1], sa[ra - 2]) } else { (sa[ra - 2], sa[ra - 1]) };
    let n = if tb { sb[rb - 2] } else { sb[rb - 1] };
    let (a_rs, a_cs) = if ta { (1, sa[ra - 1]) } else { (sa[ra - 1], 1) };
    let (b_rs, b_cs) = if tb { (1, sb[rb - 1]) } else { (sb[rb - 1], 1) };
    let batch = &shape.dims()[..shape.rank() - 2];
    let nb: usize = batch.iter().product();
    // Per-batch-dim strides of each operand, broadcast (0) where its batch dim is 1.
    let bs = |dims: &[usize], r: usize| -> Vec<u32> {
        let mat = dims[r - 2] * dims[r - 1];
        let bd = &dims[..r - 2];
        let st = strides(bd);
        let mut out = vec![0u32; batch.len()];
        for (i, d) in bd.iter().enumerate() {
            let o = i + batch.len() - bd.len();
            out[o] = if *d == 1 && batch[o] != 1 { 0 } else { (st[i] * mat) as u32 };
        }
        out
    };
    let mut params: Vec<u32> = u32s(&[m, n, k, a_rs, a_cs, b_rs, b_cs, batch.len()]).collect();
    params.extend(u32s(batch));
    params.extend(bs(sa, ra));
    params.extend(bs(sb, rb));
    (params, ((n as u32).div_ceil(MM_TILE), (m as u32).div_ceil(MM_TILE), nb as u32))
}

/// The matmul tiles' padding for dtype `t`: one column against bank conflicts, except for
/// 8-byte types, where the padding would pass the 16 KiB of workgroup memory WebGPU
/// guarantees.
pub(super) fn tile_pad(t: DType) -> usize {
    if ty(t) == "f64" || ty(t) == "i64" { 0 } else { 1 }
}

pub(crate) fn matmul(ctx: &Arc<Ctx>, a: &Tensor, b: &Tensor, ta: bool, tb: bool, shape: &Shape) -> Result<Tensor> {
    let t = a.dtype();
    let out = storage::alloc(ctx, "matmul", t, shape.num_elements())?;
    if shape.num_elements() == 0 {
        return Ok(storage::tensor(out, shape.clone(), t));
    }
    let fin = if t == DType::U8 { "acc[q][w] & 255u" } else { "acc[q][w]" };
    let pad = tile_pad(t);
    let mut src = enables(&[t]).to_string();
    src.push_str(&codegen::prelude(t));
    let _ = write!(
        src,
        r#"
@group(0) @binding(0) var<storage, read> in0: array<{el}>;
@group(0) @binding(1) var<storage, read> in1: array<{el}>;
@group(0) @binding(2) var<storage, read_write> out: array<{el}>;
@group(0) @binding(3) var<storage, read> p: array<u32>;
"#,
        el = elem(t),
    );
    let store_out = format!("out[oo + r * n + c] = {};", store(t, fin));
    src.push_str(&tiled_matmul_main(
        &load(t, "in0[ao + gr * a_rs + gc * a_cs]"),
        &load(t, "in1[bo + hr * b_rs + hc * b_cs]"),
        pad,
        ("", ""),
        &store_out,
    ));
    let (params, grid) = matmul_params(a, b, ta, tb, shape);
    let kern = ctx.kernel("matmul", &src, 2)?;
    ctx.dispatch_3d("matmul", &kern, &[buf("matmul", a)?, buf("matmul", b)?], &out.buffer, &params, grid)?;
    Ok(storage::tensor(out, shape.clone(), t))
}

/// Softmax or log-softmax along `axis`: one workgroup per row (max, then the sum of
/// exponentials, then the outputs), numerically stable as the CPU kernel.
pub(crate) fn softmax(ctx: &Arc<Ctx>, x: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
    let s = x.shape();
    let (outer, r, inner) = if s.rank() == 0 {
        (1, 1, 1)
    } else {
        (s[..axis].iter().product::<usize>(), s[axis], s[axis + 1..].iter().product::<usize>())
    };
    let rows = outer * inner;
    let out_expr = if log { "(v - mx) - ff_log(sum)" } else { "ff_exp(v - mx) / sum" };
    // f32, f64 or f16 (computed in f32, rounded once when stored).
    let t = x.dtype();
    let ld = |at: &str| load(t, &format!("in0[{at}]"));
    let mut src = format!(
        r#"{en}{prelude}
@group(0) @binding(0) var<storage, read> in0: array<{el}>;
@group(0) @binding(1) var<storage, read_write> out: array<{el}>;
@group(0) @binding(2) var<storage, read> p: array<u32>;
var<workgroup> sh: array<T, {RWG}>;
@compute @workgroup_size({RWG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {{
    let o = wg.x + wg.y * nwg.x;
    if (o >= p[0]) {{ return; }}
    let r = p[1]; let inner = p[2];
    let base = (o / inner) * r * inner + o % inner;
    var m: T = {lowest};
    for (var j = li; j < r; j = j + {RWG}u) {{ m = ff_max(m, {ldj}); }}
    sh[li] = m;
    workgroupBarrier();
    for (var s = {half}u; s > 0u; s = s >> 1u) {{ if (li < s) {{ sh[li] = ff_max(sh[li], sh[li + s]); }} workgroupBarrier(); }}
    let mx = sh[0];
    workgroupBarrier();
    var acc = T(0);
    for (var j = li; j < r; j = j + {RWG}u) {{ acc = acc + ff_exp({ldj} - mx); }}
    sh[li] = acc;
    workgroupBarrier();
    for (var s = {half}u; s > 0u; s = s >> 1u) {{ if (li < s) {{ sh[li] = sh[li] + sh[li + s]; }} workgroupBarrier(); }}
    let sum = sh[0];
    for (var j = li; j < r; j = j + {RWG}u) {{
        let v = {ldj};
        out[base + j * inner] = {st};
    }}
}}
"#,
        half = RWG / 2,
        en = enables(&[t]),
        prelude = codegen::prelude(t),
        lowest = extreme(t, true),
        el = elem(t),
        ldj = ld("base + j * inner"),
        st = store(t, out_expr),
    );
    src.push_str(&super::math::helpers(t, &src));
    let out = storage::alloc(ctx, "softmax", x.dtype(), s.num_elements())?;
    if rows > 0 && r > 0 {
        let k = ctx.kernel("softmax", &src, 1)?;
        ctx.dispatch(
            "softmax",
            &k,
            &[buf("softmax", x)?],
            &out.buffer,
            &[rows as u32, r as u32, inner as u32],
            rows as u32,
        )?;
    }
    Ok(storage::tensor(out, s.clone(), x.dtype()))
}

/// Which distribution `random` draws.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dist {
    Uniform,
    Normal,
}

/// Seeded f32 or f64 random values on the GPU with the CPU's generator (`crate::random`):
/// Philox-4x32-10, element `i` from counter `i / 2` under `seed`. Uniform values are
/// bit-identical to the CPU's (the 53-bit draw is rounded to f32 exactly, in integers; f64
/// holds it exactly). Normal f32 values compute Box-Muller in f32 (the CPU in f64), so they
/// agree to a few ulps; normal f64 values compute it in f64 with `math`'s log, sin and cos
/// (within an ulp of the CPU's libm), so they agree to an ulp or two.
pub(crate) fn random(ctx: &Arc<Ctx>, shape: &Shape, seed: u64, dist: Dist, dtype: DType) -> Result<Tensor> {
    let n = shape.num_elements();
    let wide = dtype == DType::F64;
    let body = match dist {
        Dist::Uniform if wide => {
            "let pr = select(vec2(w.z, w.w), vec2(w.x, w.y), (i & 1u) == 0u);\n    let v = unit64(pr.x, pr.y);"
        }
        Dist::Normal if wide => {
            "let u1 = 1.0 - unit64(w.x, w.y); // (0, 1]: log is finite\n    let u2 = unit64(w.z, w.w);\n    let r = sqrt(-2.0 * ff_log(u1));\n    let t = 6.283185307179586 * u2;\n    let v = select(r * ff_sin(t), r * ff_cos(t), (i & 1u) == 0u);"
        }
        Dist::Uniform => {
            "let pr = select(vec2(w.z, w.w), vec2(w.x, w.y), (i & 1u) == 0u);\n    let v = min(unit53((pr.x << 21u) | (pr.y >> 11u), pr.x >> 11u), bitcast<f32>(0x3f7fffffu));"
        }
        Dist::Normal => {
            "// u1 = 1 - unit(w0, w1) in (0, 1], from 2^53 - N exactly.\n    let nl = (w.x << 21u) | (w.y >> 11u);\n    let nh = w.x >> 11u;\n    let ml = 0u - nl;\n    let mh = (1u << 21u) - nh - select(0u, 1u, nl != 0u);\n    let u1 = unit53(ml, mh);\n    let u2 = unit53((w.z << 21u) | (w.w >> 11u), w.z >> 11u);\n    let r = sqrt(-2.0 * log(u1));\n    let t = 6.283185307179586 * u2;\n    let v = select(r * sin(t), r * cos(t), (i & 1u) == 0u);"
        }
    };
    let src = format!(
        r#"
@group(0) @binding(0) var<storage, read_write> out: array<{elem}>;
@group(0) @binding(1) var<storage, read> p: array<u32>;
// (hi, lo) of a * b.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {{
    let a0 = a & 0xffffu; let a1 = a >> 16u; let b0 = b & 0xffffu; let b1 = b >> 16u;
    let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    return vec2(p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u), (mid << 16u) | (p00 & 0xffffu));
}}
fn philox(ctr_lo: u32, ctr_hi: u32, k_lo: u32, k_hi: u32) -> vec4<u32> {{
    var c = vec4(ctr_lo, ctr_hi, 0x5EED0001u, 0u);
    var k0 = k_lo; var k1 = k_hi;
    for (var r = 0; r < 10; r = r + 1) {{
        let p0 = mul_wide(0xD2511F53u, c.x);
        let p1 = mul_wide(0xCD9E8D57u, c.z);
        c = vec4(p1.x ^ c.y ^ k0, p1.y, p0.x ^ c.w ^ k1, p0.y);
        k0 = k0 + 0x9E3779B9u; k1 = k1 + 0xBB67AE85u;
    }}
    return c;
}}
// The 53-bit integer (hi:21 bits, lo:32 bits) times 2^-53, rounded to f32 to nearest even.
fn unit53(lo: u32, hi: u32) -> f32 {{
    var msb: i32;
    if (hi != 0u) {{ msb = 32 + i32(firstLeadingBit(hi)); }} else if (lo != 0u) {{ msb = i32(firstLeadingBit(lo)); }} else {{ return 0.0; }}
    if (msb < 24) {{ return ldexp(f32(lo), -53); }}
    let s = u32(msb - 23);
    var q = (lo >> s) | (hi << (32u - s));
    let rem = lo & ((1u << s) - 1u);
    let half = 1u << (s - 1u);
    if (rem > half || (rem == half && (q & 1u) == 1u)) {{ q = q + 1u; }}
    return ldexp(f32(q), i32(s) - 53);
}}
{wide_fns}
@compute @workgroup_size({WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {{
    let i = (wg.x + wg.y * nwg.x) * {WG}u + li;
    if (i >= p[0]) {{ return; }}
    let w = philox(i >> 1u, 0u, p[1], p[2]);
    {body}
    out[i] = {store};
}}
"#,
        elem = codegen::elem(dtype),
        store = if wide { "v" } else { "bitcast<u32>(v)" },
        wide_fns = if wide {
            // The 53-bit draw (a:32 bits << 21 | b >> 11) times 2^-53, exactly.
            "fn unit64(a: u32, b: u32) -> f64 {\n    return f64((u64(a) << 21u) ^ (u64(b) >> 11u)) * bitcast<f64>(0x3ca0000000000000lu);\n}\n".to_string()
                + &super::math::helpers(DType::F64, body)
        } else {
            String::new()
        },
    );
    let name = if dist == Dist::Uniform { "random::uniform" } else { "random::normal" };
    let out = storage::alloc(ctx, name, dtype, n)?;
    if n > 0 {
        let k = ctx.kernel(name, &src, 0)?;
        ctx.dispatch(name, &k, &[], &out.buffer, &[n as u32, seed as u32, (seed >> 32) as u32], groups(n, WG))?;
    }
    Ok(storage::tensor(out, shape.clone(), dtype))
}
