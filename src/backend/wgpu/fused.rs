//! Generated kernels for the fusion groups that hold more than elementwise work, each ONE
//! dispatch (the loop kind is `codegen::Ew`):
//! - **fused reduce**: the elementwise program runs per element inside the reduction's load,
//!   so its result never exists as a tensor; one workgroup per output element folds its row
//!   with the same tree, identities, NaN rules and mean as `kernels::reduce`;
//! - **fused matmul**: the register-blocked tiled matmul of `kernels::matmul` (same tiles,
//!   transpose flags, broadcast batch dims) with the epilogue applied to each output element
//!   in registers before the store; epilogue inputs broadcast through strides.
//!
//! As for `codegen::Ew`, the WGSL depends on the dtype, the program, the reduce op and the
//! load kinds (contiguous, strided, host scalar), never on shapes: rank, dims and strides
//! are parameters, so the pipeline cache (keyed by text) caches by the fusion's structure.
//! Groups are f32, or f64 where the device computes it (typed `array<f64>` buffers, host
//! scalars as two parameter words, the f64 math library for the program's functions).

use std::fmt::Write;
use std::sync::Arc;

use super::codegen::{self, Ew, LoadKind, elem, load, param_load, param_words, store};
use super::context::Ctx;
use super::kernels::{self, REDUCE_TREE, bcast_strides, buf, scalar_words};
use super::storage;
use super::template::{params, render};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::prim::fusion::Fusion;
use crate::prim::{PrimOp, ReduceOp};
use crate::shape::Shape;
use crate::tensor::Tensor;

const FUSED_REDUCE: &str = include_str!("wgsl/fused_reduce.wgsl");

/// The fixed parameters of the fused reduce (`wgsl/fused_reduce.wgsl`'s `Params`; then
/// `shape`: the iteration dims, the strided loads' strides, the host scalars' words).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FusedReduceParams {
    n_out: u32,
    row: u32,
    rank: u32,
}

/// How the loads of a fused kernel read their inputs over an iteration shape.
struct Loads<'a> {
    kinds: LoadKinds,
    bufs: Vec<&'a wgpu::Buffer>,
    /// `rank` strides per strided load, in load order.
    strides: Vec<u32>,
    /// The words of each host-scalar load (two for f64).
    words: Vec<u32>,
}

impl<'a> Loads<'a> {
    /// Classifies `inputs` over `shape` as `kernels::run_ew` does: host scalars are
    /// parameters, inputs of the full size are read at the element's index, the others
    /// through broadcast strides.
    fn new(op: &'static str, inputs: &[&'a Tensor], shape: &Shape) -> Result<Loads<'a>> {
        let n = shape.num_elements();
        let mut l = Loads { kinds: LoadKinds(vec![]), bufs: vec![], strides: vec![], words: vec![] };
        for t in inputs {
            if t.gpu_storage().is_none() {
                let w =
                    scalar_words(t).ok_or_else(|| Error::invalid(op, "internal: a host input that is not a scalar"))?;
                l.kinds.0.push((LoadKind::Param, t.dtype()));
                l.words.extend(w);
            } else if t.num_elements() == n {
                l.kinds.0.push((LoadKind::Contig, t.dtype()));
                l.bufs.push(buf(op, t)?);
            } else {
                l.kinds.0.push((LoadKind::Strided, t.dtype()));
                l.strides.extend(bcast_strides(t.shape().dims(), shape.dims()));
                l.bufs.push(buf(op, t)?);
            }
        }
        Ok(l)
    }
}

/// How a fused kernel's loads read (contiguous, strided, host scalar), the part of `Loads`
/// that its WGSL depends on.
pub(crate) struct LoadKinds(pub(crate) Vec<(LoadKind, DType)>);

impl LoadKinds {
    fn n_strided(&self) -> usize {
        self.0.iter().filter(|(k, _)| *k == LoadKind::Strided).count()
    }

    /// The element types of the buffer loads (in load order).
    fn buffer_elems(&self) -> Vec<&'static str> {
        self.0.iter().filter(|(k, _)| *k != LoadKind::Param).map(|(_, d)| elem(*d)).collect()
    }

    /// `let r{reg0 + k} = ...;` for each load: buffer `in{first + b}` at `contig` for
    /// contiguous loads, at `strided(j)` for strided load `j`; a scalar starting at word `k`
    /// of the scalar words at index `param(k)` of the parameter array `arr`.
    fn code(
        &self,
        first: usize,
        reg0: usize,
        contig: &str,
        strided: impl Fn(usize) -> String,
        (arr, param): (&str, impl Fn(usize) -> String),
    ) -> String {
        let mut s = String::new();
        let (mut b, mut j, mut k) = (first, 0, 0);
        for (r, (kind, d)) in self.0.iter().enumerate() {
            let value = match kind {
                LoadKind::Contig => {
                    b += 1;
                    load(*d, &format!("in{}[{contig}]", b - 1))
                }
                LoadKind::Strided => {
                    b += 1;
                    j += 1;
                    load(*d, &format!("in{}[{}]", b - 1, strided(j - 1)))
                }
                LoadKind::Param => {
                    k += param_words(*d);
                    param_load(*d, arr, &param(k - param_words(*d)))
                }
            };
            let _ = writeln!(s, "    let r{} = {value};", reg0 + r);
        }
        s
    }
}

