//! Fused kernels (see `prim::fusion`): the elementwise program runs over the output in
//! chunks of `CHUNK` elements, one instruction at a time over the whole chunk, so each
//! instruction is a tight monomorphized loop the compiler vectorizes, while the chunk's
//! registers stay in L1. Each input is read once and the output written once, whatever the
//! program's length (XLA's loop fusion, executed like numexpr's vector machine). Chunks
//! are spread across rayon.
//!
//! Fusion groups are f32 or f64: the dtypes where chains are long and memory-bound.

use rayon::prelude::*;
use smallvec::SmallVec;

use super::num::{FloatK, NumK};
use super::par::{PAR_MIN, chunk_len};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::prim::elementwise::{binary_table, unary_table};
use crate::prim::fusion::{Fusion, FusionKind, Instr};
use crate::prim::{BinaryOp, ReduceOp, UnaryOp};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::{Buffer, alloc};

/// Elements per chunk: 4 KiB of f32 per register.
const CHUNK: usize = 1024;

/// How one load reads its input for a flat range of the iteration space.
enum Load<'a, T> {
    /// Same element count as the iteration space: a plain slice.
    Full(&'a [T]),
    /// One element, repeated.
    Scalar(T),
    /// The input's dims are the trailing dims of the iteration space (a bias row): element
    /// `i` is `data[i % len]`.
    Cyclic(&'a [T]),
    /// Any other broadcast: per-dim strides (0 where broadcast) over the iteration dims.
    Strided { data: &'a [T], strides: SmallVec<[usize; 6]>, dims: SmallVec<[usize; 6]> },
    /// The output buffer itself (the kernel runs in place over this input, or reads a
    /// matmul's product): copied into its register before the chunk is written.
    Out,
}

impl<'a, T: Copy> Load<'a, T> {
    fn new(data: &'a [T], shape: &Shape, iter: &Shape) -> Load<'a, T> {
        let n = iter.num_elements();
        if data.len() == n {
            return Load::Full(data);
        }
        if data.len() == 1 {
            return Load::Scalar(data[0]);
        }
        let dims: &[usize] = shape.dims();
        let lead = dims.iter().take_while(|&&d| d == 1).count();
        let core = &dims[lead..];
        if core.len() <= iter.rank() && core == &iter.dims()[iter.rank() - core.len()..] {
            return Load::Cyclic(data);
        }
        let rank = iter.rank();
        let mut strides: SmallVec<[usize; 6]> = SmallVec::from_elem(0, rank);
        let mut acc = 1;
        for i in (0..dims.len()).rev() {
            let o = i + rank - dims.len();
            strides[o] = if dims[i] == 1 && iter[o] != 1 { 0 } else { acc };
            acc *= dims[i];
        }
        Load::Strided { data, strides, dims: iter.dims().iter().copied().collect() }
    }

    /// Writes elements `start..start + dst.len()` of this load into `dst`.
    fn gather(&self, start: usize, dst: &mut [T], out: &[T]) {
        match self {
            Load::Full(d) => dst.copy_from_slice(&d[start..start + dst.len()]),
            Load::Scalar(v) => dst.fill(*v),
            Load::Out => dst.copy_from_slice(out),
            Load::Cyclic(d) => {
                // Whole runs of the row at a time (memcpy), not an element and a wrap test.
                let (mut j, mut k) = (start % d.len(), 0);
                while k < dst.len() {
                    let take = (d.len() - j).min(dst.len() - k);
                    dst[k..k + take].copy_from_slice(&d[j..j + take]);
                    k += take;
                    j = 0;
                }
            }
            Load::Strided { data, strides, dims } => {
                // The multi-index of `start`, then an odometer that moves a whole run of the
                // innermost dim at a time (a fill when it is broadcast, a copy when it is
                // contiguous): a [rows, 1] column over [rows, cols] costs a fill per row,
                // not a carry test per element.
                let rank = dims.len();
                if rank == 0 {
                    dst.fill(data[0]);
                    return;
                }
                let mut idx: SmallVec<[usize; 6]> = SmallVec::from_elem(0, rank);
                let mut rem = start;
                for d in (0..rank).rev() {
                    idx[d] = rem % dims[d].max(1);
                    rem /= dims[d].max(1);
                }
                let mut off: usize = idx.iter().zip(strides).map(|(i, s)| i * s).sum();
                let (last, inner) = (rank - 1, dims[rank - 1]);
                let s = strides[last];
                let mut k = 0;
                while k < dst.len() {
                    let run = (inner - idx[last]).min(dst.len() - k);
                    let out = &mut dst[k..k + run];
                    match s {
                        0 => out.fill(data[off]),
                        1 => out.copy_from_slice(&data[off..off + run]),
                        _ => {
                            for (j, v) in out.iter_mut().enumerate() {
                                *v = data[off + j * s];
                            }
                        }
                    }
                    k += run;
                    idx[last] += run;
                    off += s * run;
                    // Carry into the outer dims.
                    let mut d = last;
                    while idx[d] == dims[d] && d > 0 {
                        off -= strides[d] * idx[d];
                        idx[d] = 0;
                        d -= 1;
                        idx[d] += 1;
                        off += strides[d];
                    }
                }
            }
        }
    }
}

/// One instruction over whole chunks.
trait Kernels: FloatK + super::matmul::Gemm {
    fn unary(op: UnaryOp, x: &[Self], o: &mut [Self]);
    fn binary(op: BinaryOp, a: &[Self], b: &[Self], o: &mut [Self]);
}

/// A unary arm: the op's scalar function over the chunk; bool-only ops never reach a fused
/// float kernel (the fusion pass only takes ops that accept the group's dtype).
macro_rules! unary_arm {
    (Bool, $k:ident::$f:ident, $x:expr, $o:expr) => {{}};
    ($acc:ident, $k:ident::$f:ident, $x:expr, $o:expr) => {
        super::simd::map_into($x, $o, &|v: T| <T as $k>::$f(v))
    };
}

/// A binary arm; comparisons and logical ops never reach a fused float kernel.
macro_rules! binary_arm {
    (Bool, $acc:ident, $k:ident::$f:ident, $a:expr, $b:expr, $o:expr) => {{}};
    (Same, Bool, $k:ident::$f:ident, $a:expr, $b:expr, $o:expr) => {{}};
    (Same, $acc:ident, $k:ident::$f:ident, $a:expr, $b:expr, $o:expr) => {
        super::simd::zip_into($a, $b, $o, &|p: T, q: T| <T as $k>::$f(p, q))
    };
}

macro_rules! gen_unary_chunk {
    ($($v:ident $name:literal $acc:ident $k:ident::$f:ident $wgsl:literal;)*) => {
        #[inline(always)]
        fn unary_chunk<T: FloatK>(op: UnaryOp, x: &[T], o: &mut [T]) {
            match op { $(UnaryOp::$v => unary_arm!($acc, $k::$f, x, o),)* }
        }
    };
}
unary_table!(gen_unary_chunk);

macro_rules! gen_binary_chunk {
    ($($v:ident $name:literal $acc:ident $out:ident $k:ident::$f:ident $wgsl:literal;)*) => {
        #[inline(always)]
        fn binary_chunk<T: FloatK>(op: BinaryOp, a: &[T], b: &[T], o: &mut [T]) {
            match op { $(BinaryOp::$v => binary_arm!($out, $acc, $k::$f, a, b, o),)* }
        }
    };
}
binary_table!(gen_binary_chunk);

impl Kernels for f32 {
    fn unary(op: UnaryOp, x: &[f32], o: &mut [f32]) {
        unary_chunk(op, x, o)
    }
    fn binary(op: BinaryOp, a: &[f32], b: &[f32], o: &mut [f32]) {
        binary_chunk(op, a, b, o)
    }
}
impl Kernels for f64 {
    fn unary(op: UnaryOp, x: &[f64], o: &mut [f64]) {
        unary_chunk(op, x, o)
    }
    fn binary(op: BinaryOp, a: &[f64], b: &[f64], o: &mut [f64]) {
        binary_chunk(op, a, b, o)
    }
}

/// Runs the program over elements `start..start + out.len()` into `out`. `regs` is scratch
/// of `n_regs * w` elements (register `r` at `r * w`); `out.len() <= w`.
/// With `stream`, the result goes through a register and reaches `out` with streaming
/// stores (for outputs far larger than the caches).
fn eval_chunk<T: Kernels>(
    f: &Fusion,
    loads: &[Load<'_, T>],
    start: usize,
    out: &mut [T],
    regs: &mut [T],
    w: usize,
    stream: bool,
) {
    let len = out.len();
    // Loads that are not plain slices go into their registers first (an in-place load
    // before `out` is overwritten).
    for (k, l) in loads.iter().enumerate() {
        if !matches!(l, Load::Full(_)) {
            l.gather(start, &mut regs[k * w..k * w + len], out);
        }
    }
    let last = f.program.len() - 1;
    for (j, ins) in f.program.iter().enumerate() {
        let dst = f.n_loads + j;
        let (lower, upper) = regs.split_at_mut(dst * w);
        let src = |r: u16| -> &[T] {
            let r = r as usize;
            match loads.get(r) {
                Some(Load::Full(d)) => &d[start..start + len],
                _ => &lower[r * w..r * w + len],
            }
        };
        let direct = j == last && !stream;
        let o: &mut [T] = if direct { &mut *out } else { &mut upper[..len] };
        match *ins {
            Instr::Unary(u, a) => T::unary(u, src(a), o),
            Instr::Binary(b, a, c) => T::binary(b, src(a), src(c), o),
        }
        if j == last && stream {
            super::stream::copy_nt(out, &upper[..len]);
        }
    }
}

/// Runs the program over the whole iteration space into `out`, in parallel when large.
fn eval_all<T: Kernels>(f: &Fusion, loads: &[Load<'_, T>], out: &mut [T]) {
    let n_regs = f.n_loads + f.program.len();
    let stream = std::mem::size_of_val(out) >= super::stream::STREAM_MIN_BYTES;
    // Registers as wide as a chunk, or as the whole output when it is smaller.
    let w = CHUNK.min(out.len()).max(1);
    let run = |base: usize, part: &mut [T]| {
        let mut regs = vec![T::default(); n_regs * w];
        for (c, o) in part.chunks_mut(CHUNK).enumerate() {
            eval_chunk(f, loads, base + c * CHUNK, o, &mut regs, w, stream);
        }
        if stream {
            super::stream::fence();
        }
    };
    if out.len() >= PAR_MIN {
        let c = chunk_len(out.len()).next_multiple_of(CHUNK);
        out.par_chunks_mut(c).enumerate().for_each(|(i, part)| run(i * c, part));
    } else {
        run(0, out);
    }
}

/// `t`'s buffer as a vector of `n` elements, when `t` is the only handle to it.
fn take_buffer<T: Element>(mut t: Tensor, n: usize) -> std::result::Result<Vec<T>, Tensor> {
    match t.host_buffer_mut().and_then(T::slice_mut) {
        Some(v) if v.len() == n => Ok(std::mem::take(v)),
        _ => Err(t),
    }
}

/// Runs a fused node on concrete inputs. `shape` is the node's output shape; `reuse` is
/// the buffer of input `k`, taken over as the output (the memory plan's in-place step):
/// that input's elements are read from it before each chunk is overwritten.
pub(crate) fn run(f: &Fusion, inputs: &[&Tensor], shape: Shape, reuse: Option<(usize, Buffer)>) -> Result<Tensor> {
    match f.dtype {
        DType::F32 => run_t::<f32>(f, inputs, shape, reuse),
        DType::F64 => run_t::<f64>(f, inputs, shape, reuse),
        d => Err(Error::unsupported(
            f.name(),
            format!("no fused kernel for {d} (the fusion pass only fuses f32 and f64)"),
        )),
    }
}

fn run_t<T: Kernels>(f: &Fusion, inputs: &[&Tensor], shape: Shape, reuse: Option<(usize, Buffer)>) -> Result<Tensor> {
    let name = f.name();
    match &f.kind {
        FusionKind::Loop => {
            let n = shape.num_elements();
            let (mut out, reused) = match reuse {
                Some((k, mut b)) => match T::slice_mut(&mut b) {
                    Some(v) if v.len() == n => (std::mem::take(v), Some(k)),
                    _ => return Err(Error::invalid(name, "the planned in-place buffer does not fit the output")),
                },
                None => (alloc::<T>(n), None),
            };
            let loads = inputs
                .iter()
                .enumerate()
                .map(|(k, t)| {
                    if reused == Some(k) {
                        Ok(Load::Out)
                    } else {
                        Ok(Load::new(t.host_slice::<T>(name)?, t.shape(), &shape))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            eval_all(f, &loads, &mut out);
            Ok(Tensor::from_vec_unchecked(out, shape))
        }
        FusionKind::MatMul { transpose_a, transpose_b } => {
            let (a, b) = (inputs[0], inputs[1]);
            let op = crate::prim::PrimOp::MatMul { transpose_a: *transpose_a, transpose_b: *transpose_b };
            let (mm_shape, _) = crate::prim::infer::infer(&op, &[a, b])?;
            let n = shape.num_elements();
            if mm_shape == shape {
                // The epilogue runs on each block of the product as its thread finishes it
                // (in cache, and in parallel when the product is split).
                let mut loads = vec![Load::Out];
                for t in &inputs[2..] {
                    loads.push(Load::new(t.host_slice::<T>(name)?, t.shape(), &shape));
                }
                let n_regs = f.n_loads + f.program.len();
                let epi = |start: usize, run: &mut [T], regs: &mut Vec<T>| {
                    let w = CHUNK.min(run.len()).max(1);
                    regs.resize(regs.len().max(n_regs * w), T::default());
                    for (c, o) in run.chunks_mut(CHUNK).enumerate() {
                        eval_chunk(f, &loads, start + c * CHUNK, o, regs, w, false);
                    }
                };
                return super::matmul::matmul_epilogue(a, b, *transpose_a, *transpose_b, shape, &epi);
            }
            let mm = super::matmul::matmul(a, b, *transpose_a, *transpose_b, mm_shape)?;
            // The epilogue runs over the product's own buffer; only when unknown dims made
            // the epilogue broadcast the product does it get a buffer of its own.
            let (mut out, mm) = match take_buffer::<T>(mm, n) {
                Ok(v) => (v, None),
                Err(mm) => (alloc::<T>(n), Some(mm)),
            };
            let mut loads = vec![match &mm {
                None => Load::Out,
                Some(m) => Load::new(m.host_slice::<T>(name)?, m.shape(), &shape),
            }];
            for t in &inputs[2..] {
                loads.push(Load::new(t.host_slice::<T>(name)?, t.shape(), &shape));
            }
            eval_all(f, &loads, &mut out);
            Ok(Tensor::from_vec_unchecked(out, shape))
        }
        FusionKind::Reduce { op, axes, .. } => {
            let shapes: Vec<&Shape> = inputs.iter().map(|t| t.shape()).collect();
            let iter = f.iteration_shape(&shapes)?;
            let loads = inputs
                .iter()
                .map(|t| Ok(Load::new(t.host_slice::<T>(name)?, t.shape(), &iter)))
                .collect::<Result<Vec<_>>>()?;
            let row: usize = axes.iter().map(|&d| iter[d]).product();
            let rows = shape.num_elements();
            let mut out = alloc::<T>(rows);
            reduce_rows(f, &loads, *op, row, &mut out);
            Ok(Tensor::from_vec_unchecked(out, shape))
        }
    }
}

const LANES: usize = 16;

/// Folds the program's values over each row of `row` elements into `out` (one per row).
fn reduce_rows<T: Kernels>(f: &Fusion, loads: &[Load<'_, T>], op: ReduceOp, row: usize, out: &mut [T]) {
    // One copy per combiner, so that it inlines into the folds (a `fn` pointer cost a call
    // per element and per lane of the tree).
    match op {
        ReduceOp::Sum | ReduceOp::Mean => reduce_rows_with(f, loads, op, row, out, T::zero(), NumK::add),
        ReduceOp::Prod => reduce_rows_with(f, loads, op, row, out, T::one(), NumK::mul),
        ReduceOp::Max => reduce_rows_with(f, loads, op, row, out, T::lowest(), NumK::maximum),
        ReduceOp::Min => reduce_rows_with(f, loads, op, row, out, T::highest(), NumK::minimum),
    }
}

fn reduce_rows_with<T: Kernels>(
    f: &Fusion,
    loads: &[Load<'_, T>],
    op: ReduceOp,
    row: usize,
    out: &mut [T],
    id: T,
    comb: impl Fn(T, T) -> T + Copy + Sync,
) {
    let n_regs = f.n_loads + f.program.len();
    // Rows shorter than a chunk are evaluated a block of whole rows at a time (one pass of
    // the program over `per` rows, then a fold of each), not one short pass per row: the
    // [128, 10] rows of a loss took ~40 ns each in per-row passes. Each row's fold is the
    // same either way, so the bits do not depend on the blocking.
    let per = if row == 0 || row >= CHUNK { 1 } else { CHUNK / row };
    let total = row * out.len();
    let w = if per > 1 { (per * row).min(total) } else { CHUNK.min(row).max(1) };
    // Folds `vals` into 16 lanes plus a tail value.
    let fold_vals = |vals: &[T], acc: &mut [T; LANES], tail: &mut T| {
        let mut cs = vals.chunks_exact(LANES);
        for c in &mut cs {
            for i in 0..LANES {
                acc[i] = comb(acc[i], c[i]);
            }
        }
        for &v in cs.remainder() {
            *tail = comb(*tail, v);
        }
    };
    // The lanes' tree, then the tail.
    let lanes_total = |mut acc: [T; LANES], tail: T| -> T {
        let mut w = LANES;
        while w > 1 {
            w /= 2;
            for i in 0..w {
                acc[i] = comb(acc[i], acc[i + w]);
            }
        }
        comb(acc[0], tail)
    };
    // Folds elements `start..start + len` (chunk by chunk).
    let fold_range = |start: usize, len: usize, regs: &mut [T], vals: &mut [T]| -> T {
        let mut acc = [id; LANES];
        let mut tail = id;
        let mut done = 0;
        while done < len {
            let l = w.min(len - done);
            eval_chunk(f, loads, start + done, &mut vals[..l], regs, w, false);
            fold_vals(&vals[..l], &mut acc, &mut tail);
            done += l;
        }
        lanes_total(acc, tail)
    };
    let finish = |v: T| if op == ReduceOp::Mean { v.div_count(row) } else { v };
    let scratch = || (vec![T::default(); n_regs * w], vec![T::default(); w]);
    // Rows `first..first + o.len()` into `o`.
    let rows_into = |first: usize, o: &mut [T], regs: &mut [T], vals: &mut [T]| {
        if per == 1 {
            for (j, y) in o.iter_mut().enumerate() {
                *y = finish(fold_range((first + j) * row, row, regs, vals));
            }
            return;
        }
        for (b, ob) in o.chunks_mut(per).enumerate() {
            let l = ob.len() * row;
            eval_chunk(f, loads, (first + b * per) * row, &mut vals[..l], regs, w, false);
            for (y, r) in ob.iter_mut().zip(vals[..l].chunks_exact(row)) {
                let (mut acc, mut tail) = ([id; LANES], id);
                fold_vals(r, &mut acc, &mut tail);
                *y = finish(lanes_total(acc, tail));
            }
        }
    };
    if out.len() == 1 && row >= PAR_MIN * 4 {
        // One long row: partial folds on every thread, then combined.
        let c = chunk_len(row).max(1 << 16).next_multiple_of(CHUNK);
        let parts: Vec<T> = (0..row.div_ceil(c))
            .into_par_iter()
            .map(|p| {
                let (mut regs, mut vals) = scratch();
                fold_range(p * c, c.min(row - p * c), &mut regs, &mut vals)
            })
            .collect();
        out[0] = finish(parts.into_iter().fold(id, comb));
    } else if total >= PAR_MIN && out.len() > 1 {
        let rows_per_task = 1.max(PAR_MIN / row.max(1));
        out.par_chunks_mut(rows_per_task).enumerate().for_each(|(i, o)| {
            let (mut regs, mut vals) = scratch();
            rows_into(i * rows_per_task, o, &mut regs, &mut vals);
        });
    } else {
        let (mut regs, mut vals) = scratch();
        rows_into(0, out, &mut regs, &mut vals);
    }
}
