//! Running a traced graph: compiled once into a `Plan` (steps in creation order, which is
//! program order and a topological order; dead nodes pruned; side effects kept; each buffer
//! freed right after its last consumer), then run on every call with the eager kernels.
//! Branch and loop graphs are compiled into sub-plans.

use std::sync::Arc;

use smallvec::SmallVec;

use super::ir::{Graph, NodeId, NodeOp};
use crate::error::{Error, Loc, Result};
use crate::op::PrimOp;
use crate::tensor::Tensor;
use crate::variable::{AssignKind, Variable};

enum StepOp {
    Input(usize),
    Const(Tensor),
    Prim(PrimOp),
    Print,
    Read(Variable),
    Assign(Variable, AssignKind),
    Cond { then: Arc<Plan>, otherwise: Arc<Plan>, n_then: usize },
    While { cond: Arc<Plan>, body: Arc<Plan>, n_vars: usize, n_cond: usize },
    Project(usize),
}

struct Step {
    op: StepOp,
    args: SmallVec<[usize; 3]>,
    /// Slots whose last reader is this step: dropped right after it runs.
    free: SmallVec<[usize; 3]>,
    node: NodeId,
    loc: Option<Loc>,
}

/// A slot's value: one tensor, or the outputs of a cond or while node.
#[derive(Clone)]
enum Value {
    One(Tensor),
    Many(Vec<Tensor>),
}

/// A graph compiled for execution. Slot `i` holds the value of the `i`-th kept node.
pub(crate) struct Plan {
    steps: Vec<Step>,
    outputs: Vec<usize>,
}

fn missing(id: NodeId) -> Error {
    Error::invalid("function", format!("graph node {id} is missing"))
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
        // Argument nodes keep their slots even when unused, so arguments line up.
        let kept: Vec<NodeId> = ids.into_iter().filter(|id| live.contains(id) || g.inputs.contains(id)).collect();
        let slot_of: std::collections::HashMap<NodeId, usize> = kept.iter().enumerate().map(|(s, id)| (*id, s)).collect();
        let slot = |id: &NodeId| slot_of.get(id).copied().ok_or_else(|| missing(*id));
        let mut last = vec![None; kept.len()];
        let mut steps = Vec::with_capacity(kept.len());
        for (s, id) in kept.iter().enumerate() {
            let n = g.node(*id).ok_or_else(|| missing(*id))?;
            let args = n.inputs.iter().map(slot).collect::<Result<SmallVec<[usize; 3]>>>()?;
            for a in &args {
                last[*a] = Some(s);
            }
            let op = match &n.op {
                NodeOp::Input(i) => StepOp::Input(*i),
                NodeOp::Const(t) => StepOp::Const(t.clone()),
                NodeOp::Prim(p) => StepOp::Prim(p.clone()),
                NodeOp::Print => StepOp::Print,
                NodeOp::ReadVariable(v) => StepOp::Read(v.clone()),
                NodeOp::AssignVariable(v, k) => StepOp::Assign(v.clone(), *k),
                NodeOp::Cond { then, otherwise, n_then } => StepOp::Cond {
                    then: Arc::new(Plan::compile(then)?),
                    otherwise: Arc::new(Plan::compile(otherwise)?),
                    n_then: *n_then,
                },
                NodeOp::While { cond, body, n_vars, n_cond } => StepOp::While {
                    cond: Arc::new(Plan::compile(cond)?),
                    body: Arc::new(Plan::compile(body)?),
                    n_vars: *n_vars,
                    n_cond: *n_cond,
                },
                NodeOp::Project(k) => StepOp::Project(*k),
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

    /// Runs the plan on concrete arguments (the graph's inputs, in order).
    pub(crate) fn run(&self, args: &[&Tensor]) -> Result<Vec<Tensor>> {
        let mut slots: Vec<Option<Value>> = vec![None; self.steps.len()];
        for (s, step) in self.steps.iter().enumerate() {
            let value = self.step(step, &slots, args).map_err(|e| match step.loc {
                Some(l) => e.at(l.in_node(step.node.0)),
                None => e,
            })?;
            slots[s] = Some(value);
            for f in &step.free {
                slots[*f] = None;
            }
        }
        self.outputs
            .iter()
            .map(|o| match slots[*o].take() {
                Some(Value::One(t)) => Ok(t),
                _ => Err(Error::invalid("function", "an output was not computed")),
            })
            .collect()
    }

    fn step(&self, step: &Step, slots: &[Option<Value>], args: &[&Tensor]) -> Result<Value> {
        let ins: SmallVec<[&Tensor; 3]> = step
            .args
            .iter()
            .filter_map(|a| match &slots[*a] {
                Some(Value::One(t)) => Some(t),
                _ => None,
            })
            .collect();
        let arity = |want: usize| -> Result<()> {
            if ins.len() == want { Ok(()) } else { Err(Error::invalid("function", format!("graph node {} ran before its inputs", step.node))) }
        };
        Ok(match &step.op {
            StepOp::Input(i) => Value::One(args.get(*i).map(|t| (*t).clone()).ok_or_else(|| Error::invalid("function", format!("missing argument {i}")))?),
            StepOp::Const(t) => Value::One(t.clone()),
            StepOp::Prim(p) => {
                arity(step.args.len())?;
                Value::One(crate::op::execute(p, &ins)?)
            }
            StepOp::Print => {
                arity(1)?;
                crate::ops::print::emit(ins[0]); // ok: arity checked
                Value::One(ins[0].clone())
            }
            StepOp::Read(v) => Value::One(v.current()),
            StepOp::Assign(v, k) => {
                arity(1)?;
                v.apply(ins[0], *k)?;
                Value::One(v.current())
            }
            StepOp::Project(k) => {
                let src = step.args.first().and_then(|a| slots[*a].as_ref());
                match src {
                    Some(Value::Many(v)) => Value::One(v.get(*k).cloned().ok_or_else(|| Error::invalid("function", "projection out of range"))?),
                    _ => return Err(Error::invalid("function", "projection of a missing value")),
                }
            }
            StepOp::Cond { then, otherwise, n_then } => {
                arity(step.args.len())?;
                let pred = ins[0].to_bool_impl("cond")?;
                let outs = if pred { then.run(&ins[1..1 + n_then])? } else { otherwise.run(&ins[1 + n_then..])? };
                Value::Many(outs)
            }
            StepOp::While { cond, body, n_vars, n_cond } => {
                arity(step.args.len())?;
                let (vars, caps) = ins.split_at(*n_vars);
                let (cond_caps, body_caps) = caps.split_at(*n_cond);
                let mut vars: Vec<Tensor> = vars.iter().map(|t| (*t).clone()).collect();
                loop {
                    let mut a: Vec<&Tensor> = vars.iter().collect();
                    a.extend(cond_caps.iter().copied());
                    let c = cond.run(&a)?;
                    let go = c.first().ok_or_else(|| Error::invalid("while_loop", "cond returned nothing"))?.to_bool_impl("while_loop")?;
                    if !go {
                        break;
                    }
                    let mut a: Vec<&Tensor> = vars.iter().collect();
                    a.extend(body_caps.iter().copied());
                    vars = body.run(&a)?;
                }
                Value::Many(vars)
            }
        })
    }
}
