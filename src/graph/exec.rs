//! Running a traced graph: compiled once into a `Plan` (steps in creation order, which is
//! program order and a topological order, except that a merged weight update runs as soon
//! as it may, see [`schedule`]; dead nodes pruned; side effects kept; each buffer freed
//! right after its last consumer), then run on every call with the eager kernels.
//! Branch and loop graphs are compiled into sub-plans.

use std::sync::Arc;

use smallvec::SmallVec;

use super::ir::{Graph, NodeId, NodeOp};
use crate::dtype::DType;
use crate::error::{Error, Loc, Result};
use crate::prim::fusion::Fusion;
use crate::prim::{Elementwise, PrimOp};
use crate::runtime::placement::GpuCtx;
use crate::runtime::variable::{AssignKind, Variable};
use crate::tensor::Tensor;
use crate::tensor::storage::Buffer;

enum StepOp {
    Input(usize),
    Const(Tensor),
    /// A primitive; with its output type when every shape around it was known at trace
    /// time (the call's signature check guarantees them, so inference is skipped).
    Prim(PrimOp, Option<(crate::shape::Shape, crate::dtype::DType)>),
    Print,
    Read(Variable),
    Assign(Variable, AssignKind),
    Cond {
        then: Arc<Plan>,
        otherwise: Arc<Plan>,
        n_then: usize,
    },
    While {
        cond: Arc<Plan>,
        body: Arc<Plan>,
        n_vars: usize,
        n_cond: usize,
    },
    Project(usize),
    /// A fused kernel, with its output type when known at trace time.
    Fused(Arc<Fusion>, Option<(crate::shape::Shape, crate::dtype::DType)>),
    /// `v += beta · op(a) · op(b)`: an `assign_add`/`assign_sub` of a matmul (times a
    /// constant) that nothing else reads, run as one accumulating product into the
    /// variable's buffer (TensorFlow's fused ResourceApply* kernels do the same).
    AssignMatMul {
        var: Variable,
        ta: bool,
        tb: bool,
        beta: f64,
    },
}

impl StepOp {
    /// The profiler's name for a step that does work; `None` for bookkeeping steps.
    fn profiled_name(&self) -> Option<&'static str> {
        match self {
            StepOp::Input(_) | StepOp::Const(_) | StepOp::Project(_) => None,
            StepOp::Prim(p, _) => Some(p.name()),
            StepOp::Fused(f, _) => Some(f.name()),
            StepOp::Print => Some("print"),
            StepOp::Read(_) => Some("read_variable"),
            StepOp::Assign(..) => Some("assign_variable"),
            StepOp::AssignMatMul { .. } => Some("assign_matmul"),
            StepOp::Cond { .. } => Some("cond"),
            StepOp::While { .. } => Some("while_loop"),
        }
    }
}

struct Step {
    op: StepOp,
    args: SmallVec<[usize; 3]>,
    /// The argument position whose buffer the memory plan lets this step overwrite.
    reuse: Option<usize>,
    /// Slots whose last reader is this step: dropped right after it runs.
    free: SmallVec<[usize; 3]>,
    node: NodeId,
    loc: Option<Loc>,
}

/// A slot's value: one tensor, a borrowed argument, or the outputs of a cond or while node.
#[derive(Clone)]
enum Value<'a> {
    One(Tensor),
    Arg(&'a Tensor),
    Many(Vec<Tensor>),
}

impl Value<'_> {
    fn tensor(&self) -> Option<&Tensor> {
        match self {
            Value::One(t) => Some(t),
            Value::Arg(t) => Some(t),
            Value::Many(_) => None,
        }
    }
}

