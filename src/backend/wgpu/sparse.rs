//! WGSL kernels of the sparse (COO) primitives: `SparseOp::{Validate, ToDense,
//! MatMul, Reorder, Unique, SegmentSum, NonZero}`. Same
//! results, shapes, dtypes and errors as the CPU kernels (`crate::backend::cpu::sparse`).
//!
//! Building blocks, all deterministic (no float atomics, no atomics at all):
//! - i64 indices are read as (low, high) u32 word pairs, compared as signed 64-bit numbers
//!   and checked against 64-bit dims, so no kernel here needs `SHADER_INT64` for its indices.
//! - A bitonic sort of entry numbers (padded to a power of two), lexicographic over the
//!   first `kc` index columns with the entry number as tie-break: the unique stable order.
//!   All its passes record into one encoder (`context::unflushed`).
//! - A block scan (256 per workgroup, block sums scanned one level up, then added back),
//!   in place in one scratch buffer, for compaction.
//! - Sums over repeated indices walk each run of equal indices in sorted (= entry) order,
//!   one thread per run, as the CPU adds them: bit-equal results.
//!
//! Sync points: a data-dependent output shape (`SparseUnique`, `SparseSegmentSum`,
//! `NonZero`) needs its count on the host to allocate, and an index check needs its verdict
//! before the op can return `Ok`. Each reads back one 4-byte word (a counted device-to-host
//! transfer, which submits the queued work and waits for it); nothing else leaves the GPU.
//! `SparseReorder` has no sync. On an error, a second small read-back fetches the bad
//! entry's index (and the one before it) for the message.

use std::sync::Arc;

use super::codegen::{Ew, WG, elem, enables, load, prelude, store};
use super::context::{Ctx, unflushed};
use super::kernels::{self, buf, groups};
use super::storage::{self, GpuStorage};
use super::template::{params, render};
use crate::dtype::DType;
use crate::error::{Error, Result, SparseIndexProblem};
use crate::prim::{ReduceOp, SparseOp};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Status word of an entry with no problem (`i32::MAX`: the identity of the min reduction).
const OK: u32 = 0x7fff_ffff;
/// Status word of `SparseMatMul` entries that are in bounds but not sorted by row.
const UNSORTED: u32 = 0x7fff_fffe;
/// The most entries a kernel here takes (entry numbers times 4 plus a problem must fit an
/// i32 status word; the sort pads to a power of two).
const MAX_NNZ: usize = 1 << 28;

/// Whether the sparse primitive `op` has a kernel on `ctx`'s device for these inputs.
/// Indices need no 64-bit feature (they are read as word pairs); values need their dtype
/// to compute there, and `NonZero` only reads the bits of its input.
pub(crate) fn check(ctx: &Ctx, op: &SparseOp, inputs: &[&Tensor]) -> Result<()> {
    let name = op.name();
    let dtype_of = |k: usize| {
        inputs
            .get(k)
            .map(|t| t.dtype())
            .ok_or_else(|| super::unsupported(name, "no GPU kernel for these inputs".into()))
    };
    let need = |ok: bool, d: DType| if ok { Ok(()) } else { Err(storage::dtype_unsupported(name, d)) };
    match op {
        SparseOp::Validate(_) | SparseOp::Reorder | SparseOp::Unique => dtype_of(0).map(|_| ()),
        SparseOp::ToDense(_) | SparseOp::SegmentSum => dtype_of(1).and_then(|v| need(ctx.computes(v), v)),
        SparseOp::MatMul(_) => dtype_of(1).and_then(|v| need(v != DType::Bool && ctx.computes(v), v)),
        SparseOp::NonZero => dtype_of(0).and_then(|x| need(ctx.stores(x), x)),
    }
}