/// Identity, combine and finish of a reduction of float dtype `t` (f32 or f64), as
/// `kernels::reduce`: max/min propagate NaN (`ff_max`/`ff_min`), an empty mean is NaN.
fn reduce_parts(op: ReduceOp, t: DType) -> (&'static str, &'static str, &'static str) {
    match op {
        ReduceOp::Sum => ("T(0)", "a + b", "acc"),
        ReduceOp::Mean => ("T(0)", "a + b", "acc / T(p.row)"),
        ReduceOp::Prod => ("T(1)", "a * b", "acc"),
        ReduceOp::Max => (kernels::extreme(t, true), "ff_max(a, b)", "acc"),
        ReduceOp::Min => (kernels::extreme(t, false), "ff_min(a, b)", "acc"),
    }
}

/// The WGSL of a fused reduce (`wgsl/fused_reduce.wgsl` after the generated `elem`).
/// Parameters: `FusedReduceParams`, then in `shape` the iteration dims, `rank` strides per
/// strided load, the scalar loads' words.
pub(crate) fn reduce_source(f: &Fusion, op: ReduceOp, loads: &LoadKinds) -> String {
    let (lines, result, helpers) = super::program(f);
    let (id, comb, finish) = reduce_parts(op, f.dtype);
    let mut s = codegen::prelude(f.dtype);
    s.push_str(&helpers);
    s.push_str(&super::math::helpers(f.dtype, &helpers));
    s.push_str(&codegen::bindings(&loads.buffer_elems(), elem(f.dtype)));
    // The program at element `i` of the iteration space (row-major).
    s.push_str("fn elem(i: u32) -> T {\n    let rank = p.rank;\n");
    let ns = loads.n_strided();
    if ns > 0 {
        for j in 0..ns {
            let _ = writeln!(s, "    var o{j} = 0u;");
        }
        s.push_str("    var rem = i;\n    for (var d = i32(rank) - 1; d >= 0; d = d - 1) {\n        let dim = p.shape[u32(d)];\n        let c = rem % dim;\n        rem = rem / dim;\n");
        for j in 0..ns {
            let _ = writeln!(s, "        o{j} = o{j} + c * p.shape[rank * {}u + u32(d)];", j + 1);
        }
        s.push_str("    }\n");
    }
    let scalars = ("p.shape", |k| format!("rank * {}u + {k}u", ns + 1));
    s.push_str(&loads.code(0, 0, "i", |j| format!("o{j}"), scalars));
    for l in &lines {
        let _ = writeln!(s, "    {l}");
    }
    let _ = writeln!(s, "    return {result};\n}}");
    s.push_str(&render(FUSED_REDUCE, &[("ID", id), ("COMB", comb), ("STORE", &store(f.dtype, finish))]));
    s.push_str(REDUCE_TREE);
    s
}

/// The elementwise program as a loop kernel (for the rare shapes that run unfused).
fn ew(f: &Fusion) -> Ew {
    let (lines, result, helpers) = super::program(f);
    Ew { t: f.dtype, loads: vec![], lines, result, out: f.dtype, helpers }
}

/// Fails for iteration spaces past u32 indexing (a broadcast can make one larger than any
/// buffer, since it is never materialized).
fn fits_u32(op: &'static str, n: usize) -> Result<()> {
    if n <= u32::MAX as usize {
        Ok(())
    } else {
        Err(super::unsupported(
            op,
            format!("an iteration space of {n} elements exceeds the GPU's 32-bit indexing; split the tensor"),
        ))
    }
}

/// A fused reduce as one kernel: the program over the loads' broadcast shape, folded over
/// the trailing `axes` into `shape`.
pub(crate) fn reduce(
    ctx: &Arc<Ctx>,
    f: &Fusion,
    op: ReduceOp,
    axes: &[usize],
    inputs: &[&Tensor],
    shape: &Shape,
) -> Result<Tensor> {
    let name = f.name();
    let shapes: Vec<&Shape> = inputs.iter().map(|t| t.shape()).collect();
    let it = f.iteration_shape(&shapes)?;
    let rank = it.rank();
    let trailing = axes.iter().enumerate().all(|(k, &a)| a + axes.len() == rank + k);
    if !trailing {
        // The fusion pass only fuses trailing reductions; anything else runs unfused.
        let body = kernels::run_ew(ctx, name, ew(f), inputs, &it)?;
        return kernels::reduce(ctx, &body, op, axes, shape);
    }
    fits_u32(name, it.num_elements())?;
    let row: usize = axes.iter().map(|&a| it[a]).product(); // ok: fits_u32 checked the whole above
    let n_out = shape.num_elements();
    let loads = Loads::new(name, inputs, &it)?;
    let mut tail: Vec<u32> = it.dims().iter().map(|d| *d as u32).collect();
    tail.extend(&loads.strides);
    tail.extend(&loads.words);
    let p = params(&FusedReduceParams { n_out: n_out as u32, row: row as u32, rank: rank as u32 }, &tail);
    let out = storage::alloc(ctx, name, f.dtype, n_out)?;
    let k = ctx.kernel(name, &reduce_source(f, op, &loads.kinds), loads.bufs.len())?;
    ctx.dispatch(name, &k, &loads.bufs, &out.buffer, &p, n_out as u32)?;
    Ok(storage::tensor(out, shape.clone(), f.dtype))
}

