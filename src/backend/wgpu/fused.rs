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
use super::kernels::{self, bcast_strides, buf, scalar_words};
use super::storage;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::prim::fusion::Fusion;
use crate::prim::{PrimOp, ReduceOp};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Threads per workgroup of the fused reduction (one workgroup per output, as
/// `kernels::reduce`).
const RWG: u32 = 64;

/// How the loads of a fused kernel read their inputs over an iteration shape.
struct Loads<'a> {
    kinds: Vec<(LoadKind, DType)>,
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
        let mut l = Loads { kinds: vec![], bufs: vec![], strides: vec![], words: vec![] };
        for t in inputs {
            if t.gpu_storage().is_none() {
                let w =
                    scalar_words(t).ok_or_else(|| Error::invalid(op, "internal: a host input that is not a scalar"))?;
                l.kinds.push((LoadKind::Param, t.dtype()));
                l.words.extend(w);
            } else if t.num_elements() == n {
                l.kinds.push((LoadKind::Contig, t.dtype()));
                l.bufs.push(buf(op, t)?);
            } else {
                l.kinds.push((LoadKind::Strided, t.dtype()));
                l.strides.extend(bcast_strides(t.shape().dims(), shape.dims()));
                l.bufs.push(buf(op, t)?);
            }
        }
        Ok(l)
    }

    fn n_strided(&self) -> usize {
        self.kinds.iter().filter(|(k, _)| *k == LoadKind::Strided).count()
    }

    /// `@binding` declarations of the buffer loads as `in{first}..`, then `out` (of `out`
    /// elements) and `p`.
    fn bindings(&self, s: &mut String, first: usize, out: DType) {
        let nb = first + self.bufs.len();
        let bufs = self.kinds.iter().filter(|(k, _)| *k != LoadKind::Param);
        for (b, (_, d)) in (first..nb).zip(bufs) {
            let _ = writeln!(s, "@group(0) @binding({b}) var<storage, read> in{b}: array<{}>;", elem(*d));
        }
        let _ = writeln!(s, "@group(0) @binding({nb}) var<storage, read_write> out: array<{}>;", elem(out));
        let _ = writeln!(s, "@group(0) @binding({}) var<storage, read> p: array<u32>;", nb + 1);
    }

    /// `let r{reg0 + k} = ...;` for each load: buffer `in{first + b}` at `contig` for
    /// contiguous loads, at `strided(j)` for strided load `j`; a scalar starting at word `k`
    /// of the scalar words at index `param(k)` of `p`.
    fn code(
        &self,
        first: usize,
        reg0: usize,
        contig: &str,
        strided: impl Fn(usize) -> String,
        param: impl Fn(usize) -> String,
    ) -> String {
        let mut s = String::new();
        let (mut b, mut j, mut k) = (first, 0, 0);
        for (r, (kind, d)) in self.kinds.iter().enumerate() {
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
                    param_load(*d, &param(k - param_words(*d)))
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
        ReduceOp::Mean => ("T(0)", "a + b", "acc / T(p[1])"),
        ReduceOp::Prod => ("T(1)", "a * b", "acc"),
        ReduceOp::Max => (kernels::extreme(t, true), "ff_max(a, b)", "acc"),
        ReduceOp::Min => (kernels::extreme(t, false), "ff_min(a, b)", "acc"),
    }
}