/// Runs a sparse primitive on inputs that live on `ctx`'s device (a host rank-0 default of
/// `SparseToDense` is a kernel parameter).
pub(crate) fn execute(ctx: &Arc<Ctx>, op: &SparseOp, inputs: &[&Tensor], shape: &Shape) -> Result<Tensor> {
    let arg = |k: usize| {
        inputs.get(k).copied().ok_or_else(|| Error::invalid(op.name(), "internal: missing input of a GPU kernel"))
    };
    match op {
        SparseOp::Validate(dense) => validate(ctx, arg(0)?, dense),
        SparseOp::ToDense(_) => to_dense(ctx, arg(0)?, arg(1)?, arg(2)?, shape),
        SparseOp::MatMul(dense) => matmul(ctx, arg(0)?, arg(1)?, arg(2)?, dense, shape),
        SparseOp::Reorder => reorder(ctx, arg(0)?),
        SparseOp::Unique => unique(ctx, arg(0)?),
        SparseOp::SegmentSum => segment_sum(ctx, arg(0)?, arg(1)?),
        SparseOp::NonZero => nonzero(ctx, arg(0)?),
    }
}

// ---- shared WGSL --------------------------------------------------------------------------

const ROWS: &str = include_str!("wgsl/sparse_rows.wgsl");
const BOUNDS: &str = include_str!("wgsl/sparse_bounds.wgsl");
const SUM: &str = include_str!("wgsl/sparse_sum.wgsl");
const ROUND_F16: &str = include_str!("wgsl/sparse_round_f16.wgsl");
const STATUS: &str = include_str!("wgsl/sparse_status.wgsl");
const SORT_INIT: &str = include_str!("wgsl/sparse_sort_init.wgsl");
const SORT_PASS: &str = include_str!("wgsl/sparse_sort_pass.wgsl");
const SCAN_BLOCK: &str = include_str!("wgsl/sparse_scan_block.wgsl");
const SCAN_ADD: &str = include_str!("wgsl/sparse_scan_add.wgsl");
const TO_DENSE: &str = include_str!("wgsl/sparse_to_dense.wgsl");
const ROW_PTR: &str = include_str!("wgsl/sparse_row_ptr.wgsl");
const MATMUL: &str = include_str!("wgsl/sparse_matmul.wgsl");
const WIDEN: &str = include_str!("wgsl/sparse_widen.wgsl");
const STARTS: &str = include_str!("wgsl/sparse_starts.wgsl");
const UNIQUE: &str = include_str!("wgsl/sparse_unique.wgsl");
const SEGMENT_SUM: &str = include_str!("wgsl/sparse_segment_sum.wgsl");
const NONZERO_FLAGS: &str = include_str!("wgsl/sparse_nonzero_flags.wgsl");
const NONZERO_COORDS: &str = include_str!("wgsl/sparse_nonzero_coords.wgsl");

/// The fixed parameters of `wgsl/sparse_status.wgsl` (then `shape`: the dims as (low,
/// high) word pairs).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct StatusParams {
    nnz: u32,
    cols: u32,
    checks: u32,
}

/// The parameters of `wgsl/sparse_sort_init.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SortInitParams {
    padded: u32,
    nnz: u32,
}

/// The parameters of `wgsl/sparse_sort_pass.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SortPassParams {
    pairs: u32,
    j: u32,
    k: u32,
    kc: u32,
    cols: u32,
}

/// The parameters of `wgsl/sparse_scan_block.wgsl` and `wgsl/sparse_scan_add.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScanParams {
    n: u32,
    off: u32,
    up: u32,
}

/// The fixed parameters of `wgsl/sparse_to_dense.wgsl` (then `shape`: the dims as (low,
/// high) word pairs, then the dense strides).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ToDenseParams {
    nnz: u32,
    cols: u32,
}

/// The parameters of `wgsl/sparse_row_ptr.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RowPtrParams {
    rows: u32,
    nnz: u32,
}

/// The parameters of `wgsl/sparse_matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatMulParams {
    n_out: u32,
    n: u32,
}

/// The parameters of `wgsl/sparse_widen.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct WidenParams {
    n: u32,
}

/// The parameters of `wgsl/sparse_starts.wgsl` and `wgsl/sparse_unique.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GroupParams {
    nnz: u32,
    cols: u32,
}

/// The parameters of `wgsl/sparse_segment_sum.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SegmentSumParams {
    nnz: u32,
}

/// The parameters of `wgsl/sparse_nonzero_flags.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FlagsParams {
    n: u32,
}

/// The fixed parameters of `wgsl/sparse_nonzero_coords.wgsl` (then `dims`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CoordsParams {
    n: u32,
    rank: u32,
}

