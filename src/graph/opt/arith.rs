//! Arithmetic simplification, only with rewrites that give the same values under IEEE
//! rules (Grappler's arithmetic optimizer, XLA's algebraic simplifier):
//! - `x + 0`, `0 + x`, `x - 0`, `x * 1`, `1 * x`, `x / 1` become `x` when the constant does
//!   not widen `x` by broadcasting (`x + 0` turns `-0.0` into `+0.0`, equal as values,
//!   which XLA also accepts; `x * 0 -> 0` is never done: it is wrong for NaN and inf);
//! - `neg(neg(x))` becomes `x`; `x * x` becomes `square(x)` (one rounding either way);
//! - `cast(cast(x, wider), x.dtype)` becomes `x` (a lossless round trip), `cast(x, x.dtype)`
//!   becomes `x`;
//! - `reshape(reshape(x))` becomes one reshape, a reshape to the same shape disappears;
//! - `transpose(transpose(x))` becomes one transpose (none when the permutations cancel);
//! - a transpose of the last two axes feeding a matmul becomes the matmul's transpose flag,
//!   where the kernel rounds the same for both layouts (integer products always, float ones
//!   unless they have a single row or column: a matrix-vector kernel reads by layout).
//!
//! Rewrites change a node in place or redirect its readers, so program order (and the
//! order of side effects) never changes; the bypassed nodes are left for pruning.

use smallvec::smallvec;

use super::{OptimizerOptions, Pass, PassKind};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::ir::{Graph, NodeId, NodeOp};
use crate::prim::{BinaryOp, PrimOp, UnaryOp};
use crate::shape::UNKNOWN;
use crate::tensor::Tensor;

pub(crate) struct Arithmetic;