/// The WGSL of a fused reduce. Parameters: `n_out, row, rank, dims[rank]` (the iteration
/// shape), `rank` strides per strided load, the scalar loads' words.
fn reduce_source(f: &Fusion, op: ReduceOp, loads: &Loads) -> String {
    let (lines, result, helpers) = super::program(f);
    let (id, comb, finish) = reduce_parts(op, f.dtype);
    let mut s = codegen::prelude(f.dtype);
    s.push_str(&helpers);
    s.push_str(&super::math::helpers(f.dtype, &helpers));
    let _ = writeln!(s, "fn comb(a: T, b: T) -> T {{ return {comb}; }}");
    loads.bindings(&mut s, 0, f.dtype);
    let _ = writeln!(s, "var<workgroup> sh: array<T, {RWG}>;");
    // The program at element `i` of the iteration space (row-major).
    s.push_str("fn elem(i: u32) -> T {\n    let rank = p[2];\n");
    let ns = loads.n_strided();
    if ns > 0 {
        for j in 0..ns {
            let _ = writeln!(s, "    var o{j} = 0u;");
        }
        s.push_str("    var rem = i;\n    for (var d = i32(rank) - 1; d >= 0; d = d - 1) {\n        let dim = p[3u + u32(d)];\n        let c = rem % dim;\n        rem = rem / dim;\n");
        for j in 0..ns {
            let _ = writeln!(s, "        o{j} = o{j} + c * p[3u + rank * {}u + u32(d)];", j + 1);
        }
        s.push_str("    }\n");
    }
    s.push_str(&loads.code(0, 0, "i", |j| format!("o{j}"), |k| format!("3u + rank * {}u + {k}u", ns + 1)));
    for l in &lines {
        let _ = writeln!(s, "    {l}");
    }
    let _ = write!(
        s,
        r#"    return {result};
}}
@compute @workgroup_size({RWG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {{
    let o = wg.x + wg.y * nwg.x;
    if (o >= p[0]) {{ return; }}
    let r = p[1];
    var acc: T = {id};
    for (var j = li; j < r; j = j + {RWG}u) {{
        acc = comb(acc, elem(o * r + j));
    }}
"#,
    );
    s.push_str(&kernels::reduce_tree_tail(&store(f.dtype, finish)));
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
    let row: usize = axes.iter().map(|&a| it[a]).product();
    let n_out = shape.num_elements();
    let loads = Loads::new(name, inputs, &it)?;
    let mut params = vec![n_out as u32, row as u32, rank as u32];
    params.extend(it.dims().iter().map(|d| *d as u32));
    params.extend(&loads.strides);
    params.extend(&loads.words);
    let out = storage::alloc(ctx, name, f.dtype, n_out)?;
    let k = ctx.kernel(name, &reduce_source(f, op, &loads), loads.bufs.len())?;
    ctx.dispatch(name, &k, &loads.bufs, &out.buffer, &params, n_out as u32)?;
    Ok(storage::tensor(out, shape.clone(), f.dtype))
}

/// The WGSL of a fused matmul: `kernels::matmul`'s tiling with epilogue loads bound after
/// the operands. Parameters: as `kernels::matmul` (`m, n, k`, operand strides, `nbd`, the
/// batch dims and both operands' batch strides), then `nbd + 2` output strides per strided
/// epilogue load, then the scalar loads' words.
fn matmul_source(f: &Fusion, loads: &Loads) -> String {
    let (lines, result, helpers) = super::program(f);
    let t = f.dtype;
    let ns = loads.n_strided();
    let mut s = codegen::prelude(t);
    s.push_str(&helpers);
    s.push_str(&super::math::helpers(t, &helpers));
    let el = elem(t);
    let _ = writeln!(
        s,
        "@group(0) @binding(0) var<storage, read> in0: array<{el}>;\n@group(0) @binding(1) var<storage, read> in1: array<{el}>;"
    );
    loads.bindings(&mut s, 2, t);
    // Epilogue parameters start at `e = 8 + 3 * nbd`; strided load `j` has its batch offset
    // `eb{j}` (from wg.z) and its row and column strides.
    let mut batch = String::new();
    let mut decl = String::new();
    for j in 0..ns {
        let _ = write!(decl, " var eb{j} = 0u;");
        let _ = write!(batch, " eb{j} = eb{j} + c * p[e + {j}u * (nbd + 2u) + u32(d)];");
    }
    let epi_loads = loads.code(
        2,
        1,
        "oo + r * n + c",
        |j| format!("eb{j} + r * p[e + {j}u * (nbd + 2u) + nbd] + c * p[e + {j}u * (nbd + 2u) + nbd + 1u]"),
        |k| format!("e + {ns}u * (nbd + 2u) + {k}u"),
    );
    let mut epi = String::new();
    for l in epi_loads.lines().map(str::trim).chain(lines.iter().map(String::as_str)) {
        let _ = write!(epi, "\n                {l}");
    }
    let decl = format!(" let e = 8u + 3u * nbd;{decl}");
    let tail = format!("let r0 = acc[q][w];{epi}\n                out[oo + r * n + c] = {};", store(t, &result));
    s.push_str(&kernels::tiled_matmul_main(
        &load(t, "in0[ao + gr * a_rs + gc * a_cs]"),
        &load(t, "in1[bo + hr * b_rs + hc * b_cs]"),
        kernels::tile_pad(t),
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
    let kern = ctx.kernel(name, &matmul_source(f, &loads), bufs.len())?;
    ctx.dispatch_3d(name, &kern, &bufs, &out.buffer, &params, grid)?;
    Ok(storage::tensor(out, shape.clone(), f.dtype))
}