/// Compiles (or finds) `src` and records one dispatch over `threads` threads.
fn run(
    ctx: &Arc<Ctx>,
    op: &'static str,
    src: &str,
    inputs: &[&wgpu::Buffer],
    out: &wgpu::Buffer,
    params: &[u32],
    threads: usize,
) -> Result<()> {
    if threads == 0 {
        return Ok(());
    }
    let k = ctx.kernel(op, src, inputs.len())?;
    ctx.dispatch(op, &k, inputs, out, params, groups(threads, WG))
}

/// A scratch buffer of `n` u32 words.
fn scratch(ctx: &Arc<Ctx>, op: &'static str, n: usize) -> Result<GpuStorage> {
    storage::alloc(ctx, op, DType::I32, n)
}

/// Dims as (low, high) word pairs.
fn dim_words(dims: &[usize]) -> Vec<u32> {
    dims.iter().flat_map(|&d| [d as u32, ((d as u64) >> 32) as u32]).collect()
}

/// The value dtype's sum of two registers `a` and `b` (`wgsl/sparse_sum.wgsl`), as the
/// CPU's `SumK`: integers wrap, bool is or, f16 rounds (to nearest even, on the bits) after
/// every add.
fn sum_fn(t: DType) -> String {
    let e = match t {
        DType::F16 => return format!("{ROUND_F16}{}", render(SUM, &[("SUM", "ff_round_f16(a + b)")])),
        DType::U8 => "(a + b) & 255u",
        DType::Bool => "a || b",
        _ => "a + b",
    };
    render(SUM, &[("SUM", e)])
}

/// `(nnz, cols)` of COO indices, with `cols` checked against the dense rank when given.
fn coo(op: &'static str, indices: &Tensor, rank: Option<usize>) -> Result<(usize, usize)> {
    let (nnz, cols) = match indices.shape().dims() {
        &[nnz, cols] if rank.is_none_or(|r| r == cols) => (nnz, cols),
        _ => return Err(Error::shape(op, "indices of shape [nnz, rank]", format!("shape {}", indices.shape()))),
    };
    if nnz > MAX_NNZ {
        return Err(super::unsupported(
            op,
            format!("{nnz} entries are more than the GPU sparse kernels take ({MAX_NNZ}): run this op on the CPU"),
        ));
    }
    Ok((nnz, cols))
}

// ---- status: index checks -----------------------------------------------------------------

/// What the status kernel checks per entry.
#[derive(Clone, Copy)]
enum Checks {
    /// Bounds only (`SparseToDense`).
    Bounds = 0,
    /// Bounds, then order against the entry before (`SparseValidate`).
    Canonical = 1,
    /// Bounds, and whether rows are sorted (`SparseMatMul`: `UNSORTED` when not).
    Rows = 2,
}

/// Records the index check: one status word per entry (`entry * 4 + problem`, `UNSORTED`
/// or `OK`; problems 0 out of bounds, 1 repeated, 2 out of order), reduced to their
/// minimum, i.e. the first bad entry. Returns the one-element status tensor (read it with
/// `read_status` after recording the rest of the op).
fn status(
    ctx: &Arc<Ctx>,
    op: &'static str,
    indices: &Tensor,
    (nnz, cols): (usize, usize),
    dims: &[usize],
    checks: Checks,
) -> Result<Tensor> {
    let src = status_source();
    let codes = scratch(ctx, op, nnz)?;
    let head = StatusParams { nnz: nnz as u32, cols: cols as u32, checks: checks as u32 };
    let p = params(&head, &dim_words(dims));
    run(ctx, op, &src, &[buf(op, indices)?], &codes.buffer, &p, nnz)?;
    let codes = storage::tensor(codes, Shape::new(&[nnz]), DType::I32);
    kernels::reduce(ctx, &codes, ReduceOp::Min, &[0], &Shape::scalar())
}

/// The status word (one counted 4-byte read-back: the sync point).
fn read_status(ctx: &Arc<Ctx>, op: &'static str, status: &Tensor) -> Result<u32> {
    read_word(ctx, op, buf(op, status)?, 0)
}

/// Word `at` of `buffer` on the host (one counted 4-byte transfer).
fn read_word(ctx: &Arc<Ctx>, op: &'static str, buffer: &wgpu::Buffer, at: usize) -> Result<u32> {
    let w = storage::read_words(ctx, op, buffer, at as u64 * 4, 4)?;
    w.first().copied().ok_or_else(|| Error::invalid(op, "internal: an empty read-back"))
}

