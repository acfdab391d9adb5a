//! Recording ops while a function is traced. A trace owns the graph being built; symbolic
//! tensors point at its nodes. `dispatch::apply` calls `record` instead of a kernel whenever an
//! input is symbolic, after the same inference eager mode runs, so both modes agree on
//! every shape, dtype and error.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use smallvec::SmallVec;

use super::ir::{Graph, Node, NodeId, NodeOp};
use crate::dtype::DType;
use crate::error::{Error, Loc, Result};
use crate::prim::PrimOp;
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::symbol::Symbol;

/// A graph under construction (shared by the symbolic tensors that point into it).
pub(crate) struct TraceGraph {
    pub(crate) graph: Mutex<Graph>,
    /// Concrete tensors already captured as constants, by handle (a clone is kept, so the
    /// handle's address cannot be reused by another tensor while the trace lives; buffer
    /// addresses would not do: a reshape shares its source's buffer, empty buffers share one).
    consts: Mutex<HashMap<usize, (Tensor, NodeId)>>,
    /// Symbolic tensors of enclosing traces that this (branch or loop) graph reads, each
    /// with the input node standing for it here.
    captures: Mutex<Vec<(Tensor, NodeId)>>,
    /// Whether this is the first trace of its function (only it may create Variables).
    pub(crate) first_trace: bool,
}

thread_local! {
    /// The traces being built on this thread, innermost last.
    static ACTIVE: RefCell<Vec<Arc<TraceGraph>>> = const { RefCell::new(Vec::new()) };
}

impl TraceGraph {
    pub(crate) fn new(first_trace: bool) -> Arc<TraceGraph> {
        Arc::new(TraceGraph {
            graph: Mutex::new(Graph::default()),
            consts: Mutex::new(HashMap::new()),
            captures: Mutex::new(Vec::new()),
            first_trace,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Graph> {
        // A poisoned lock only means a panic elsewhere; the graph itself is still valid.
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds argument `i` named `name` and returns its symbolic tensor.
    pub(crate) fn add_input(self: &Arc<Self>, i: usize, name: &str, shape: Shape, dtype: DType) -> Tensor {
        let mut g = self.lock();
        let id = g.add(Node { op: NodeOp::Input(i), inputs: SmallVec::new(), shape: shape.clone(), dtype, loc: None });
        g.inputs.push(id);
        g.input_names.push(name.to_string());
        let name = g.tensor_name(id);
        drop(g);
        Tensor::symbolic(Symbol { trace: self.clone(), node: id.0, name }, shape, dtype)
    }

    pub(crate) fn add_node(
        self: &Arc<Self>,
        op: NodeOp,
        inputs: SmallVec<[NodeId; 3]>,
        shape: Shape,
        dtype: DType,
        loc: Option<Loc>,
    ) -> Tensor {
        let mut g = self.lock();
        let id = g.add(Node { op, inputs, shape: shape.clone(), dtype, loc });
        let name = g.tensor_name(id);
        drop(g);
        Tensor::symbolic(Symbol { trace: self.clone(), node: id.0, name }, shape, dtype)
    }

    /// The node for `t` in this trace: its own node; an input capturing a tensor of an
    /// enclosing trace (a branch or loop body reading an outer value); or a constant
    /// capturing a concrete tensor. A symbolic tensor of a finished trace is an error.
    pub(crate) fn node_of(self: &Arc<Self>, t: &Tensor, op: &'static str) -> Result<NodeId> {
        if let Some(s) = t.symbol() {
            if s.in_trace(self) {
                return Ok(NodeId(s.node));
            }
            let enclosing = ACTIVE.with(|a| a.borrow().iter().any(|tr| s.in_trace(tr)));
            if !enclosing {
                return Err(Error::invalid(
                    op,
                    format!(
                        "symbolic tensor {} is used outside the traced function that made it (it escaped, e.g. through a captured variable): return it from the function and use the returned value",
                        s.name
                    ),
                ));
            }
            let mut caps = self.captures.lock().unwrap_or_else(|p| p.into_inner());
            let same = |c: &&(Tensor, NodeId)| {
                c.0.symbol().is_some_and(|cs| {
                    std::ptr::addr_eq(Arc::as_ptr(&cs.trace), Arc::as_ptr(&s.trace)) && cs.node == s.node
                })
            };
            if let Some((_, id)) = caps.iter().find(same) {
                return Ok(*id);
            }
            let mut g = self.lock();
            let k = g.inputs.len();
            let id = g.add(Node {
                op: NodeOp::Input(k),
                inputs: SmallVec::new(),
                shape: t.shape().clone(),
                dtype: t.dtype(),
                loc: None,
            });
            g.inputs.push(id);
            g.input_names.push(format!("capture{}", caps.len()));
            caps.push((t.clone(), id));
            return Ok(id);
        }
        let key = std::sync::Arc::as_ptr(&t.0) as usize;
        let mut consts = self.consts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, id)) = consts.get(&key) {
            return Ok(*id);
        }
        let c = self.add_node(NodeOp::Const(t.strong()), SmallVec::new(), t.shape().clone(), t.dtype(), None);
        let id = c.symbol().map(|s| NodeId(s.node)).ok_or_else(|| Error::invalid(op, "constant capture failed"))?;
        consts.insert(key, (t.clone(), id));
        Ok(id)
    }

    /// The outer tensors this graph captured, in input order.
    pub(crate) fn captured(&self) -> Vec<Tensor> {
        self.captures.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(t, _)| t.clone()).collect()
    }
}

/// The trace being built on this thread, if any.
pub(crate) fn active() -> Option<Arc<TraceGraph>> {
    ACTIVE.with(|a| a.borrow().last().cloned())
}

/// The identity of the innermost active trace (0 when none): what a gradient tape records
/// in is decided by it.
#[inline]
pub(crate) fn active_id() -> usize {
    ACTIVE.with(|a| a.borrow().last().map_or(0, |t| Arc::as_ptr(t) as usize))
}

/// Runs `f` with `trace` as this thread's active trace.
pub(crate) fn with_trace<R>(trace: &Arc<TraceGraph>, f: impl FnOnce() -> R) -> R {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.borrow_mut().pop());
        }
    }
    ACTIVE.with(|a| a.borrow_mut().push(trace.clone()));
    let _pop = Pop;
    f()
}

