//! What a fused kernel computes, as the fusion pass (`graph::opt::fuse`) describes it and
//! the backends run it (`backend::cpu::fused`, `backend::wgpu::fused`): a definition both
//! may import, so no backend sees a graph type. Three kinds, after XLA's:
//! - **loop** (kLoop): a chain of elementwise ops with broadcasts, one pass over the output;
//! - **reduce** (kInput): elementwise producers evaluated inside a reduction over trailing
//!   axes, so the producers' result never exists as a tensor;
//! - **matmul** (kOutput): a matrix product whose elementwise epilogue (bias add,
//!   activation) runs on each block while it is still in cache.
//!
//! The elementwise part is a tiny SSA program: registers `0..n_loads` are the loads (the
//! node's inputs broadcast to the iteration shape; for `MatMul` register 0 is the product),
//! then instruction `k` writes register `n_loads + k`; the last register is the result.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::prim::{Axes, BinaryOp, PrimOp, ReduceOp, UnaryOp};
use crate::shape::{Shape, broadcast_shapes};
use crate::tensor::Tensor;

/// One elementwise instruction over earlier registers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Instr {
    Unary(UnaryOp, u16),
    Binary(BinaryOp, u16, u16),
}

/// Which kind of fused kernel.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) enum FusionKind {
    /// Elementwise only: the program's result is the output.
    Loop,
    /// The program's result over the loads' broadcast shape, reduced over `axes` (the
    /// trailing axes of that shape).
    Reduce { op: ReduceOp, axes: Axes, keepdims: bool },
    /// `matmul(inputs[0], inputs[1])` is register 0; the other inputs are the loads from
    /// register 1 on; the program is the epilogue.
    MatMul { transpose_a: bool, transpose_b: bool },
}

/// A fused kernel: its kind and its elementwise program.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Fusion {
    pub(crate) kind: FusionKind,
    pub(crate) n_loads: usize,
    pub(crate) program: Vec<Instr>,
    /// The dtype of every register (fusion groups are single-dtype).
    pub(crate) dtype: DType,
}

impl Fusion {
    /// The op name in graph text.
    pub(crate) fn name(&self) -> &'static str {
        match &self.kind {
            FusionKind::Loop => "fused_loop",
            FusionKind::Reduce { op: ReduceOp::Sum, .. } => "fused_reduce_sum",
            FusionKind::Reduce { op: ReduceOp::Mean, .. } => "fused_reduce_mean",
            FusionKind::Reduce { op: ReduceOp::Max, .. } => "fused_reduce_max",
            FusionKind::Reduce { op: ReduceOp::Min, .. } => "fused_reduce_min",
            FusionKind::Reduce { op: ReduceOp::Prod, .. } => "fused_reduce_prod",
            FusionKind::MatMul { .. } => "fused_matmul",
        }
    }

    /// The program as text: `mul(in0, in1); add(#0, in2); relu(#1)`, where `in<k>` is load
    /// `k` and `#<k>` the result of instruction `k`; reduce and matmul attributes first.
    pub(crate) fn program_text(&self) -> String {
        let reg = |r: u16| {
            let r = r as usize;
            if r < self.n_loads {
                if matches!(self.kind, FusionKind::MatMul { .. }) && r == 0 {
                    "mm".to_string()
                } else {
                    format!("in{}", if matches!(self.kind, FusionKind::MatMul { .. }) { r + 1 } else { r })
                }
            } else {
                format!("#{}", r - self.n_loads)
            }
        };
        let mut parts: Vec<String> = match &self.kind {
            FusionKind::Loop => Vec::new(),
            FusionKind::Reduce { axes, keepdims, .. } => vec![format!("axes={axes:?}, keepdims={keepdims}")],
            FusionKind::MatMul { transpose_a, transpose_b } if *transpose_a || *transpose_b => {
                vec![format!("mm = matmul(in0, in1, transpose_a={transpose_a}, transpose_b={transpose_b})")]
            }
            FusionKind::MatMul { .. } => vec!["mm = matmul(in0, in1)".to_string()],
        };
        for i in &self.program {
            parts.push(match *i {
                Instr::Unary(u, a) => format!("{}({})", u.name(), reg(a)),
                Instr::Binary(b, a, c) => format!("{}({}, {})", b.name(), reg(a), reg(c)),
            });
        }
        parts.join("; ")
    }

    /// The shape the elementwise program runs over, from the shapes of the loads.
    pub(crate) fn iteration_shape(&self, loads: &[&Shape]) -> Result<Shape> {
        let mut s = Shape::scalar();
        for l in loads {
            s = broadcast_shapes(self.name(), s.dims(), l.dims())?;
        }
        Ok(s)
    }

    /// Output shape and dtype for concrete inputs (used when the graph had unknown dims;
    /// otherwise the plan keeps the traced shape).
    pub(crate) fn infer(&self, inputs: &[&Tensor]) -> Result<(Shape, DType)> {
        let shapes: Vec<&Shape> = inputs.iter().map(|t| t.shape()).collect();
        match &self.kind {
            FusionKind::Loop => Ok((self.iteration_shape(&shapes)?, self.dtype)),
            FusionKind::Reduce { axes, keepdims, .. } => {
                let s = self.iteration_shape(&shapes)?;
                let dims: Vec<usize> = (0..s.rank())
                    .filter_map(|d| if axes.contains(&d) { keepdims.then_some(1) } else { Some(s[d]) })
                    .collect();
                Ok((Shape::new(&dims), self.dtype))
            }
            FusionKind::MatMul { transpose_a, transpose_b } => {
                let [a, b, rest @ ..] = inputs else {
                    return Err(Error::invalid("fused_matmul", "needs two matmul operands"));
                };
                let op = PrimOp::MatMul { transpose_a: *transpose_a, transpose_b: *transpose_b };
                let mm = crate::prim::infer::infer(&op, &[a, b])?.0;
                let mut loads: Vec<&Shape> = vec![&mm];
                loads.extend(rest.iter().map(|t| t.shape()));
                Ok((self.iteration_shape(&loads)?, self.dtype))
            }
        }
    }
}