/// The `InvalidSparseIndices` error of status `code`, as the CPU words it: the entry's
/// index and, for an order problem, the index before it, read back (one small transfer).
fn status_error(ctx: &Arc<Ctx>, op: &'static str, indices: &Tensor, cols: usize, code: u32, dense: &Shape) -> Error {
    let e = (code / 4) as usize;
    let problem = match code % 4 {
        0 => SparseIndexProblem::OutOfBounds,
        1 => SparseIndexProblem::Repeated,
        _ => SparseIndexProblem::OutOfOrder,
    };
    let first = if problem == SparseIndexProblem::OutOfBounds { e } else { e.saturating_sub(1) };
    let rows = match buf(op, indices)
        .and_then(|b| storage::read_words(ctx, op, b, (first * cols * 8) as u64, ((e + 1 - first) * cols * 8) as u64))
    {
        Ok(w) => w.chunks_exact(2).map(|p| (p[0] as u64 | (p[1] as u64) << 32) as i64).collect::<Vec<i64>>(),
        Err(err) => return err,
    };
    let (prev, row) = rows.split_at(((e - first) * cols).min(rows.len()));
    let bound = match problem {
        SparseIndexProblem::OutOfBounds => dense.to_string(),
        _ => crate::backend::cpu::sparse::index_text(prev),
    };
    crate::backend::cpu::sparse::bad(op, problem, e, row, bound)
}

// ---- sort ---------------------------------------------------------------------------------

/// The entry numbers in the stable order of their indices' first `kc` columns: a bitonic
/// sort over the next power of two (padded with a sentinel that sorts last), all passes in
/// one encoder. The first `nnz` words of the result are the permutation.
fn sort(
    ctx: &Arc<Ctx>,
    op: &'static str,
    indices: &Tensor,
    (nnz, cols): (usize, usize),
    kc: usize,
) -> Result<GpuStorage> {
    let padded = nnz.next_power_of_two();
    let perm = scratch(ctx, op, padded)?;
    let init = sort_init_source();
    let p = params(&SortInitParams { padded: padded as u32, nnz: nnz as u32 }, &[]);
    run(ctx, op, &init, &[], &perm.buffer, &p, padded)?;
    let pass = sort_pass_source();
    let ix = buf(op, indices)?;
    unflushed(|| {
        let mut k = 2;
        while k <= padded {
            let mut j = k / 2;
            while j > 0 {
                let head = SortPassParams {
                    pairs: (padded / 2) as u32,
                    j: j as u32,
                    k: k as u32,
                    kc: kc as u32,
                    cols: cols as u32,
                };
                run(ctx, op, &pass, &[ix], &perm.buffer, &params(&head, &[]), padded / 2)?;
                j /= 2;
            }
            k *= 2;
        }
        Ok(perm)
    })
}

// ---- scan ---------------------------------------------------------------------------------

/// The regions of a scan over `n` words: (offset, length) of the values, then of each
/// level of block sums up to a single block.
fn scan_levels(n: usize) -> Vec<(usize, usize)> {
    let mut levels = vec![(0, n)];
    while let Some(&(o, s)) = levels.last().filter(|l| l.1 > 1) {
        levels.push((o + s, s.div_ceil(WG as usize)));
    }
    levels
}

/// A scratch buffer for a scan over `n` words (the values first).
fn scan_scratch(ctx: &Arc<Ctx>, op: &'static str, n: usize) -> Result<GpuStorage> {
    let total = scan_levels(n).last().map_or(n, |&(o, s)| o + s);
    scratch(ctx, op, total)
}

/// The inclusive prefix sum of the first `n` words of `work` (made by `scan_scratch`), in
/// place: each block of 256 scanned in workgroup memory, its total stored one level up;
/// the levels scanned the same way; then each block adds the total of the blocks before it.
fn scan(ctx: &Arc<Ctx>, op: &'static str, work: &GpuStorage, n: usize) -> Result<()> {
    let block = scan_block_source();
    let add = scan_add_source();
    let levels = scan_levels(n);
    for w in levels.windows(2) {
        let ((o, s), (up, _)) = (w[0], w[1]);
        let p = params(&ScanParams { n: s as u32, off: o as u32, up: up as u32 }, &[]);
        run(ctx, op, &block, &[], &work.buffer, &p, s)?;
    }
    for w in levels.windows(2).rev() {
        let ((o, s), (up, _)) = (w[0], w[1]);
        if s > WG as usize {
            let p = params(&ScanParams { n: s as u32, off: o as u32, up: up as u32 }, &[]);
            run(ctx, op, &add, &[], &work.buffer, &p, s)?;
        }
    }
    Ok(())
}

