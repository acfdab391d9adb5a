//! The tiled matmul (`wgsl/matmul.wgsl`): 64x64 outputs per workgroup of 16x16 threads,
//! each a 4x4 register block, transpose flags as operand strides, broadcast batch dims.
//! The fused matmul (`fused.rs`) is the same text with an epilogue.

use std::sync::Arc;

use super::{buf, strides};
use crate::backend::wgpu::codegen::{bindings, elem, enables, load, prelude, store, ty};
use crate::backend::wgpu::context::Ctx;
use crate::backend::wgpu::storage;
use crate::backend::wgpu::template::{params, render};
use crate::dtype::DType;
use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::Tensor;

const MATMUL: &str = include_str!("../wgsl/matmul.wgsl");

/// Tile of the matmul kernel: 64x64 outputs per workgroup of 16x16 threads, each thread a
/// 4x4 register block; K in steps of 16 through workgroup memory.
const MM_TILE: u32 = 64;

/// The fixed parameters of `wgsl/matmul.wgsl` (then `batch`: the batch dims and both
/// operands' batch strides).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    a_rs: u32,
    a_cs: u32,
    b_rs: u32,
    b_cs: u32,
    nbd: u32,
}

/// `wgsl/matmul.wgsl` for dtype `t` (its tiles padded by `tile_pad`), shared with the fused
/// matmul: `la`/`lb` load an operand element, `extra` is the epilogue's declarations and
/// per-batch-dim updates, `store` writes `acc[q][w]` (see the file's header).
pub(crate) fn tiled_matmul_main(t: DType, la: &str, lb: &str, extra: (&str, &str), store: &str) -> String {
    let pad = tile_pad(t);
    let (ta_w, tb_w) = ((16 + pad).to_string(), (64 + pad).to_string());
    render(
        MATMUL,
        &[
            ("TA_W", &ta_w),
            ("TB_W", &tb_w),
            ("LOAD_A", la),
            ("LOAD_B", lb),
            ("EPI_DECL", extra.0),
            ("EPI_BATCH", extra.1),
            ("STORE", store),
        ],
    )
}

/// The parameter words of the tiled matmul (`MatmulParams`, the batch dims, both operands'
/// batch strides, 0 where broadcast) and its workgroup grid (column tiles, row tiles,
/// batch).
pub(crate) fn matmul_params(a: &Tensor, b: &Tensor, ta: bool, tb: bool, shape: &Shape) -> (Vec<u32>, (u32, u32, u32)) {
    let (sa, sb) = (a.shape().dims(), b.shape().dims());
    let (ra, rb) = (sa.len(), sb.len());
    let (m, k) = if ta { (sa[ra - 1], sa[ra - 2]) } else { (sa[ra - 2], sa[ra - 1]) };
    let n = if tb { sb[rb - 2] } else { sb[rb - 1] };
    let (a_rs, a_cs) = if ta { (1, sa[ra - 1]) } else { (sa[ra - 1], 1) };
    let (b_rs, b_cs) = if tb { (1, sb[rb - 1]) } else { (sb[rb - 1], 1) };
    let batch = &shape.dims()[..shape.rank() - 2];
    let nb: usize = batch.iter().product(); // ok: dims of the inferred (checked) output
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
    let head = MatmulParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        a_rs: a_rs as u32,
        a_cs: a_cs as u32,
        b_rs: b_rs as u32,
        b_cs: b_cs as u32,
        nbd: batch.len() as u32,
    };
    let mut tail: Vec<u32> = batch.iter().map(|d| *d as u32).collect();
    tail.extend(bs(sa, ra));
    tail.extend(bs(sb, rb));
    (params(&head, &tail), ((n as u32).div_ceil(MM_TILE), (m as u32).div_ceil(MM_TILE), nb as u32))
}

/// The matmul tiles' padding for dtype `t`: one column against bank conflicts, except for
/// 8-byte types, where the padding would pass the 16 KiB of workgroup memory WebGPU
/// guarantees.
pub(crate) fn tile_pad(t: DType) -> usize {
    if ty(t) == "f64" || ty(t) == "i64" { 0 } else { 1 }
}

/// The WGSL of the matmul of dtype `t`.
pub(crate) fn matmul_source(t: DType) -> String {
    let fin = if t == DType::U8 { "acc[q][w] & 255u" } else { "acc[q][w]" };
    let el = elem(t);
    let mut src = format!("{}{}", enables(&[t]), prelude(t));
    src.push_str(&bindings(&[el, el], el));
    src.push_str(&tiled_matmul_main(
        t,
        &load(t, "in0[ao + gr * a_rs + gc * a_cs]"),
        &load(t, "in1[bo + hr * b_rs + hc * b_cs]"),
        ("", ""),
        &format!("out[oo + r * n + c] = {};", store(t, fin)),
    ));
    src
}

pub(crate) fn matmul(ctx: &Arc<Ctx>, a: &Tensor, b: &Tensor, ta: bool, tb: bool, shape: &Shape) -> Result<Tensor> {
    let t = a.dtype();
    let out = storage::alloc(ctx, "matmul", t, shape.num_elements())?;
    if shape.num_elements() == 0 {
        return Ok(storage::tensor(out, shape.clone(), t));
    }
    let (p, grid) = matmul_params(a, b, ta, tb, shape);
    let kern = ctx.kernel("matmul", &matmul_source(t), 2)?;
    ctx.dispatch_3d("matmul", &kern, &[buf("matmul", a)?, buf("matmul", b)?], &out.buffer, &p, grid)?;
    Ok(storage::tensor(out, shape.clone(), t))
}
