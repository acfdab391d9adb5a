//! Constant folding: a primitive whose inputs are all constants is evaluated once, now,
//! with the same kernels the graph would run, and becomes a constant. A size cap keeps
//! folding from bloating the graph (a `broadcast_to` of a scalar to a million elements
//! stays an op). A node whose evaluation fails (an index out of bounds, say) is left alone,
//! so the error still surfaces when the graph runs, exactly as without folding.

use smallvec::SmallVec;

use super::{OptimizerOptions, Pass, PassKind};
use crate::error::Result;
use crate::graph::ir::{Graph, NodeOp};
use crate::tensor::Tensor;

pub(crate) struct ConstantFold;

impl Pass for ConstantFold {
    fn kind(&self) -> PassKind {
        PassKind::ConstantFolding
    }

    fn run(&self, g: &mut Graph, opts: &OptimizerOptions) -> Result<Vec<String>> {
        let mut changes = Vec::new();
        for id in g.node_ids() {
            let Some(n) = g.node(id) else { continue };
            let NodeOp::Prim(op) = &n.op else { continue };
            let consts: Option<Vec<Tensor>> = n
                .inputs
                .iter()
                .map(|i| match g.node(*i).map(|m| &m.op) {
                    Some(NodeOp::Const(t)) => Some(t.clone()),
                    _ => None,
                })
                .collect();
            let Some(consts) = consts else { continue };
            if consts.is_empty() {
                continue;
            }
            let in_bytes: usize = consts.iter().map(|t| t.num_elements() * t.dtype().size_of()).sum();
            let out_bytes = n.shape.num_elements().saturating_mul(n.dtype.size_of());
            if out_bytes > opts.max_folded_bytes && out_bytes > in_bytes {
                continue;
            }
            let refs: Vec<&Tensor> = consts.iter().collect();
            let Ok(value) = crate::runtime::placement::execute(op, &refs) else { continue };
            changes.push(format!("folded {id} ({} of constants) into a constant {}{}", op.name(), n.dtype, n.shape));
            g.rewrite(id, NodeOp::Const(value), SmallVec::new());
        }
        Ok(changes)
    }
}