// ---- kernel sources -----------------------------------------------------------------------

/// The WGSL of the index check (`status`).
fn status_source() -> String {
    format!("{STATUS}{ROWS}{BOUNDS}")
}

/// The WGSL of the sort's first pass: entry numbers, padded with the sentinel.
fn sort_init_source() -> String {
    SORT_INIT.to_string()
}

/// The WGSL of one bitonic pass of the sort.
fn sort_pass_source() -> String {
    format!("{SORT_PASS}{ROWS}")
}

/// The WGSL of the scan of each block of 256 words (its total stored one level up).
fn scan_block_source() -> String {
    SCAN_BLOCK.to_string()
}

/// The WGSL that adds the blocks' totals back.
fn scan_add_source() -> String {
    SCAN_ADD.to_string()
}

/// The WGSL of `to_dense`'s sums for values of dtype `t`.
fn to_dense_source(t: DType) -> String {
    let zero = if t == DType::Bool { "false" } else { "T(0)" };
    let body = render(
        TO_DENSE,
        &[("ELEM", elem(t)), ("ZERO", zero), ("LOAD", &load(t, "vals[f]")), ("STORE", &store(t, "acc"))],
    );
    format!("{}{}{}{body}{ROWS}{BOUNDS}", enables(&[t]), prelude(t), sum_fn(t))
}

/// The placeholders of the kernels that read entries in row order, directly (`sorted`) or
/// through a permutation bound after the `inputs` others: `PERM`, `OUT`, `P`, `AT`.
fn row_order(sorted: bool, inputs: usize) -> [(&'static str, String); 4] {
    let (perm, at, n) = if sorted {
        (String::new(), "q", inputs)
    } else {
        (format!("@group(0) @binding({inputs}) var<storage, read> perm: array<u32>;"), "perm[q]", inputs + 1)
    };
    [("PERM", perm), ("OUT", n.to_string()), ("P", (n + 1).to_string()), ("AT", at.to_string())]
}

/// The WGSL of `SparseMatMul`'s row pointers, over indices `sorted` by row or read
/// through a permutation.
fn row_ptr_source(sorted: bool) -> String {
    let vars = row_order(sorted, 1);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    render(ROW_PTR, &vars)
}

/// The WGSL of `SparseMatMul`'s products for values of dtype `t`, over indices `sorted` by
/// row or read through a permutation.
fn matmul_source(t: DType, sorted: bool) -> String {
    let fin = if t == DType::U8 { "acc & 255u" } else { "acc" };
    let (a, b, st) = (load(t, "vals[e]"), load(t, "bm[ix[4u * e + 2u] * n + c]"), store(t, fin));
    let order = row_order(sorted, 4);
    let mut vars: Vec<(&str, &str)> = order.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([("ELEM", elem(t)), ("LOAD_A", a.as_str()), ("LOAD_B", b.as_str()), ("STORE", st.as_str())]);
    format!("{}{}{}", enables(&[t]), prelude(t), render(MATMUL, &vars))
}

/// The WGSL of `reorder`'s permutation widened to i64.
fn widen_source() -> String {
    WIDEN.to_string()
}

/// The WGSL of the group starts (1 where a sorted entry's index differs from the previous).
fn starts_source() -> String {
    format!("{STARTS}{ROWS}")
}

/// The WGSL of `unique`'s compaction (the first index of each group).
fn unique_source() -> String {
    UNIQUE.to_string()
}

/// The WGSL of `segment_sum`'s sums for values of dtype `t`.
fn segment_sum_source(t: DType) -> String {
    let body = render(
        SEGMENT_SUM,
        &[
            ("ELEM", elem(t)),
            ("LOAD_FIRST", &load(t, "vals[perm[i]]")),
            ("LOAD_NEXT", &load(t, "vals[perm[j]]")),
            ("STORE", &store(t, "acc")),
        ],
    );
    format!("{}{}{}{body}", enables(&[t]), prelude(t), sum_fn(t))
}

/// The WGSL of `nonzero`'s flags (from the bits) for `t`; `None` for bf16.
fn flags_source(t: DType) -> Option<String> {
    let nz = match t {
        DType::F32 => "(x[i] & 0x7fffffffu) != 0u",
        DType::I32 | DType::U8 | DType::Bool => "x[i] != 0u",
        DType::F16 => "((x[i / 2u] >> ((i % 2u) * 16u)) & 0x7fffu) != 0u",
        DType::F64 => "((x[2u * i + 1u] & 0x7fffffffu) | x[2u * i]) != 0u",
        DType::I64 => "(x[2u * i + 1u] | x[2u * i]) != 0u",
        DType::BF16 => return None,
    };
    Some(render(NONZERO_FLAGS, &[("NONZERO", nz)]))
}

/// The WGSL of `nonzero`'s coordinates of each flagged element.
fn coords_source() -> String {
    NONZERO_COORDS.to_string()
}

/// Every kernel text of the sparse primitives for values of dtype `v` (for the naga test):
/// the index kernels, then those of `v` where it has them.
#[cfg(test)]
pub(crate) fn sources(v: DType) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("sparse status", status_source()),
        ("sparse sort init", sort_init_source()),
        ("sparse sort pass", sort_pass_source()),
        ("sparse scan block", scan_block_source()),
        ("sparse scan add", scan_add_source()),
        ("sparse row_ptr sorted", row_ptr_source(true)),
        ("sparse row_ptr unsorted", row_ptr_source(false)),
        ("sparse widen", widen_source()),
        ("sparse starts", starts_source()),
        ("sparse unique", unique_source()),
        ("sparse nonzero coords", coords_source()),
    ];
    out.extend(flags_source(v).map(|s| ("sparse nonzero flags", s)));
    if v != DType::BF16 {
        out.push(("sparse to_dense", to_dense_source(v)));
        out.push(("sparse segment_sum", segment_sum_source(v)));
        if v != DType::Bool {
            out.push(("sparse matmul sorted", matmul_source(v, true)));
            out.push(("sparse matmul unsorted", matmul_source(v, false)));
        }
    }
    out
}

