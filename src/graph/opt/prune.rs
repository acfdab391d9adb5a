//! Pruning (dead-code elimination): removes every node that no output and no side effect
//! (print, variable assignment, a branch or loop containing one) depends on. Argument nodes
//! stay, so arguments keep their positions. Nothing is reordered, so side effects keep
//! their program order.

use super::{OptimizerOptions, Pass, PassKind};
use crate::error::Result;
use crate::graph::ir::{Graph, NodeId};

pub(crate) struct Prune;

impl Pass for Prune {
    fn kind(&self) -> PassKind {
        PassKind::Pruning
    }

    fn run(&self, g: &mut Graph, _: &OptimizerOptions) -> Result<Vec<String>> {
        let live = live_nodes(g);
        let mut changes = Vec::new();
        // Consumers first, so a removed node never leaves an edge from a removed producer.
        for id in g.node_ids().into_iter().rev() {
            if !live.contains(&id) && !g.inputs.contains(&id) {
                if let Some(n) = g.node(id) {
                    changes.push(format!("removed {id} ({}), unused", n.op.name()));
                }
                g.remove(id);
            }
        }
        changes.reverse();
        Ok(changes)
    }
}

/// The nodes that outputs and side effects need.
pub(crate) fn live_nodes(g: &Graph) -> std::collections::HashSet<NodeId> {
    let mut live = std::collections::HashSet::new();
    let mut stack: Vec<NodeId> = g.outputs.clone();
    stack.extend(g.node_ids().into_iter().filter(|id| g.node(*id).is_some_and(|n| n.op.has_side_effect())));
    while let Some(id) = stack.pop() {
        if live.insert(id)
            && let Some(n) = g.node(id)
        {
            stack.extend(n.inputs.iter().copied());
        }
    }
    live
}
