//! Control flow on tensor values: `cond` and `while_loop`, and `Tensor::to_bool`.
//! Eagerly they just run (a concrete predicate picks a branch). Inside a traced function a
//! symbolic predicate makes both branches (or the loop's cond and body) be traced into
//! sub-graphs held by one `cond` or `while` node; outer values they read are captured as
//! inputs. A host `for` loop in a traced body is unrolled instead: that is the difference.

use std::sync::Arc;

use crate::dtype::{DType, Element};
use crate::error::{Error, Loc, Result};
use crate::function::Outputs;
use crate::graph::ir::{Graph, NodeId, NodeOp};
use crate::graph::trace::{TraceGraph, active, active_for, output_node, with_trace};
use crate::shape::Shape;
use crate::tensor::Tensor;

impl Tensor {
    /// The value of a one-element tensor as a host `bool` (`!= 0`). Inside a traced
    /// function a symbolic tensor has no value yet: `Error::NotAllowedInGraph` (use
    /// `ff::cond` / `ff::while_loop`, or debug with `run_functions_eagerly`).
    #[track_caller]
    pub fn to_bool(&self) -> Result<bool> {
        let loc = Loc::caller();
        if let Some(s) = self.symbol() {
            return Err(Error::NotAllowedInGraph {
                op: "to_bool",
                name: s.name.clone(),
                shape: self.shape().to_string(),
                dtype: self.dtype(),
                message: "its value does not exist until the graph runs; branch with ff::cond(&pred, || ..., || ...) or loop with ff::while_loop, or call ff::config::run_functions_eagerly(true) to debug".into(),
                location: Some(loc),
            });
        }
        self.to_bool_impl("to_bool").map_err(|e| e.at(loc))
    }

    pub(crate) fn to_bool_impl(&self, op: &'static str) -> Result<bool> {
        if self.num_elements() != 1 {
            return Err(Error::shape(op, "a one-element tensor as the condition", format!("shape {}", self.shape())));
        }
        // A GPU predicate is copied to the host (counted), as TensorFlow does for a cond.
        let host = self.to_host()?;
        crate::with_dtype!(self.dtype(), T => {
            let v = host.host_slice::<T>(op)?;
            Ok(v.first().is_some_and(|x| x.to_f64() != 0.0))
        })
    }
}

/// A traced branch or loop graph, with the outer tensors it captured.
struct Sub {
    graph: Graph,
    captured: Vec<Tensor>,
    types: Vec<(Shape, DType)>,
}

fn trace_sub(
    parent: &Arc<TraceGraph>,
    explicit: &[(Shape, DType)],
    f: impl FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
) -> Result<Sub> {
    let child = TraceGraph::new(parent.first_trace);
    let ins: Vec<Tensor> =
        explicit.iter().enumerate().map(|(i, (s, d))| child.add_input(i, &format!("v{i}"), s.clone(), *d)).collect();
    let outs = with_trace(&child, || f(&ins))?;
    let ids = with_trace(&child, || outs.iter().map(|t| output_node(&child, t)).collect::<Result<Vec<NodeId>>>())?;
    let mut graph = std::mem::take(&mut *child.lock());
    graph.outputs = ids;
    let types = outs.iter().map(|t| (t.shape().clone(), t.dtype())).collect();
    Ok(Sub { graph, captured: child.captured(), types })
}

fn type_text((s, d): &(Shape, DType)) -> String {
    format!("{d}{s}")
}

/// Adds a multi-output node and one `project` node per output.
fn add_multi(
    parent: &Arc<TraceGraph>,
    op: NodeOp,
    inputs: Vec<&Tensor>,
    types: &[(Shape, DType)],
    name: &'static str,
    loc: Loc,
) -> Result<Vec<Tensor>> {
    let ids = inputs
        .iter()
        .map(|t| parent.node_of(t, name))
        .collect::<Result<smallvec::SmallVec<[NodeId; 3]>>>()
        .map_err(|e| e.at(loc))?;
    let node = parent.add_node(op, ids, Shape::scalar(), DType::Bool, Some(loc));
    let id = node.symbol().map(|s| NodeId(s.node)).ok_or_else(|| Error::invalid(name, "node creation failed"))?;
    Ok(types
        .iter()
        .enumerate()
        .map(|(k, (s, d))| parent.add_node(NodeOp::Project(k), smallvec::smallvec![id], s.clone(), *d, Some(loc)))
        .collect())
}