// ---- the ops ------------------------------------------------------------------------------

/// `SparseValidate`: the first entry out of bounds, repeated or out of order is the error
/// (as on the CPU); otherwise the same indices.
fn validate(ctx: &Arc<Ctx>, indices: &Tensor, dense: &Shape) -> Result<Tensor> {
    const OP: &str = "SparseTensor::new";
    let (nnz, cols) = coo(OP, indices, Some(dense.rank()))?;
    if nnz > 0 {
        let s = status(ctx, OP, indices, (nnz, cols), dense.dims(), Checks::Canonical)?;
        let code = read_status(ctx, OP, &s)?;
        if code != OK {
            return Err(status_error(ctx, OP, indices, cols, code, dense));
        }
    }
    Ok(indices.clone())
}

/// `SparseToDense`: the default everywhere (a parameter or a GPU scalar), then per run of
/// equal indices in sorted order one thread adds the run's values from zero in entry order
/// and stores the sum at its offset.
fn to_dense(ctx: &Arc<Ctx>, indices: &Tensor, values: &Tensor, default: &Tensor, shape: &Shape) -> Result<Tensor> {
    const OP: &str = "sparse::to_dense";
    let (nnz, cols) = coo(OP, indices, Some(shape.rank()))?;
    let t = values.dtype();
    let fill = Ew { t, loads: vec![], lines: vec![], result: "r0".into(), out: t, helpers: String::new() };
    let out = kernels::run_ew(ctx, OP, fill, &[default], shape)?;
    if nnz == 0 {
        return Ok(out);
    }
    let src = to_dense_source(t);
    let mut tail = dim_words(shape.dims());
    tail.extend(shape.strides().iter().map(|&s| s as u32));
    let p = params(&ToDenseParams { nnz: nnz as u32, cols: cols as u32 }, &tail);
    let target = out.gpu_storage().map(|g| &g.buffer).ok_or_else(|| Error::invalid(OP, "internal: no GPU output"))?;
    unflushed(|| {
        let s = status(ctx, OP, indices, (nnz, cols), shape.dims(), Checks::Bounds)?;
        let perm = sort(ctx, OP, indices, (nnz, cols), cols)?;
        let ins = [buf(OP, indices)?, buf(OP, values)?, &perm.buffer];
        run(ctx, OP, &src, &ins, target, &p, nnz)?;
        let code = read_status(ctx, OP, &s)?;
        if code != OK {
            return Err(status_error(ctx, OP, indices, cols, code, shape));
        }
        Ok(out.clone())
    })
}

