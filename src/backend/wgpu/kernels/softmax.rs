//! Softmax and log-softmax along one axis (`wgsl/softmax.wgsl`): one workgroup per row.

use std::sync::Arc;

use super::buf;
use super::reduce::extreme;
use crate::backend::wgpu::codegen::{elem, enables, load, prelude, store};
use crate::backend::wgpu::context::Ctx;
use crate::backend::wgpu::math;
use crate::backend::wgpu::storage;
use crate::backend::wgpu::template::{params, render};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;

const SOFTMAX: &str = include_str!("../wgsl/softmax.wgsl");

/// The parameters of `wgsl/softmax.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SoftmaxParams {
    rows: u32,
    row: u32,
    inner: u32,
}

/// The WGSL of softmax (`log`: log-softmax) over dtype `t` (f32, f64, or f16 computed in
/// f32 and rounded once when stored), with the math helpers it calls.
pub(crate) fn softmax_source(t: DType, log: bool) -> String {
    let out_expr = if log { "(v - mx) - ff_log(sum)" } else { "ff_exp(v - mx) / sum" };
    let body = render(
        SOFTMAX,
        &[
            ("ELEM", elem(t)),
            ("LOWEST", extreme(t, true)),
            ("LOAD_J", &load(t, "in0[base + j * inner]")),
            ("STORE", &store(t, out_expr)),
        ],
    );
    let mut src = format!("{}{}{body}", enables(&[t]), prelude(t));
    src.push_str(&math::helpers(t, &src));
    src
}

/// Softmax or log-softmax along `axis`: one workgroup per row (max, then the sum of
/// exponentials, then the outputs), numerically stable as the CPU kernel.
pub(crate) fn softmax(ctx: &Arc<Ctx>, x: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
    let s = x.shape();
    let (outer, r, inner) = if s.rank() == 0 {
        (1, 1, 1)
    } else {
        (s[..axis].iter().product::<usize>(), s[axis], s[axis + 1..].iter().product::<usize>()) // ok: an existing tensor's dims
    };
    let rows = outer * inner;
    let out = storage::alloc(ctx, "softmax", x.dtype(), s.num_elements())?;
    if rows > 0 && r > 0 {
        let k = ctx.kernel("softmax", &softmax_source(x.dtype(), log), 1)?;
        let p = params(&SoftmaxParams { rows: rows as u32, row: r as u32, inner: inner as u32 }, &[]);
        ctx.dispatch("softmax", &k, &[buf("softmax", x)?], &out.buffer, &p, rows as u32)?;
    }
    Ok(storage::tensor(out, s.clone(), x.dtype()))
}