/// `then_fn()` if `pred` else `else_fn()`. With a symbolic `pred` both branches are traced
/// and must return the same number of outputs with the same dtypes and shapes.
#[track_caller]
pub fn cond<O: Outputs>(
    pred: &Tensor,
    then_fn: impl FnOnce() -> Result<O>,
    else_fn: impl FnOnce() -> Result<O>,
) -> Result<O> {
    let loc = Loc::caller();
    if !pred.is_symbolic() {
        return if pred.to_bool_impl("cond").map_err(|e| e.at(loc))? { then_fn() } else { else_fn() };
    }
    let parent = active_for(&[pred], "cond", loc)?;
    let t = trace_sub(&parent, &[], |_| then_fn().map(Outputs::flatten))?;
    let e = trace_sub(&parent, &[], |_| else_fn().map(Outputs::flatten))?;
    if t.types.len() != e.types.len() {
        return Err(Error::InvalidArgument {
            op: "cond",
            message: format!(
                "the then branch returns {} outputs but the else branch returns {}",
                t.types.len(),
                e.types.len()
            ),
            location: Some(loc),
        });
    }
    for (k, (a, b)) in t.types.iter().zip(&e.types).enumerate() {
        if a != b {
            let (expected, found) =
                (format!("output {k} of the else branch to be {} like the then branch", type_text(a)), type_text(b));
            return Err(if a.1 != b.1 {
                Error::DTypeMismatch {
                    op: "cond",
                    expected,
                    found,
                    fix: Some("cast one branch's output".into()),
                    location: Some(loc),
                }
            } else {
                Error::ShapeMismatch { op: "cond", expected, found, fix: None, location: Some(loc) }
            });
        }
    }
    let mut inputs: Vec<&Tensor> = vec![pred];
    inputs.extend(t.captured.iter());
    inputs.extend(e.captured.iter());
    let (tg, eg) = (Arc::new(t.graph), Arc::new(e.graph));
    let op = NodeOp::Cond { then: tg.clone(), otherwise: eg.clone(), n_then: t.captured.len() };
    let outs = add_multi(&parent, op, inputs, &t.types, "cond", loc)?;
    if crate::dispatch::tape::is_recording() {
        crate::autograd::record_cond(pred, &t.captured, &e.captured, tg, eg, &outs);
    }
    O::unflatten(outs)
}

/// Repeats `vars = body(&vars)` while `cond(&vars)` is true and returns the final `vars`.
/// Inside a traced function this becomes one `while` node (the body is traced once); the
/// body must return as many tensors as `vars`, each of the same dtype and shape.
#[track_caller]
pub fn while_loop(
    cond: impl Fn(&[Tensor]) -> Result<Tensor>,
    body: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    vars: Vec<Tensor>,
) -> Result<Vec<Tensor>> {
    let loc = Loc::caller();
    let check = |types: &[(Shape, DType)], what: &str| -> Result<()> {
        if types.len() != vars.len() {
            return Err(Error::InvalidArgument {
                op: "while_loop",
                message: format!(
                    "the body returns {} tensors {what}, but there are {} loop variables",
                    types.len(),
                    vars.len()
                ),
                location: Some(loc),
            });
        }
        for (k, (ty, v)) in types.iter().zip(&vars).enumerate() {
            if ty.0 != *v.shape() || ty.1 != v.dtype() {
                return Err(Error::ShapeMismatch {
                    op: "while_loop",
                    expected: format!("loop variable {k} to keep its type {}{}", v.dtype(), v.shape()),
                    found: type_text(ty),
                    fix: Some("return values of the same dtype and shape from the body".into()),
                    location: Some(loc),
                });
            }
        }
        Ok(())
    };
    let Some(parent) = active() else {
        let mut vars = vars.clone();
        while cond(&vars)?.to_bool_impl("while_loop").map_err(|e| e.at(loc))? {
            let next = body(&vars)?;
            check(&next.iter().map(|t| (t.shape().clone(), t.dtype())).collect::<Vec<_>>(), "")?;
            vars = next;
        }
        return Ok(vars);
    };
    let types: Vec<(Shape, DType)> = vars.iter().map(|t| (t.shape().clone(), t.dtype())).collect();
    let c = trace_sub(&parent, &types, |v| cond(v).map(|t| vec![t]))?;
    if c.types.len() != 1 || c.types[0].0.num_elements() != 1 {
        return Err(Error::InvalidArgument {
            op: "while_loop",
            message: format!(
                "cond must return one one-element tensor, found {}",
                c.types.iter().map(type_text).collect::<Vec<_>>().join(", ")
            ),
            location: Some(loc),
        });
    }
    let b = trace_sub(&parent, &types, body)?;
    check(&b.types, "")?;
    let mut inputs: Vec<&Tensor> = vars.iter().collect();
    inputs.extend(c.captured.iter());
    inputs.extend(b.captured.iter());
    let op = NodeOp::While {
        cond: Arc::new(c.graph),
        body: Arc::new(b.graph),
        n_vars: vars.len(),
        n_cond: c.captured.len(),
    };
    let ins: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
    let outs = add_multi(&parent, op, inputs, &types, "while_loop", loc)?;
    if crate::dispatch::tape::is_recording() {
        crate::autograd::record_while(&ins, &outs);
    }
    Ok(outs)
}
