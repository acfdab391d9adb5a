//! Memory planning: decides which steps write their output over an input whose last use
//! they are (in-place execution), and computes the planned peak: argument and constant
//! bytes plus the most bytes of intermediate buffers alive at once, walking the program in
//! the order the executor runs it and freeing each buffer after its last reader (XLA's
//! buffer assignment, in a linear program order). The executor frees buffers the same way
//! and recycles freed ones through the buffer pool, so the plan is what a call holds.

use std::collections::{HashMap, HashSet};

use super::{OptimizerOptions, Pass, PassKind};
use crate::error::Result;
use crate::graph::ir::{Graph, MemoryPlan, Node, NodeId, NodeOp};
use crate::prim::fusion::FusionKind;
use crate::prim::{Elementwise, PrimOp};

pub(crate) struct MemoryPlanner;

impl Pass for MemoryPlanner {
    fn kind(&self) -> PassKind {
        PassKind::Memory
    }

    fn run(&self, g: &mut Graph, _: &OptimizerOptions) -> Result<Vec<String>> {
        let plan = plan(g);
        let changes: Vec<String> = {
            let mut v: Vec<_> = plan.in_place.iter().collect();
            v.sort();
            v.into_iter()
                .map(|(id, k)| {
                    let src = g.node(*id).and_then(|n| n.inputs.get(*k)).map_or("?".into(), |i| g.tensor_name(*i));
                    format!("{id} writes over {src} (its last use) in place")
                })
                .collect()
        };
        g.memory = Some(plan);
        Ok(changes)
    }
}

/// Bytes of a node's value (`None` when a dim is unknown).
fn bytes(n: &Node) -> Option<usize> {
    n.shape.is_fully_known().then(|| n.shape.num_elements() * n.dtype.size_of())
}

/// Whether a node's value is a buffer this call makes (so it can be overwritten and
/// counts as an intermediate): not an argument, constant, variable read, or a reshape
/// (which aliases its input).
fn owns_buffer(n: &Node) -> bool {
    match &n.op {
        NodeOp::Prim(p) => match p {
            PrimOp::Reshape(_) => false,
            PrimOp::Unary(_)
            | PrimOp::Binary(_)
            | PrimOp::Select
            | PrimOp::Cast(_)
            | PrimOp::Reduce { .. }
            | PrimOp::ArgReduce { .. }
            | PrimOp::Transpose(_)
            | PrimOp::BroadcastTo(_)
            | PrimOp::Concat(_)
            | PrimOp::Slice { .. }
            | PrimOp::Gather(_)
            | PrimOp::OneHot { .. }
            | PrimOp::MatMul { .. }
            | PrimOp::Softmax { .. }
            | PrimOp::Sparse(_) => true,
        },
        NodeOp::Fused(_) => true,
        NodeOp::Project(_) | NodeOp::Cond { .. } | NodeOp::While { .. } => true,
        NodeOp::Input(_) | NodeOp::Const(_) | NodeOp::ReadVariable(_) | NodeOp::Print | NodeOp::AssignVariable(..) => {
            false
        }
    }
}

/// Whether a node may write its output over an input of the same shape and dtype.
fn can_run_in_place(n: &Node) -> bool {
    match &n.op {
        NodeOp::Prim(p) => match p.elementwise() {
            Some(Elementwise::Unary(_)) => true,
            Some(Elementwise::Binary(b)) => !b.is_comparison(),
            None => false,
        },
        NodeOp::Fused(f) => matches!(f.kind, FusionKind::Loop),
        NodeOp::Input(_)
        | NodeOp::Const(_)
        | NodeOp::Print
        | NodeOp::ReadVariable(_)
        | NodeOp::AssignVariable(..)
        | NodeOp::Cond { .. }
        | NodeOp::While { .. }
        | NodeOp::Project(_) => false,
    }
}

/// Plans in-place steps and the peak over the nodes the executor will run.
pub(crate) fn plan(g: &Graph) -> MemoryPlan {
    let live = super::prune::live_nodes(g);
    let order: Vec<NodeId> = g.node_ids().into_iter().filter(|id| live.contains(id) || g.inputs.contains(id)).collect();
    let mut last_use: HashMap<NodeId, usize> = HashMap::new();
    for (s, id) in order.iter().enumerate() {
        for i in g.node(*id).map(|n| n.inputs.clone()).unwrap_or_default() {
            last_use.insert(i, s);
        }
    }
    let outputs: HashSet<NodeId> = g.outputs.iter().copied().collect();
    let mut known = true;
    let mut fixed = 0usize; // arguments and constants: alive for the whole call
    let mut live_bytes = 0usize;
    let mut peak = 0usize;
    let mut in_place = HashMap::new();
    // Which buffer each value lives in (its own, or the input it overwrote).
    let mut holds: HashMap<NodeId, usize> = HashMap::new();
    for (s, id) in order.iter().enumerate() {
        let Some(n) = g.node(*id) else { continue };
        let size = bytes(n);
        known &= size.is_some();
        let size = size.unwrap_or(0);
        if matches!(n.op, NodeOp::Input(_) | NodeOp::Const(_)) {
            fixed += size;
            continue;
        }
        if !owns_buffer(n) {
            continue;
        }
        // An input this step reads for the last time, made by this call, of the same type.
        let reuse = can_run_in_place(n)
            .then(|| {
                n.inputs.iter().position(|i| {
                    let Some(m) = g.node(*i) else { return false };
                    owns_buffer(m)
                        && holds.contains_key(i)
                        && last_use.get(i) == Some(&s)
                        && !outputs.contains(i)
                        && n.inputs.iter().filter(|j| *j == i).count() == 1
                        && m.shape == n.shape
                        && m.shape.is_fully_known()
                        && m.dtype == n.dtype
                })
            })
            .flatten();
        match reuse {
            Some(k) => {
                in_place.insert(*id, k);
                let from = n.inputs[k];
                if let Some(b) = holds.remove(&from) {
                    holds.insert(*id, b);
                }
            }
            None => {
                live_bytes += size;
                holds.insert(*id, size);
            }
        }
        peak = peak.max(live_bytes);
        // Free what this step read last (outputs stay until the call returns).
        for i in n.inputs.iter().collect::<HashSet<_>>() {
            if last_use.get(i) == Some(&s)
                && !outputs.contains(i)
                && let Some(b) = holds.remove(i)
            {
                live_bytes -= b;
            }
        }
        if !last_use.contains_key(id)
            && !outputs.contains(id)
            && let Some(b) = holds.remove(id)
        {
            live_bytes -= b;
        }
    }
    MemoryPlan { in_place, peak_bytes: known.then_some(fixed + peak) }
}
