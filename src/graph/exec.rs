//! Running a traced graph: compiled once into a `Plan` (steps in topological order, dead
//! nodes pruned, side effects kept, each buffer freed right after its last consumer), then
//! run on every call with the eager kernels.

use smallvec::SmallVec;

use super::ir::{Graph, NodeId, NodeOp};
use crate::error::{Error, Result};
use crate::op::PrimOp;
use crate::tensor::Tensor;

enum StepOp {
    Input(usize),
    Const(Tensor),
    Prim(PrimOp),
    Print,
}

struct Step {
    op: StepOp,
    args: SmallVec<[usize; 3]>,
    /// Slots whose last reader is this step: dropped right after it runs.
    free: SmallVec<[usize; 3]>,
    node: NodeId,
    loc: Option<crate::error::Loc>,
}

/// A graph compiled for execution. Slot `i` holds the value of the `i`-th kept node.
pub(crate) struct Plan {
    steps: Vec<Step>,
    outputs: Vec<usize>,
}

impl Plan {
    /// Compiles `g`: keeps the nodes that outputs or side effects depend on.
    pub(crate) fn compile(g: &Graph) -> Result<Plan> {
        let ids = g.node_ids();
        let mut live = std::collections::HashSet::new();
        let mut stack: Vec<NodeId> = g.outputs.clone();
        stack.extend(ids.iter().copied().filter(|id| g.node(*id).is_some_and(|n| n.op.has_side_effect())));
        while let Some(id) = stack.pop() {
            if live.insert(id) {
                if let Some(n) = g.node(id) {
                    stack.extend(n.inputs.iter().copied());
                }
            }
        }
        let kept: Vec<NodeId> = ids.into_iter().filter(|id| live.contains(id)).collect();
        let slot_of: std::collections::HashMap<NodeId, usize> = kept.iter().enumerate().map(|(s, id)| (*id, s)).collect();
        let slot = |id: &NodeId| slot_of.get(id).copied().ok_or_else(|| Error::invalid("function", format!("graph node {id} is missing")));
        // The last step reading each slot; outputs are read at the end and never freed.
        let mut last = vec![None; kept.len()];
        let mut steps = Vec::with_capacity(kept.len());
        for (s, id) in kept.iter().enumerate() {
            let n = g.node(*id).ok_or_else(|| Error::invalid("function", format!("graph node {id} is missing")))?;
            let args = n.inputs.iter().map(slot).collect::<Result<SmallVec<[usize; 3]>>>()?;
            for a in &args {
                last[*a] = Some(s);
            }
            let op = match &n.op {
                NodeOp::Input(i) => StepOp::Input(*i),
                NodeOp::Const(t) => StepOp::Const(t.clone()),
                NodeOp::Prim(p) => StepOp::Prim(p.clone()),
                NodeOp::Print => StepOp::Print,
            };
            steps.push(Step { op, args, free: SmallVec::new(), node: *id, loc: n.loc });
        }
        let outputs = g.outputs.iter().map(slot).collect::<Result<Vec<_>>>()?;
        for (s, l) in last.iter().enumerate() {
            if let Some(step) = l {
                if !outputs.contains(&s) {
                    steps[*step].free.push(s);
                }
            }
        }
        Ok(Plan { steps, outputs })
    }

    /// Runs the plan on concrete arguments (the function's tensor arguments, in order).
    pub(crate) fn run(&self, args: &[&Tensor]) -> Result<Vec<Tensor>> {
        let mut slots: Vec<Option<Tensor>> = vec![None; self.steps.len()];
        for (s, step) in self.steps.iter().enumerate() {
            let value = {
                let ins: SmallVec<[&Tensor; 3]> = step.args.iter().filter_map(|a| slots[*a].as_ref()).collect();
                if ins.len() != step.args.len() {
                    return Err(Error::invalid("function", format!("graph node {} ran before its inputs", step.node)));
                }
                match &step.op {
                    StepOp::Input(i) => args.get(*i).map(|t| (*t).clone()).ok_or_else(|| Error::invalid("function", format!("missing argument {i}")))?,
                    StepOp::Const(t) => t.clone(),
                    StepOp::Prim(p) => crate::op::execute(p, &ins).map_err(|e| match step.loc {
                        Some(l) => e.at(l.in_node(step.node.0)),
                        None => e,
                    })?,
                    StepOp::Print => {
                        let t = ins.first().map(|t| (*t).clone()).ok_or_else(|| Error::invalid("print", "no input"))?;
                        crate::ops::print::emit(&t);
                        t
                    }
                }
            };
            slots[s] = Some(value);
            for f in &step.free {
                slots[*f] = None;
            }
        }
        self.outputs.iter().map(|o| slots[*o].clone().ok_or_else(|| Error::invalid("function", "an output was not computed"))).collect()
    }
}