/// Records `op` on symbolic inputs as a node of the innermost active trace.
pub(crate) fn record(op: PrimOp, inputs: &[&Tensor], shape: Shape, dtype: DType, loc: Loc) -> Result<Tensor> {
    let name = op.name();
    let trace = active_for(inputs, name, loc)?;
    let ids = inputs
        .iter()
        .map(|t| trace.node_of(t, name))
        .collect::<Result<SmallVec<[NodeId; 3]>>>()
        .map_err(|e| e.at(loc))?;
    Ok(trace.add_node(NodeOp::Prim(op), ids, shape, dtype, Some(loc)))
}

/// The innermost active trace, or the "escaped tensor" error when none is active.
pub(crate) fn active_for(inputs: &[&Tensor], op: &'static str, loc: Loc) -> Result<Arc<TraceGraph>> {
    active().ok_or_else(|| {
        let s = inputs.iter().find_map(|t| t.symbol()).map(|s| s.name.clone()).unwrap_or_default();
        Error::InvalidArgument {
            op,
            message: format!(
                "symbolic tensor {s} is used outside the traced function that made it (it escaped, e.g. through a captured variable): return it from the function and use the returned value"
            ),
            location: Some(loc),
        }
    })
}

/// Records `ff::print(x)` (a side effect that runs on every call).
pub(crate) fn record_print(x: &Tensor, loc: Loc) -> Result<Tensor> {
    let trace = active_for(&[x], "print", loc)?;
    let id = trace.node_of(x, "print").map_err(|e| e.at(loc))?;
    Ok(trace.add_node(NodeOp::Print, smallvec::smallvec![id], x.shape().clone(), x.dtype(), Some(loc)))
}

/// The node of an output tensor of the body (capturing a concrete one as a constant).
pub(crate) fn output_node(trace: &Arc<TraceGraph>, t: &Tensor) -> Result<NodeId> {
    trace.node_of(t, "function output")
}