/// `SparseMatMul`: one thread per output element walks its row's entries (found by a binary
/// search per row) and adds `value * b[col, c]` in entry order. Rows that are not sorted
/// (the status says so) are sorted first, stably by row.
fn matmul(
    ctx: &Arc<Ctx>,
    indices: &Tensor,
    values: &Tensor,
    b: &Tensor,
    dense: &Shape,
    shape: &Shape,
) -> Result<Tensor> {
    const OP: &str = "sparse::matmul";
    let (nnz, cols) = coo(OP, indices, Some(2))?;
    let (m, n) = match shape.dims() {
        &[m, n] if dense.rank() == 2 && b.rank() == 2 => (m, n),
        _ => return Err(Error::shape(OP, "a [m, k] sparse and a [k, n] dense operand", format!("{}", b.shape()))),
    };
    let t = values.dtype();
    let out = storage::alloc(ctx, OP, t, m * n)?;
    let mut sorted = true;
    if nnz > 0 {
        let s = status(ctx, OP, indices, (nnz, cols), dense.dims(), Checks::Rows)?;
        match read_status(ctx, OP, &s)? {
            OK => {}
            UNSORTED => sorted = false,
            code => return Err(status_error(ctx, OP, indices, cols, code, dense)),
        }
    }
    if m * n > 0 {
        // The sorted view: entry `at(q)` is the q-th in row order.
        let (row_ptr, mm) = (row_ptr_source(sorted), matmul_source(t, sorted));
        unflushed(|| {
            let perm = if sorted { None } else { Some(sort(ctx, OP, indices, (nnz, cols), 1)?) };
            let rp = scratch(ctx, OP, m + 1)?;
            let ix = buf(OP, indices)?;
            let mut a: Vec<&wgpu::Buffer> = vec![ix];
            a.extend(perm.as_ref().map(|p| &p.buffer));
            let p = params(&RowPtrParams { rows: (m + 1) as u32, nnz: nnz as u32 }, &[]);
            run(ctx, OP, &row_ptr, &a, &rp.buffer, &p, m + 1)?;
            let mut a: Vec<&wgpu::Buffer> = vec![ix, buf(OP, values)?, buf(OP, b)?, &rp.buffer];
            a.extend(perm.as_ref().map(|p| &p.buffer));
            let p = params(&MatMulParams { n_out: (m * n) as u32, n: n as u32 }, &[]);
            run(ctx, OP, &mm, &a, &out.buffer, &p, m * n)
        })?;
    }
    Ok(storage::tensor(out, shape.clone(), t))
}

/// `SparseReorder`: the sorting permutation as i64 (no sync: nothing to read back).
fn reorder(ctx: &Arc<Ctx>, indices: &Tensor) -> Result<Tensor> {
    const OP: &str = "sparse::reorder";
    let (nnz, cols) = coo(OP, indices, None)?;
    let out = storage::alloc(ctx, OP, DType::I64, nnz)?;
    if nnz > 0 {
        let widen = widen_source();
        unflushed(|| {
            let perm = sort(ctx, OP, indices, (nnz, cols), cols)?;
            let p = params(&WidenParams { n: nnz as u32 }, &[]);
            run(ctx, OP, &widen, &[&perm.buffer], &out.buffer, &p, nnz)
        })?;
    }
    Ok(storage::tensor(out, Shape::new(&[nnz]), DType::I64))
}

