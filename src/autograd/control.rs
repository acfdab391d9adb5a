//! Gradients through what is not a primitive: a traced `ff::cond` (one `cond` node holding
//! two branch graphs), a traced `ff::while_loop` (no gradient: a typed error), and a call of
//! a traced function under an eager tape (one tape entry whose backward pass is a traced,
//! cached vector-Jacobian-product graph).
//!
//! All three differentiate a recorded graph by *replaying* it: walking its nodes in program
//! order and calling the same primitives again through `op::apply`, under an inner tape, in
//! the trace where the backward pass is being built. The replay recomputes the forward values
//! it needs (the branch's or function's intermediates are not kept), which keeps the forward
//! graph unchanged.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::rules::zeros_like;
use super::tape::{GradientOptions, GradientTape, TapeOptions, UnconnectedGradients};
use crate::dispatch::tape::{BackwardFn, record_custom};
use crate::error::{Error, Loc, Result};
use crate::graph::ir::{Graph, NodeId, NodeOp};
use crate::tensor::Tensor;
use crate::variable::Variable;

enum Val {
    One(Tensor),
    Many(Vec<Tensor>),
}

/// The float variables a graph (or its nested branch and loop graphs) reads, once each.
pub(crate) fn variables_read(g: &Graph, out: &mut Vec<Variable>) {
    for id in g.node_ids() {
        let Some(node) = g.node(id) else { continue };
        match &node.op {
            NodeOp::ReadVariable(v) if v.dtype().is_float() && !out.iter().any(|w| w.id() == v.id()) => {
                out.push(v.clone());
            }
            NodeOp::Cond { then, otherwise, .. } => {
                variables_read(then, out);
                variables_read(otherwise, out);
            }
            NodeOp::While { cond, body, .. } => {
                variables_read(cond, out);
                variables_read(body, out);
            }
            _ => {}
        }
    }
}

/// Runs graph `g` again, op by op, on `inputs` (its arguments), in the current context (a
/// trace being built, usually): each primitive goes through `op::apply`, so active tapes
/// record it. A variable in `vars` reads as the given tensor; others are read anew.
pub(crate) fn replay(g: &Graph, inputs: &[Tensor], vars: &HashMap<u64, Tensor>, loc: Loc) -> Result<Vec<Tensor>> {
    let mut vals: HashMap<NodeId, Val> = HashMap::new();
    let one = |vals: &HashMap<NodeId, Val>, id: &NodeId| -> Result<Tensor> {
        match vals.get(id) {
            Some(Val::One(t)) => Ok(t.clone()),
            _ => Err(Error::invalid("gradient", format!("internal error: replayed node {id} has no single value"))),
        }
    };
    for id in g.node_ids() {
        let Some(node) = g.node(id) else { continue };
        let ins: Vec<Tensor> = node.inputs.iter().map(|i| one(&vals, i)).collect::<Result<_>>()?;
        let at = node.loc.unwrap_or(loc);
        let v = match &node.op {
            NodeOp::Input(i) => Val::One(
                inputs.get(*i).cloned().ok_or_else(|| Error::invalid("gradient", format!("missing input {i}")))?,
            ),
            NodeOp::Const(t) => Val::One(t.clone()),
            NodeOp::Prim(p) => {
                let refs: Vec<&Tensor> = ins.iter().collect();
                Val::One(crate::dispatch::apply(p.clone(), &refs, at)?)
            }
            // Printing belongs to the forward pass only.
            NodeOp::Print => Val::One(ins.first().cloned().ok_or_else(|| Error::invalid("print", "no input"))?),
            NodeOp::ReadVariable(v) => Val::One(match vars.get(&v.id()) {
                Some(t) => t.clone(),
                None => v.value(),
            }),
            NodeOp::AssignVariable(..) => {
                return Err(Error::NoGradient {
                    op: "assign",
                    message: "the gradient flows through a traced cond branch or function that assigns a variable, and replaying it for the backward pass would assign again; move the assignment out of the differentiated code".into(),
                    location: Some(at),
                });
            }
            NodeOp::Cond { then, otherwise, n_then } => {
                let (pred, caps) = ins.split_first().ok_or_else(|| Error::invalid("cond", "no predicate"))?;
                let (tc, ec) = caps.split_at((*n_then).min(caps.len()));
                Val::Many(crate::ops::control::cond(
                    pred,
                    || replay(then, tc, vars, at),
                    || replay(otherwise, ec, vars, at),
                )?)
            }
            NodeOp::While { cond, body, n_vars, n_cond } => {
                let (lv, caps) = ins.split_at((*n_vars).min(ins.len()));
                let (cc, bc) = caps.split_at((*n_cond).min(caps.len()));
                let with = |v: &[Tensor], c: &[Tensor]| -> Vec<Tensor> { v.iter().chain(c).cloned().collect() };
                Val::Many(crate::ops::control::while_loop(
                    |v| {
                        replay(cond, &with(v, cc), vars, at)?
                            .into_iter()
                            .next()
                            .ok_or_else(|| Error::invalid("while_loop", "cond returned nothing"))
                    },
                    |v| replay(body, &with(v, bc), vars, at),
                    lv.to_vec(),
                )?)
            }
            NodeOp::Project(k) => {
                let src = node.inputs.first().and_then(|i| vals.get(i));
                match src {
                    Some(Val::Many(v)) => Val::One(
                        v.get(*k).cloned().ok_or_else(|| Error::invalid("gradient", "projection out of range"))?,
                    ),
                    _ => return Err(Error::invalid("gradient", "internal error: projection of a missing value")),
                }
            }
            NodeOp::Fused(_) => {
                return Err(Error::invalid("gradient", "internal error: a fused node in a graph being differentiated"));
            }
        };
        vals.insert(id, v);
    }
    g.outputs.iter().map(|o| one(&vals, o)).collect()
}