/// What to do with one node.
enum Rewrite {
    /// Readers of the node read this earlier node instead.
    Forward(NodeId, &'static str),
    /// The node becomes this op over these inputs.
    Replace(NodeOp, smallvec::SmallVec<[NodeId; 3]>, &'static str),
}

impl Pass for Arithmetic {
    fn kind(&self) -> PassKind {
        PassKind::Arithmetic
    }

    fn run(&self, g: &mut Graph, _: &OptimizerOptions) -> Result<Vec<String>> {
        let mut changes = Vec::new();
        for id in g.node_ids() {
            // A rewritten node may match another rule (`transpose(transpose(transpose x))`).
            for _ in 0..4 {
                match rewrite(g, id) {
                    Some(Rewrite::Forward(to, why)) => {
                        changes.push(format!("{id} ({why}): readers now read {}", g.tensor_name(to)));
                        g.replace_uses(id, to);
                        break;
                    }
                    Some(Rewrite::Replace(op, inputs, why)) => {
                        changes.push(format!("{id} ({why}) becomes {}", op.name()));
                        g.rewrite(id, op, inputs);
                    }
                    None => break,
                }
            }
        }
        Ok(changes)
    }
}

/// The rewrite that applies to `id`, if any.
fn rewrite(g: &Graph, id: NodeId) -> Option<Rewrite> {
    let n = g.node(id)?;
    let NodeOp::Prim(op) = &n.op else { return None };
    let input = |k: usize| n.inputs.get(k).copied();
    let prim_of = |i: NodeId| g.node(i).and_then(|m| m.op.as_prim());
    // `x` may stand in for the node: same shape (no broadcast widening) and dtype.
    let same_type = |x: NodeId| g.node(x).is_some_and(|m| m.shape == n.shape && m.dtype == n.dtype);
    match op {
        PrimOp::Binary(b) => {
            let (x, y) = (input(0)?, input(1)?);
            if *b == BinaryOp::Mul && x == y {
                return Some(Rewrite::Replace(NodeOp::Prim(PrimOp::Unary(UnaryOp::Square)), smallvec![x], "x * x"));
            }
            let is = |i: NodeId, v: f64| const_all(g, i, v);
            let keep = match b {
                BinaryOp::Add if is(y, 0.0) => Some((x, "x + 0")),
                BinaryOp::Add if is(x, 0.0) => Some((y, "0 + x")),
                BinaryOp::Sub if is(y, 0.0) => Some((x, "x - 0")),
                BinaryOp::Mul if is(y, 1.0) => Some((x, "x * 1")),
                BinaryOp::Mul if is(x, 1.0) => Some((y, "1 * x")),
                BinaryOp::Div if is(y, 1.0) => Some((x, "x / 1")),
                BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::FloorDiv
                | BinaryOp::Pow
                | BinaryOp::Maximum
                | BinaryOp::Minimum
                | BinaryOp::Equal
                | BinaryOp::NotEqual
                | BinaryOp::Less
                | BinaryOp::LessEqual
                | BinaryOp::Greater
                | BinaryOp::GreaterEqual
                | BinaryOp::LogicalAnd
                | BinaryOp::LogicalOr
                | BinaryOp::ReluGrad => None,
            };
            keep.filter(|(k, _)| same_type(*k)).map(|(k, why)| Rewrite::Forward(k, why))
        }
        PrimOp::Unary(UnaryOp::Neg) => {
            let x = input(0)?;
            if let Some(PrimOp::Unary(UnaryOp::Neg)) = prim_of(x) {
                let inner = g.node(x)?.inputs.first().copied()?;
                return Some(Rewrite::Forward(inner, "neg(neg(x))"));
            }
            None
        }
        PrimOp::Cast(to) => {
            let x = input(0)?;
            let xd = g.node(x)?.dtype;
            if xd == *to {
                return Some(Rewrite::Forward(x, "cast to its own dtype"));
            }
            if let Some(PrimOp::Cast(_)) = prim_of(x) {
                let inner = g.node(x)?.inputs.first().copied()?;
                let orig = g.node(inner)?.dtype;
                if orig == *to && lossless(orig, xd) {
                    return Some(Rewrite::Forward(inner, "lossless cast round trip"));
                }
            }
            None
        }
        PrimOp::Reshape(spec) => {
            let x = input(0)?;
            if n.shape.is_fully_known() && same_type(x) {
                return Some(Rewrite::Forward(x, "reshape to the same shape"));
            }
            if let Some(PrimOp::Reshape(_)) = prim_of(x) {
                let inner = g.node(x)?.inputs.first().copied()?;
                return Some(Rewrite::Replace(
                    NodeOp::Prim(PrimOp::Reshape(spec.clone())),
                    smallvec![inner],
                    "reshape of a reshape",
                ));
            }
            None
        }
        PrimOp::Transpose(p2) => {
            let x = input(0)?;
            if p2.iter().enumerate().all(|(i, &p)| i == p) {
                return Some(Rewrite::Forward(x, "identity transpose"));
            }
            if let Some(PrimOp::Transpose(p1)) = prim_of(x) {
                let inner = g.node(x)?.inputs.first().copied()?;
                let q: crate::prim::Axes = p2.iter().map(|&i| p1[i]).collect();
                if q.iter().enumerate().all(|(i, &p)| i == p) {
                    return Some(Rewrite::Forward(inner, "transposes cancel"));
                }
                return Some(Rewrite::Replace(
                    NodeOp::Prim(PrimOp::Transpose(q)),
                    smallvec![inner],
                    "transpose of a transpose",
                ));
            }
            None
        }
        PrimOp::MatMul { transpose_a, transpose_b } => {
            let (a, b) = (input(0)?, input(1)?);
            let swapped = |i: NodeId| {
                if let Some(PrimOp::Transpose(p)) = prim_of(i)
                    && swaps_last_two(p)
                {
                    return g.node(i)?.inputs.first().copied();
                }
                None
            };
            let (na, nb) = (swapped(a), swapped(b));
            if na.is_none() && nb.is_none() || !flags_are_exact(g, id, a, *transpose_a, n.dtype) {
                return None;
            }
            let op =
                PrimOp::MatMul { transpose_a: *transpose_a ^ na.is_some(), transpose_b: *transpose_b ^ nb.is_some() };
            Some(Rewrite::Replace(
                NodeOp::Prim(op),
                smallvec![na.unwrap_or(a), nb.unwrap_or(b)],
                "transpose folded into matmul",
            ))
        }
        // No rewrite of its own (a new primitive decides here whether it has one).
        PrimOp::Unary(_)
        | PrimOp::Select
        | PrimOp::Reduce { .. }
        | PrimOp::ArgReduce { .. }
        | PrimOp::BroadcastTo(_)
        | PrimOp::Concat(_)
        | PrimOp::Slice { .. }
        | PrimOp::Gather(_)
        | PrimOp::OneHot { .. }
        | PrimOp::Softmax { .. }
        | PrimOp::Sparse(_) => None,
    }
}

/// Whether the matmul `mm` (first operand `a`, flag `ta`) gives the same bits with its
/// operands in any layout, so that a transpose may become a flag: always for integers
/// (exact sums), for floats when the CPU kernel takes its layout-blind path on every block
/// (`matmul::flags_are_exact`; the GPU kernel reads through the flags in one fixed order).
fn flags_are_exact(g: &Graph, mm: NodeId, a: NodeId, ta: bool, dtype: DType) -> bool {
    if !dtype.is_float() {
        return true;
    }
    let (Some(out), Some(a)) = (g.node(mm), g.node(a)) else { return false };
    let (ro, ra) = (out.shape.rank(), a.shape.rank());
    if ro < 2 || ra < 2 {
        return false;
    }
    let (m, n) = (out.shape[ro - 2], out.shape[ro - 1]);
    let k = if ta { a.shape[ra - 2] } else { a.shape[ra - 1] };
    ![m, k, n].contains(&UNKNOWN) && crate::backend::caps::matmul_transposes_exact(m, k, n)
}

/// Whether `p` swaps the last two axes and keeps the others.
fn swaps_last_two(p: &[usize]) -> bool {
    let r = p.len();
    r >= 2 && p[r - 1] == r - 2 && p[r - 2] == r - 1 && p[..r - 2].iter().enumerate().all(|(i, &q)| i == q)
}

/// Whether every value of `from` survives a cast to `to` and back unchanged.
fn lossless(from: DType, to: DType) -> bool {
    use DType::*;
    matches!(
        (from, to),
        (F16 | BF16, F32 | F64)
            | (F32, F64)
            | (I32, I64 | F64)
            | (U8, I32 | I64 | F16 | F32 | F64)
            | (Bool, U8 | I32 | I64)
    )
}

/// Whether node `i` is a constant whose every element equals `v` (small constants only).
fn const_all(g: &Graph, i: NodeId, v: f64) -> bool {
    let Some(NodeOp::Const(t)) = g.node(i).map(|m| &m.op) else { return false };
    if t.num_elements() > 4096 || t.dtype() == DType::Bool {
        return false;
    }
    let wide: Option<Tensor> = crate::backend::caps::cast_on_host(t, DType::F64).ok();
    wide.as_ref().and_then(|w| w.host_slice::<f64>("optimizer").ok()).is_some_and(|s| s.iter().all(|&x| x == v))
}