/// The entries sorted and numbered by group, for `unique` and `segment_sum` (which must
/// agree on the groups): `(perm, work, groups)`, where `work[q]` is the 1-based group of
/// sorted position `q` (the scan of the group starts) and `groups` was read back.
fn grouped(
    ctx: &Arc<Ctx>,
    op: &'static str,
    indices: &Tensor,
    (nnz, cols): (usize, usize),
) -> Result<(GpuStorage, GpuStorage, usize)> {
    let starts = starts_source();
    unflushed(|| {
        let perm = sort(ctx, op, indices, (nnz, cols), cols)?;
        let work = scan_scratch(ctx, op, nnz)?;
        let p = params(&GroupParams { nnz: nnz as u32, cols: cols as u32 }, &[]);
        run(ctx, op, &starts, &[buf(op, indices)?, &perm.buffer], &work.buffer, &p, nnz)?;
        scan(ctx, op, &work, nnz)?;
        let count = read_word(ctx, op, &work.buffer, nnz - 1)? as usize;
        Ok((perm, work, count))
    })
}

/// `SparseUnique`: the first index of each group, in sorted order, i64 `[groups, rank]`.
fn unique(ctx: &Arc<Ctx>, indices: &Tensor) -> Result<Tensor> {
    const OP: &str = "sparse::unique";
    let (nnz, cols) = coo(OP, indices, None)?;
    if nnz == 0 {
        return Ok(storage::tensor(storage::alloc(ctx, OP, DType::I64, 0)?, Shape::new(&[0, cols]), DType::I64));
    }
    let (perm, work, count) = grouped(ctx, OP, indices, (nnz, cols))?;
    let out = storage::alloc(ctx, OP, DType::I64, count * cols)?;
    let src = unique_source();
    if cols > 0 {
        let ins = [buf(OP, indices)?, &perm.buffer, &work.buffer];
        let p = params(&GroupParams { nnz: nnz as u32, cols: cols as u32 }, &[]);
        run(ctx, OP, &src, &ins, &out.buffer, &p, nnz)?;
    }
    Ok(storage::tensor(out, Shape::new(&[count, cols]), DType::I64))
}

/// `SparseSegmentSum`: per group (in `unique`'s order) one thread adds its values in entry
/// order, starting from the first, as the CPU does.
fn segment_sum(ctx: &Arc<Ctx>, indices: &Tensor, values: &Tensor) -> Result<Tensor> {
    const OP: &str = "sparse::segment_sum";
    let (nnz, cols) = coo(OP, indices, None)?;
    let t = values.dtype();
    if nnz == 0 {
        return Ok(storage::tensor(storage::alloc(ctx, OP, t, 0)?, Shape::new(&[0]), t));
    }
    let (perm, work, count) = grouped(ctx, OP, indices, (nnz, cols))?;
    let out = storage::alloc(ctx, OP, t, count)?;
    let src = segment_sum_source(t);
    let p = params(&SegmentSumParams { nnz: nnz as u32 }, &[]);
    run(ctx, OP, &src, &[buf(OP, values)?, &perm.buffer, &work.buffer], &out.buffer, &p, nnz)?;
    Ok(storage::tensor(out, Shape::new(&[count]), t))
}

/// `NonZero`: a flag per element (from its bits: NaN counts, -0.0 does not), their scan,
/// the count read back, then each flagged element writes its coordinates at its rank.
fn nonzero(ctx: &Arc<Ctx>, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "sparse::nonzero";
    let (n, rank, t) = (x.num_elements(), x.rank(), x.dtype());
    if n == 0 {
        return Ok(storage::tensor(storage::alloc(ctx, OP, DType::I64, 0)?, Shape::new(&[0, rank]), DType::I64));
    }
    let flags = flags_source(t).ok_or_else(|| storage::dtype_unsupported(OP, t))?;
    let work = scan_scratch(ctx, OP, n)?;
    let count = unflushed(|| {
        let p = params(&FlagsParams { n: n as u32 }, &[]);
        run(ctx, OP, &flags, &[buf(OP, x)?], &work.buffer, &p, n)?;
        scan(ctx, OP, &work, n)?;
        read_word(ctx, OP, &work.buffer, n - 1)
    })? as usize;
    let out = storage::alloc(ctx, OP, DType::I64, count * rank)?;
    if count * rank > 0 {
        let src = coords_source();
        let dims: Vec<u32> = x.shape().iter().map(|&d| d as u32).collect();
        let p = params(&CoordsParams { n: n as u32, rank: rank as u32 }, &dims);
        run(ctx, OP, &src, &[&work.buffer], &out.buffer, &p, n)?;
    }
    Ok(storage::tensor(out, Shape::new(&[count, rank]), DType::I64))
}