/// A graph compiled for execution. Slot `i` holds the value of the `i`-th kept node.
pub(crate) struct Plan {
    steps: Vec<Step>,
    /// The order the steps run in (see [`schedule`]).
    order: Vec<usize>,
    outputs: Vec<usize>,
    /// Per slot, whether its tensor is made by this plan (so it may be reused in place);
    /// arguments, constants and variable reads are shared with the caller and never are.
    owned: Vec<bool>,
    /// Device copies of this plan's constants, per (GPU ordinal, slot): uploaded on the first
    /// call placed on that GPU, reused by every later one.
    gpu_consts: std::sync::Mutex<std::collections::HashMap<(usize, usize), Tensor>>,
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
            if live.insert(id)
                && let Some(n) = g.node(id)
            {
                stack.extend(n.inputs.iter().copied());
            }
        }
        let merged = merged_updates(g);
        // Argument nodes keep their slots even when unused, so arguments line up. A matmul
        // merged into its update runs inside the update's step.
        let kept: Vec<NodeId> = ids
            .into_iter()
            .filter(|id| (live.contains(id) || g.inputs.contains(id)) && !merged.values().any(|m| m.matmul == *id))
            .collect();
        let slot_of: std::collections::HashMap<NodeId, usize> =
            kept.iter().enumerate().map(|(s, id)| (*id, s)).collect();
        let slot = |id: &NodeId| slot_of.get(id).copied().ok_or_else(|| missing(*id));
        let mut steps = Vec::with_capacity(kept.len());
        for id in &kept {
            let n = g.node(*id).ok_or_else(|| missing(*id))?;
            let merge = merged.get(id);
            let inputs = match merge {
                Some(m) => &m.operands[..],
                None => &n.inputs[..],
            };
            let args = inputs.iter().map(slot).collect::<Result<SmallVec<[usize; 3]>>>()?;
            let known = n.shape.is_fully_known()
                && n.inputs.iter().all(|i| g.node(*i).is_some_and(|m| m.shape.is_fully_known()));
            let op = match &n.op {
                NodeOp::Input(i) => StepOp::Input(*i),
                NodeOp::Const(t) => StepOp::Const(t.clone()),
                NodeOp::Prim(p) => StepOp::Prim(p.clone(), known.then(|| (n.shape.clone(), n.dtype))),
                NodeOp::Fused(f) => StepOp::Fused(f.clone(), known.then(|| (n.shape.clone(), n.dtype))),
                NodeOp::Print => StepOp::Print,
                NodeOp::ReadVariable(v) => StepOp::Read(v.clone()),
                NodeOp::AssignVariable(v, _) if let Some(m) = merge => {
                    StepOp::AssignMatMul { var: v.clone(), ta: m.ta, tb: m.tb, beta: m.beta }
                }
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
            let reuse = g.memory.as_ref().and_then(|m| m.in_place.get(id).copied());
            steps.push(Step { op, args, reuse, free: SmallVec::new(), node: *id, loc: n.loc });
        }
        let outputs = g.outputs.iter().map(slot).collect::<Result<Vec<_>>>()?;
        let owned =
            steps.iter().map(|st| matches!(st.op, StepOp::Prim(..) | StepOp::Fused(..) | StepOp::Project(_))).collect();
        let order = schedule(&steps);
        let mut last = vec![None; steps.len()];
        for &s in &order {
            for a in &steps[s].args {
                last[*a] = Some(s);
            }
        }
        for (s, l) in last.iter().enumerate() {
            if let Some(step) = l
                && !outputs.contains(&s)
            {
                steps[*step].free.push(s);
            }
        }
        Ok(Plan { steps, order, outputs, owned, gpu_consts: Default::default() })
    }

    /// Runs the plan on concrete arguments (the graph's inputs, in order).
    ///
    /// Placed on a GPU (a `with_device` scope, or an argument living there), every step runs
    /// there, constants are uploaded once per plan, and the call is one queue submission.
    pub(crate) fn run(&self, args: &[&Tensor]) -> Result<Vec<Tensor>> {
        match crate::runtime::placement::plan_gpu(args)? {
            Some(ctx) => crate::runtime::placement::gpu_batch(|| self.run_on(args, Some(&ctx))),
            None => self.run_on(args, None),
        }
    }

    fn run_on(&self, args: &[&Tensor], gpu: Option<&GpuCtx>) -> Result<Vec<Tensor>> {
        let _awake = if gpu.is_none() { crate::runtime::host::KeepAwake::start() } else { None };
        let mut slots: Vec<Option<Value<'_>>> = vec![None; self.steps.len()];
        for &s in &self.order {
            let step = &self.steps[s];
            let _span = step
                .op
                .profiled_name()
                .map(|n| crate::profiler::op_span(n, gpu.map_or(crate::Device::Cpu, |c| c.device_id())));
            // In-place steps reuse host buffers: a plan on the GPU allocates device buffers.
            let reused = if gpu.is_none() { self.in_place(step, &mut slots) } else { None };
            let value = match reused {
                Some(v) => v,
                None => self.step(step, &slots, args, (gpu, s)),
            }
            .map_err(|e| match step.loc {
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
            .enumerate()
            // CSE may make two outputs one node: all but its last occurrence get a clone.
            .map(|(k, o)| match if self.outputs[k + 1..].contains(o) { slots[*o].clone() } else { slots[*o].take() } {
                Some(Value::One(t)) => Ok(t),
                Some(Value::Arg(t)) => Ok(t.clone()),
                _ => Err(Error::invalid("function", "an output was not computed")),
            })
            .collect()
    }

    /// Runs a step over the buffer of the input the memory plan chose (its last use, same
    /// shape and dtype), when that input has no other handle: no allocation. `None` when
    /// it does not apply; the input is then left where it was.
    fn in_place<'a>(&self, step: &Step, slots: &mut [Option<Value<'a>>]) -> Option<Result<Value<'a>>> {
        use crate::runtime::host::{binary_inplace, unary_inplace};
        let k = step.reuse?;
        let a = *step.args.get(k)?;
        let (shape, dtype) = match &step.op {
            StepOp::Prim(_, Some(t)) | StepOp::Fused(_, Some(t)) => t,
            _ => return None,
        };
        let ok = self.owned[a]
            && step.free.contains(&a)
            && step.args.iter().filter(|x| **x == a).count() == 1
            && matches!(&slots[a], Some(Value::One(t)) if t.shape() == shape && t.dtype() == *dtype);
        let Some(Value::One(t)) = ok.then(|| slots[a].take()).flatten() else { return None };
        let done = match &step.op {
            StepOp::Prim(p, _) => match p.elementwise() {
                Some(Elementwise::Unary(u)) => unary_inplace(u, t),
                Some(Elementwise::Binary(b)) => {
                    match step.args.get(1 - k.min(1)).and_then(|o| slots[*o].as_ref()).and_then(Value::tensor) {
                        Some(other) => binary_inplace(b, t, other, k == 1),
                        None => Err(t),
                    }
                }
                None => Err(t),
            },
            StepOp::Fused(f, _) => {
                // The output takes over the input's buffer; the input's handle stays behind,
                // hollow, for its shape (the kernel reads those elements from the output).
                let mut t = t;
                let Some(buf) = t.host_buffer_mut().map(|b| std::mem::replace(b, Buffer::F32(Vec::new()))) else {
                    slots[a] = Some(Value::One(t));
                    return None;
                };
                let ins: Option<SmallVec<[&Tensor; 4]>> = step
                    .args
                    .iter()
                    .enumerate()
                    .map(|(j, s)| if j == k { Some(&t) } else { slots[*s].as_ref().and_then(Value::tensor) })
                    .collect();
                let Some(ins) = ins else {
                    return Some(Err(Error::invalid(
                        "function",
                        format!("graph node {} ran before its inputs", step.node),
                    )));
                };
                return Some(crate::runtime::host::run_fused(f, &ins, shape.clone(), Some((k, buf))).map(Value::One));
            }
            _ => Err(t),
        };
        match done {
            Ok(t) => Some(Ok(Value::One(t))),
            Err(t) => {
                slots[a] = Some(Value::One(t));
                None
            }
        }
    }

    fn step<'a>(
        &self,
        step: &Step,
        slots: &[Option<Value<'a>>],
        args: &[&'a Tensor],
        (gpu, slot): (Option<&GpuCtx>, usize),
    ) -> Result<Value<'a>> {
        let ins: SmallVec<[&Tensor; 3]> =
            step.args.iter().filter_map(|a| slots[*a].as_ref().and_then(Value::tensor)).collect();
        let arity = |want: usize| -> Result<()> {
            if ins.len() == want {
                Ok(())
            } else {
                Err(Error::invalid("function", format!("graph node {} ran before its inputs", step.node)))
            }
        };
        Ok(match &step.op {
            StepOp::Input(i) => Value::Arg(
                args.get(*i).copied().ok_or_else(|| Error::invalid("function", format!("missing argument {i}")))?,
            ),
            StepOp::Const(t) => match gpu {
                // Scalars stay on the host: elementwise kernels take them as parameters.
                Some(ctx) if t.rank() > 0 && ctx.stores(t.dtype()) => {
                    let key = (ctx.ordinal, slot);
                    let mut cache = self.gpu_consts.lock().unwrap_or_else(|p| p.into_inner());
                    let g = match cache.get(&key) {
                        Some(g) => g.clone(),
                        None => {
                            let g = crate::runtime::placement::copy_to(t, ctx.device_id(), "function")?;
                            cache.insert(key, g.clone());
                            g
                        }
                    };
                    Value::One(g)
                }
                _ => Value::One(t.clone()),
            },
            StepOp::Prim(p, known) => {
                arity(step.args.len())?;
                Value::One(match known {
                    Some((shape, dtype)) => crate::runtime::placement::run(p, &ins, shape.clone(), *dtype)?,
                    None => crate::runtime::placement::execute(p, &ins)?,
                })
            }
            StepOp::Fused(f, known) => {
                arity(step.args.len())?;
                let shape = match known {
                    Some((shape, _)) => shape.clone(),
                    None => f.infer(&ins)?.0,
                };
                Value::One(crate::runtime::placement::run_fused(f, &ins, shape)?)
            }
            StepOp::Print => {
                arity(1)?;
                crate::runtime::print::emit(ins[0]); // ok: arity checked
                Value::One(ins[0].clone())
            }
            StepOp::Read(v) => Value::One(v.current()),
            StepOp::Assign(v, k) => {
                arity(1)?;
                v.apply(ins[0], *k)?;
                Value::One(v.current())
            }
            StepOp::AssignMatMul { var, ta, tb, beta } => {
                arity(2)?;
                var.apply_matmul(ins[0], ins[1], *ta, *tb, *beta)?;
                Value::One(var.current())
            }
            StepOp::Project(k) => {
                let src = step.args.first().and_then(|a| slots[*a].as_ref());
                match src {
                    Some(Value::Many(v)) => Value::One(
                        v.get(*k).cloned().ok_or_else(|| Error::invalid("function", "projection out of range"))?,
                    ),
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
                    let go = c
                        .first()
                        .ok_or_else(|| Error::invalid("while_loop", "cond returned nothing"))?
                        .to_bool_impl("while_loop")?;
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

/// An update merged with the matmul it adds: the operands and the product's scale.
struct MergedUpdate {
    matmul: NodeId,
    operands: [NodeId; 2],
    ta: bool,
    tb: bool,
    beta: f64,
}

/// Finds `assign_add(v, matmul(a, b) [* c])` and `assign_sub(...)` where nothing else reads
/// the product, the operands are 2-D f32/f64 and `c` a constant scalar: the pattern of a
/// gradient-descent update of a weight matrix (`w -= lr * x^T · dz`). Keyed by the assign.
/// The order a plan's steps run in: creation order, except that each merged update
/// (`AssignMatMul`) moves up to just after the last step it must follow: the producers of
/// its operands; the reads of its variable that come before it (a read after an update sees
/// the new value); the steps that use such a read or a view of one (until they have run, the
/// read holds the buffer and the update would have to copy it instead of writing in place);
/// prints, branches, loops and other updates of the same variable. In a training step each
/// layer's update then runs as soon as its gradient's operands are ready, while they are
/// still in cache, rather than after the updates of the layers listed before it (the MLP's
/// output layer update, after the first layer's 800 KB product had evicted its operands:
/// 10 µs, against 6 µs right after its last operand). Updates of different variables commute.
/// Whether a primitive's output may share its input's buffer (a view, or the input itself
/// when the op changes nothing).
fn may_return_its_input(p: &PrimOp) -> bool {
    match p {
        PrimOp::Reshape(_)
        | PrimOp::Transpose(_)
        | PrimOp::BroadcastTo(_)
        | PrimOp::Cast(_)
        | PrimOp::Slice { .. }
        | PrimOp::Concat(_) => true,
        PrimOp::Unary(_)
        | PrimOp::Binary(_)
        | PrimOp::Select
        | PrimOp::Reduce { .. }
        | PrimOp::ArgReduce { .. }
        | PrimOp::Gather(_)
        | PrimOp::OneHot { .. }
        | PrimOp::MatMul { .. }
        | PrimOp::Softmax { .. }
        | PrimOp::Sparse(_) => false,
    }
}

fn schedule(steps: &[Step]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..steps.len()).collect();
    for s in 0..steps.len() {
        let StepOp::AssignMatMul { var, .. } = &steps[s].op else { continue };
        let id = var.id();
        // Slots that may share the variable's buffer: its reads, and views of them (args
        // always name earlier slots).
        let mut alias = vec![false; s];
        for t in 0..s {
            let view = match &steps[t].op {
                StepOp::Project(_) => true,
                StepOp::Prim(p, _) => may_return_its_input(p),
                _ => false,
            };
            let uses = steps[t].args.iter().any(|a| alias.get(*a).copied().unwrap_or(false));
            alias[t] = matches!(&steps[t].op, StepOp::Read(v) if v.id() == id) || (view && uses);
        }
        let must_follow = |t: usize| {
            steps[s].args.contains(&t)
                || alias.get(t).copied().unwrap_or(false)
                || steps[t].args.iter().any(|a| alias.get(*a).copied().unwrap_or(false))
                || match &steps[t].op {
                    StepOp::Print | StepOp::Cond { .. } | StepOp::While { .. } => true,
                    StepOp::Assign(v, _) | StepOp::AssignMatMul { var: v, .. } => v.id() == id,
                    _ => false,
                }
        };
        let Some(pos) = order.iter().position(|&x| x == s) else { continue };
        let at = order[..pos].iter().rposition(|&t| must_follow(t)).map_or(0, |p| p + 1);
        let moved = order.remove(pos);
        order.insert(at, moved);
    }
    order
}

fn merged_updates(g: &Graph) -> std::collections::HashMap<NodeId, MergedUpdate> {
    use crate::prim::BinaryOp;
    use crate::prim::fusion::{FusionKind, Instr};
    let mut out = std::collections::HashMap::new();
    for id in g.node_ids() {
        let Some(n) = g.node(id) else { continue };
        let NodeOp::AssignVariable(_, kind) = &n.op else { continue };
        let sign = match kind {
            AssignKind::Add => 1.0,
            AssignKind::Sub => -1.0,
            AssignKind::Set => continue,
        };
        let Some(&mm) = n.inputs.first() else { continue };
        let Some(p) = g.node(mm) else { continue };
        if g.use_count(mm) != 1 || g.outputs.contains(&mm) || !matches!(p.dtype, DType::F32 | DType::F64) {
            continue;
        }
        let (ta, tb, scale) = match &p.op {
            NodeOp::Prim(PrimOp::MatMul { transpose_a, transpose_b }) => (*transpose_a, *transpose_b, 1.0),
            NodeOp::Fused(f) => {
                let FusionKind::MatMul { transpose_a, transpose_b } = f.kind else { continue };
                let by_const =
                    matches!(f.program[..], [Instr::Binary(BinaryOp::Mul, 0, 1) | Instr::Binary(BinaryOp::Mul, 1, 0)])
                        && f.n_loads == 2;
                let c = p.inputs.get(2).and_then(|c| g.node(*c)).and_then(|c| match &c.op {
                    NodeOp::Const(t) if t.rank() == 0 => match t.dtype() {
                        DType::F32 => t.to_scalar::<f32>().ok().map(f64::from),
                        DType::F64 => t.to_scalar::<f64>().ok(),
                        _ => None,
                    },
                    _ => None,
                });
                match (by_const, c) {
                    (true, Some(c)) => (transpose_a, transpose_b, c),
                    _ => continue,
                }
            }
            _ => continue,
        };
        let [a, b] = [p.inputs.first(), p.inputs.get(1)];
        let (Some(&a), Some(&b)) = (a, b) else { continue };
        let two_d = |x: NodeId| g.node(x).is_some_and(|x| x.shape.rank() == 2 && x.dtype == p.dtype);
        if !two_d(a) || !two_d(b) {
            continue;
        }
        out.insert(id, MergedUpdate { matmul: mm, operands: [a, b], ta, tb, beta: sign * scale });
    }
    out
}