/// The output gradients a backward function gets, with zeros where none flowed in.
fn dense_dys(outputs: &[Tensor], dys: &[Option<Tensor>], loc: Loc) -> Result<Vec<Option<Tensor>>> {
    outputs
        .iter()
        .zip(dys)
        .map(|(o, d)| {
            if !o.dtype().is_float() {
                return Ok(None);
            }
            match d {
                Some(d) => Ok(Some(d.clone())),
                None => zeros_like(o, loc).map(Some),
            }
        })
        .collect()
}

/// The gradients of `graph`'s float outputs (weighted by `dys`) with respect to the needed
/// ones of `sources`, replaying it on `inputs` under a fresh tape in the current context.
/// `vars` maps each variable the graph reads to the tensor standing for its read (a source).
fn vjp_of_graph(
    graph: &Graph,
    inputs: &[Tensor],
    vars: &HashMap<u64, Tensor>,
    sources: &[Tensor],
    dys: &[Option<Tensor>],
    loc: Loc,
) -> Result<Vec<Tensor>> {
    let tape = GradientTape::with_options(TapeOptions { persistent: false, watch_accessed_variables: false });
    for s in sources {
        tape.watch(s);
    }
    let outs = replay(graph, inputs, vars, loc)?;
    let (mut targets, mut seeds) = (Vec::new(), Vec::new());
    for (o, d) in outs.iter().zip(dys) {
        if let Some(d) = d {
            targets.push(o);
            seeds.push(d.clone());
        }
    }
    let opts = GradientOptions { unconnected: UnconnectedGradients::Zero, output_gradients: Some(seeds) };
    let gs = tape.gradient_impl(&targets, sources, &opts, loc)?;
    gs.into_iter()
        .zip(sources)
        .map(|(g, s)| match g {
            Some(g) => Ok(g),
            None => zeros_like(s, loc),
        })
        .collect()
}

/// Records a traced `cond` node (inputs: the captures of each branch) on the tapes that see
/// a connected input. Variables read inside the branches become extra inputs (one read each
/// in the enclosing graph), so gradients reach them too.
pub(crate) fn record_cond(
    pred: &Tensor,
    then_caps: &[Tensor],
    else_caps: &[Tensor],
    then_g: Arc<Graph>,
    else_g: Arc<Graph>,
    outs: &[Tensor],
) {
    let mut vars = Vec::new();
    variables_read(&then_g, &mut vars);
    variables_read(&else_g, &mut vars);
    let reads: Vec<Tensor> = vars.iter().map(Variable::value).collect();
    let (nt, ne) = (then_caps.len(), else_caps.len());
    let inputs: Vec<Tensor> = then_caps.iter().chain(else_caps).chain(&reads).cloned().collect();
    let pred = pred.clone();
    let backward: BackwardFn = Rc::new(move |inputs, outputs, dys, need, loc| {
        let dys = dense_dys(outputs, dys, loc)?;
        let wanted: Vec<usize> = (0..inputs.len()).filter(|&k| need[k] && inputs[k].dtype().is_float()).collect();
        if wanted.is_empty() {
            return Ok(vec![None; inputs.len()]);
        }
        // One branch's gradients: its own captures and the variables through a replay, zeros
        // for the other branch's captures (the same types either way, as cond requires).
        let branch = |g: &Graph, lo: usize, hi: usize| -> Result<Vec<Tensor>> {
            let mine: Vec<usize> = wanted.iter().copied().filter(|&k| (lo..hi).contains(&k) || k >= nt + ne).collect();
            let var_map: HashMap<u64, Tensor> =
                vars.iter().zip(&inputs[nt + ne..]).map(|(v, t)| (v.id(), t.clone())).collect();
            let sources: Vec<Tensor> = mine.iter().map(|&k| inputs[k].clone()).collect();
            let gs = vjp_of_graph(g, &inputs[lo..hi], &var_map, &sources, &dys, loc)?;
            let mut it = gs.into_iter();
            wanted
                .iter()
                .map(|&k| {
                    if mine.contains(&k) {
                        it.next().ok_or_else(|| Error::invalid("cond", "missing gradient"))
                    } else {
                        zeros_like(&inputs[k], loc)
                    }
                })
                .collect()
        };
        let gs: Vec<Tensor> =
            crate::ops::control::cond(&pred, || branch(&then_g, 0, nt), || branch(&else_g, nt, nt + ne))?;
        let mut out = vec![None; inputs.len()];
        for (k, g) in wanted.into_iter().zip(gs) {
            out[k] = Some(g);
        }
        Ok(out)
    });
    record_custom(backward, &inputs, outs);
}