/// The WGSL of a fused matmul: `wgsl/matmul.wgsl` with epilogue loads bound after the
/// operands. Parameters: as `kernels::matmul` (`MatmulParams`, then in `batch` the batch
/// dims and both operands' batch strides), then `nbd + 2` output strides per strided
/// epilogue load, then the scalar loads' words.
pub(crate) fn matmul_source(f: &Fusion, loads: &LoadKinds) -> String {
    let (lines, result, helpers) = super::program(f);
    let t = f.dtype;
    let ns = loads.n_strided();
    let mut s = codegen::prelude(t);
    s.push_str(&helpers);
    s.push_str(&super::math::helpers(t, &helpers));
    let el = elem(t);
    let mut ins = vec![el, el];
    ins.extend(loads.buffer_elems());
    s.push_str(&codegen::bindings(&ins, el));
    // Epilogue words start at `e = 3 * nbd` in `p.batch`; strided load `j` has its batch
    // offset `eb{j}` (from wg.z) and its row and column strides.
    let mut batch = String::new();
    let mut decl = String::new();
    for j in 0..ns {
        let _ = write!(decl, " var eb{j} = 0u;");
        let _ = write!(batch, " eb{j} = eb{j} + c * p.batch[e + {j}u * (nbd + 2u) + u32(d)];");
    }
    let epi_loads = loads.code(
        2,
        1,
        "oo + r * n + c",
        |j| format!("eb{j} + r * p.batch[e + {j}u * (nbd + 2u) + nbd] + c * p.batch[e + {j}u * (nbd + 2u) + nbd + 1u]"),
        ("p.batch", |k| format!("e + {ns}u * (nbd + 2u) + {k}u")),
    );
    let mut epi = String::new();
    for l in epi_loads.lines().map(str::trim).chain(lines.iter().map(String::as_str)) {
        let _ = write!(epi, "\n                {l}");
    }
    let decl = format!("let e = 3u * nbd;{decl}");
    let tail = format!("let r0 = acc[q][w];{epi}\n                out[oo + r * n + c] = {};", store(t, &result));
    s.push_str(&kernels::tiled_matmul_main(
        t,
        &load(t, "in0[ao + gr * a_rs + gc * a_cs]"),
        &load(t, "in1[bo + hr * b_rs + hc * b_cs]"),
        (&decl, &batch),
        &tail,
    ));
    s
}

/// A fused matmul as one kernel: `matmul(a, b)` with the epilogue applied in registers.
/// When unknown dims made the epilogue broadcast the product itself (the output is larger
/// than the product), it runs as the matmul then a loop kernel.
pub(crate) fn matmul(
    ctx: &Arc<Ctx>,
    f: &Fusion,
    ta: bool,
    tb: bool,
    inputs: &[&Tensor],
    shape: &Shape,
) -> Result<Tensor> {
    let name = f.name();
    let [a, b, rest @ ..] = inputs else {
        return Err(Error::invalid(name, "needs two matmul operands"));
    };
    let mm_op = PrimOp::MatMul { transpose_a: ta, transpose_b: tb };
    let mm_shape = crate::prim::infer::infer(&mm_op, &[a, b])?.0;
    if mm_shape != *shape {
        let mm = kernels::matmul(ctx, a, b, ta, tb, &mm_shape)?;
        let mut loads: Vec<&Tensor> = vec![&mm];
        loads.extend(rest.iter().copied());
        return kernels::run_ew(ctx, name, ew(f), &loads, shape);
    }
    let out = storage::alloc(ctx, name, f.dtype, shape.num_elements())?;
    if shape.num_elements() == 0 {
        return Ok(storage::tensor(out, shape.clone(), f.dtype));
    }
    let loads = Loads::new(name, rest, shape)?;
    let (mut params, grid) = kernels::matmul_params(a, b, ta, tb, shape);
    params.extend(&loads.strides);
    params.extend(&loads.words);
    let mut bufs = vec![buf(name, a)?, buf(name, b)?];
    bufs.extend(&loads.bufs);
    let kern = ctx.kernel(name, &matmul_source(f, &loads.kinds), bufs.len())?;
    ctx.dispatch_3d(name, &kern, &bufs, &out.buffer, &params, grid)?;
    Ok(storage::tensor(out, shape.clone(), f.dtype))
}