/// Records a traced `while_loop` node: a gradient that must flow through it is an error.
pub(crate) fn record_while(inputs: &[Tensor], outs: &[Tensor]) {
    let backward: BackwardFn = Rc::new(|_, _, _, _, loc| {
        Err(Error::NoGradient {
            op: "while_loop",
            message: "gradients through a traced while_loop are not supported; unroll the loop with a host `for` (its ops are then recorded one by one), or compute the gradient eagerly, where the loop just runs".into(),
            location: Some(loc),
        })
    });
    record_custom(backward, inputs, outs);
}

/// Records a call of a traced function under an eager tape: inputs are the tensor arguments
/// and one read of each float variable the graph reads. Its backward pass runs a graph made
/// once per set of needed inputs (the VJP: the forward replayed under a tape, then its
/// gradient), cached on the concrete function. Outputs that are argument handles get new
/// handles, so each output is the call's own.
pub(crate) fn record_call(cf: &Arc<crate::function::ConcreteFunction>, args: &[&Tensor], outs: &mut [Tensor]) {
    for o in outs.iter_mut() {
        if args.iter().any(|a| a.handle_id() == o.handle_id()) {
            *o = o.fresh_handle();
        }
    }
    let mut vars = Vec::new();
    variables_read(cf.graph(), &mut vars);
    let reads: Vec<Tensor> = vars.iter().map(Variable::value).collect();
    let n_args = args.len();
    let inputs: Vec<Tensor> = args.iter().map(|t| (*t).clone()).chain(reads).collect();
    let cf = cf.clone();
    let backward: BackwardFn = Rc::new(move |inputs, outputs, dys, need, loc| {
        let dys = dense_dys(outputs, dys, loc)?;
        let mask: Vec<bool> = (0..inputs.len()).map(|k| need[k] && inputs[k].dtype().is_float()).collect();
        if !mask.iter().any(|&b| b) {
            return Ok(vec![None; inputs.len()]);
        }
        let plan = cf.vjp_plan(&mask, &dys, n_args, &vars, loc)?;
        let mut args: Vec<&Tensor> = inputs.iter().collect();
        args.extend(dys.iter().flatten());
        let gs = plan.run(&args)?;
        let mut out = vec![None; inputs.len()];
        for (k, g) in (0..inputs.len()).filter(|&k| mask[k]).zip(gs) {
            out[k] = Some(g);
        }
        Ok(out)
    });
    record_custom(backward, &inputs, outs);
}

/// The VJP graph of `graph` for the needed inputs `mask`: arguments are the call's inputs
/// (tensor arguments, then one tensor per variable in `vars`), then one output gradient per
/// float output; outputs are the gradients of the needed inputs, in order.
pub(crate) fn trace_vjp(
    graph: &Graph,
    specs: &[(crate::shape::Shape, crate::dtype::DType)],
    dys: &[(crate::shape::Shape, crate::dtype::DType)],
    mask: &[bool],
    n_args: usize,
    vars: &[Variable],
    loc: Loc,
) -> Result<Graph> {
    use crate::graph::trace::{TraceGraph, output_node, with_trace};
    let trace = TraceGraph::new(false);
    let ins: Vec<Tensor> =
        specs.iter().enumerate().map(|(i, (s, d))| trace.add_input(i, &format!("x{i}"), s.clone(), *d)).collect();
    let gys: Vec<Tensor> = dys
        .iter()
        .enumerate()
        .map(|(j, (s, d))| trace.add_input(specs.len() + j, &format!("dy{j}"), s.clone(), *d))
        .collect();
    let body = || -> Result<Vec<crate::graph::ir::NodeId>> {
        let var_map: HashMap<u64, Tensor> = vars.iter().zip(&ins[n_args..]).map(|(v, t)| (v.id(), t.clone())).collect();
        let sources: Vec<Tensor> = (0..ins.len()).filter(|&k| mask[k]).map(|k| ins[k].clone()).collect();
        // Float outputs get their gradient inputs, in order.
        let mut it = gys.iter();
        let outs_types: Vec<bool> =
            graph.outputs.iter().map(|o| graph.node(*o).is_some_and(|n| n.dtype.is_float())).collect();
        let seeds: Vec<Option<Tensor>> =
            outs_types.iter().map(|f| if *f { it.next().cloned() } else { None }).collect();
        let gs = vjp_of_graph(graph, &ins[..n_args], &var_map, &sources, &seeds, loc)?;
        gs.iter().map(|t| output_node(&trace, t)).collect()
    };
    let outputs = with_trace(&trace, body)?;
    let mut g = std::mem::take(&mut *trace.lock());
    g.outputs = outputs;
    g.verify()?;
    Ok(g)
}
