//! The graph IR of traced functions: a petgraph `StableDiGraph` of typed nodes, its text form
//! (one line per node, like JAX's jaxpr), its Graphviz form and `verify()`, the invariant
//! checker that tests (and later each optimizer pass) run.
//! **Architecture Invariant:** this is the only module that names petgraph; the rest of the
//! crate sees `Graph`, `NodeId` and `Node`.

use std::fmt;

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use smallvec::SmallVec;

use crate::dtype::DType;
use crate::error::{Error, Loc, Result};
use crate::prim::PrimOp;
use crate::runtime::variable::{AssignKind, Variable};
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::sync::Arc;

use crate::prim::fusion::Fusion;

/// A node of a graph, stable across node removals.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct NodeId(pub(crate) u32);

impl NodeId {
    fn ix(self) -> NodeIndex {
        NodeIndex::new(self.0 as usize)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// What a node does.
#[derive(Clone)]
pub(crate) enum NodeOp {
    /// The function's tensor argument number `i`.
    Input(usize),
    /// A concrete tensor captured while tracing (a constant of the graph).
    Const(Tensor),
    /// A primitive op.
    Prim(PrimOp),
    /// `ff::print`: prints its input on every run (a side effect) and passes it through.
    Print,
    /// Reads a variable's current value.
    ReadVariable(Variable),
    /// Combines its input into a variable (a side effect).
    AssignVariable(Variable, AssignKind),
    /// `ff::cond`: inputs are the predicate, then the captures of `then`, then those of
    /// `otherwise`; runs one branch graph. Its outputs are read by `Project` nodes.
    Cond { then: Arc<Graph>, otherwise: Arc<Graph>, n_then: usize },
    /// `ff::while_loop`: inputs are the loop variables, then the captures of `cond`, then
    /// those of `body`. Its outputs (the final loop variables) are read by `Project` nodes.
    While { cond: Arc<Graph>, body: Arc<Graph>, n_vars: usize, n_cond: usize },
    /// Output `k` of a `Cond` or `While` node.
    Project(usize),
    /// A kernel the fusion pass made from several primitives (see `prim::fusion`).
    Fused(Arc<Fusion>),
}

impl NodeOp {
    /// The op's name in graph text and error messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            NodeOp::Input(_) => "input",
            NodeOp::Const(_) => "const",
            NodeOp::Prim(p) => p.name(),
            NodeOp::Print => "print",
            NodeOp::ReadVariable(_) => "read_variable",
            NodeOp::AssignVariable(_, AssignKind::Set) => "assign",
            NodeOp::AssignVariable(_, AssignKind::Add) => "assign_add",
            NodeOp::AssignVariable(_, AssignKind::Sub) => "assign_sub",
            NodeOp::Cond { .. } => "cond",
            NodeOp::While { .. } => "while",
            NodeOp::Project(_) => "project",
            NodeOp::Fused(f) => f.name(),
        }
    }
    /// Ops that must run even when no output depends on them (and, for later passes, must
    /// keep their order relative to each other).
    pub(crate) fn has_side_effect(&self) -> bool {
        match self {
            NodeOp::Print | NodeOp::AssignVariable(..) => true,
            NodeOp::Cond { then, otherwise, .. } => then.has_side_effects() || otherwise.has_side_effects(),
            NodeOp::While { cond, body, .. } => cond.has_side_effects() || body.has_side_effects(),
            NodeOp::Input(_)
            | NodeOp::Const(_)
            | NodeOp::Prim(_)
            | NodeOp::ReadVariable(_)
            | NodeOp::Project(_)
            | NodeOp::Fused(_) => false,
        }
    }
    /// The primitive, for a `Prim` node.
    pub(crate) fn as_prim(&self) -> Option<&PrimOp> {
        if let NodeOp::Prim(p) = self { Some(p) } else { None }
    }
}

/// One node: its op, its ordered inputs, and the shape and dtype inferred while tracing.
#[derive(Clone)]
pub(crate) struct Node {
    pub(crate) op: NodeOp,
    pub(crate) inputs: SmallVec<[NodeId; 3]>,
    pub(crate) shape: Shape,
    pub(crate) dtype: DType,
    /// Where the user's code created this node (the op call), for errors at run time.
    pub(crate) loc: Option<Loc>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}{}", self.op.name(), self.dtype, self.shape)
    }
}

/// A dataflow graph: nodes in creation order, the function's inputs and outputs.
/// The memory planner's decisions (`opt::memory`), kept on the graph for the executor.
#[derive(Clone, Debug, Default)]
pub(crate) struct MemoryPlan {
    /// Node -> the input position whose buffer its output overwrites.
    pub(crate) in_place: std::collections::HashMap<NodeId, usize>,
    /// Arguments + constants + the peak of live intermediates, in bytes (`None` when a
    /// shape is unknown until the call).
    pub(crate) peak_bytes: Option<usize>,
}

#[derive(Clone, Default)]
pub struct Graph {
    g: StableDiGraph<Node, u32>,
    pub(crate) inputs: Vec<NodeId>,
    pub(crate) outputs: Vec<NodeId>,
    /// Names given to argument nodes (`x`, `y`, ...), for text and errors.
    pub(crate) input_names: Vec<String>,
    /// The memory planner's decisions, when that pass ran.
    pub(crate) memory: Option<MemoryPlan>,
}

impl Graph {
    /// Adds a node whose inputs already exist, and the edges from them.
    pub(crate) fn add(&mut self, node: Node) -> NodeId {
        let inputs = node.inputs.clone();
        let ix = self.g.add_node(node);
        for (slot, i) in inputs.iter().enumerate() {
            self.g.add_edge(i.ix(), ix, slot as u32);
        }
        NodeId(ix.index() as u32)
    }

    /// The node with this id.
    pub(crate) fn node(&self, id: NodeId) -> Option<&Node> {
        self.g.node_weight(id.ix())
    }

    /// The node with this id, to rewrite its shape or location in place.
    pub(crate) fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.g.node_weight_mut(id.ix())
    }

    /// Replaces a node's op and inputs in place (its id, and so its place in program
    /// order, stays). The new inputs must come before it, as every input does.
    pub(crate) fn rewrite(&mut self, id: NodeId, op: NodeOp, inputs: SmallVec<[NodeId; 3]>) {
        let old: Vec<_> = self.g.edges_directed(id.ix(), Direction::Incoming).map(|e| e.id()).collect();
        for e in old {
            self.g.remove_edge(e);
        }
        for (slot, i) in inputs.iter().enumerate() {
            self.g.add_edge(i.ix(), id.ix(), slot as u32);
        }
        if let Some(n) = self.g.node_weight_mut(id.ix()) {
            n.op = op;
            n.inputs = inputs;
        }
    }

    /// Makes every reader of `old` (nodes and graph outputs) read `new` instead. `new` must
    /// come before every reader of `old` (it does when `new < old`).
    pub(crate) fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        for user in self.users(old) {
            let Some(n) = self.g.node_weight(user.ix()) else { continue };
            let inputs: SmallVec<[NodeId; 3]> = n.inputs.iter().map(|i| if *i == old { new } else { *i }).collect();
            let op = n.op.clone();
            self.rewrite(user, op, inputs);
        }
        for o in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// The nodes that read `id` (each once, in program order).
    pub(crate) fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> =
            self.g.edges_directed(id.ix(), Direction::Outgoing).map(|e| NodeId(e.target().index() as u32)).collect();
        v.sort();
        v.dedup();
        v
    }

    /// How many nodes read `id` (an input read twice by one node counts twice).
    pub(crate) fn use_count(&self, id: NodeId) -> usize {
        self.g.edges_directed(id.ix(), Direction::Outgoing).count()
    }

    /// Removes a node and its edges. Its readers must have been rewired first.
    pub(crate) fn remove(&mut self, id: NodeId) {
        self.g.remove_node(id.ix());
    }

    /// Node ids in creation order, which is a topological order (inputs are always created
    /// before their consumers).
    pub(crate) fn node_ids(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.g.node_indices().map(|i| NodeId(i.index() as u32)).collect();
        v.sort();
        v
    }

    /// Whether any node (or nested branch or loop graph) has a side effect.
    pub(crate) fn has_side_effects(&self) -> bool {
        self.g.node_weights().any(|n| n.op.has_side_effect())
    }

    /// How many nodes the graph has.
    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// How many nodes of each op the graph has, by op name.
    pub fn op_counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut m = std::collections::BTreeMap::new();
        for n in self.g.node_weights() {
            *m.entry(n.op.name()).or_insert(0) += 1;
        }
        m
    }

    /// The readable name of a node's tensor: `x:0` for arguments, `%7` otherwise.
    pub(crate) fn tensor_name(&self, id: NodeId) -> String {
        match self.node(id).map(|n| &n.op) {
            Some(NodeOp::Input(i)) => format!("{}:0", self.input_names.get(*i).map(String::as_str).unwrap_or("arg")),
            _ => id.to_string(),
        }
    }

    /// Checks the IR's invariants: every input of a node exists and comes before it, edges
    /// mirror the input lists, a primitive has as many inputs as its arity says, inputs and outputs exist, argument nodes are numbered in
    /// order. Used by tests and after every optimizer pass.
    pub fn verify(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid("graph::verify", m));
        for id in self.node_ids() {
            let Some(n) = self.node(id) else { return bad(format!("{id} vanished")) };
            for (slot, i) in n.inputs.iter().enumerate() {
                if self.node(*i).is_none() {
                    return bad(format!("{id} reads {i}, which does not exist"));
                }
                if *i >= id {
                    return bad(format!("{id} reads {i}, which is not created before it"));
                }
                let edge = self
                    .g
                    .edges_directed(id.ix(), Direction::Incoming)
                    .any(|e| e.source() == i.ix() && *e.weight() == slot as u32);
                if !edge {
                    return bad(format!("{id} input {slot} ({i}) has no matching edge"));
                }
            }
            if self.g.edges_directed(id.ix(), Direction::Incoming).count() != n.inputs.len() {
                return bad(format!("{id} has edges its input list does not name"));
            }
            if let NodeOp::Prim(p) = &n.op
                && !p.arity().admits(n.inputs.len())
            {
                return bad(format!("{id} ({}) has {} inputs, expected {}", p.name(), n.inputs.len(), p.arity()));
            }
        }
        for (k, i) in self.inputs.iter().enumerate() {
            match self.node(*i).map(|n| &n.op) {
                Some(NodeOp::Input(j)) if *j == k => {}
                _ => return bad(format!("input {k} is {i}, which is not argument node {k}")),
            }
        }
        if let Some(o) = self.outputs.iter().find(|o| self.node(**o).is_none()) {
            return bad(format!("output {o} does not exist"));
        }
        for n in self.g.node_weights() {
            match &n.op {
                NodeOp::Cond { then, otherwise, n_then } => {
                    then.verify()?;
                    otherwise.verify()?;
                    if n.inputs.len() != 1 + n_then + otherwise.inputs.len() || *n_then != then.inputs.len() {
                        return bad("a cond node's inputs do not match its branches' inputs".into());
                    }
                }
                NodeOp::While { cond, body, n_vars, n_cond } => {
                    cond.verify()?;
                    body.verify()?;
                    if n.inputs.len() != n_vars + n_cond + (body.inputs.len() - n_vars) || body.outputs.len() != *n_vars
                    {
                        return bad("a while node's inputs do not match its loop graphs".into());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Graphviz text: one box per node (op, dtype and shape), edges labelled by input slot.
    pub fn to_dot(&self) -> String {
        let node_attr = |_: &StableDiGraph<Node, u32>, (ix, n): (NodeIndex, &Node)| {
            let id = NodeId(ix.index() as u32);
            let what = match &n.op {
                NodeOp::Input(_) => self.tensor_name(id),
                NodeOp::Const(t) if t.num_elements() == 1 => format!("const {}", scalar_text(t)),
                NodeOp::Fused(f) => format!("{}\\n{}", f.name(), f.program_text().replace("; ", "\\n")),
                NodeOp::Prim(p) => format!("{}{}", p.name(), p.attrs().replace('"', "\\\"")),
                op => op.name().to_string(),
            };
            let shape = if self.outputs.contains(&id) { ", peripheries=2" } else { "" };
            format!("label=\"{id} {what}\\n{}{}\", shape=box{shape}", n.dtype, n.shape)
        };
        let edge_attr = |_: &StableDiGraph<Node, u32>, e: petgraph::stable_graph::EdgeReference<'_, u32>| {
            format!("label=\"{}\"", e.weight())
        };
        let dot = petgraph::dot::Dot::with_attr_getters(
            &self.g,
            &[petgraph::dot::Config::EdgeNoLabel, petgraph::dot::Config::NodeNoLabel],
            &edge_attr,
            &node_attr,
        );
        format!("{dot:?}")
    }
}

/// A one-element constant's value as text (`2.0`), for graph text.
fn scalar_text(t: &Tensor) -> String {
    let s = t.to_string();
    // "Tensor(2., shape=...)" -> "2."
    s.strip_prefix("Tensor(")
        .and_then(|r| r.split(", shape=").next())
        .map(|v| v.trim_matches(['[', ']']).to_string())
        .unwrap_or(s)
}

fn args(g: &Graph, n: &Node) -> String {
    n.inputs.iter().map(|i| g.tensor_name(*i)).collect::<Vec<_>>().join(" ")
}

impl fmt::Display for Graph {
    /// One line per node, like a jaxpr:
    /// `graph(x:0: f32[2, 3], y:0: f32[3]) { %2: f32[2, 3] = mul x:0 y:0; ...; return %3 }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ty = |n: &Node| format!("{}{}", n.dtype, n.shape);
        write!(f, "graph(")?;
        for (k, i) in self.inputs.iter().enumerate() {
            let n = self.node(*i).ok_or(fmt::Error)?;
            write!(f, "{}{}: {}", if k > 0 { ", " } else { "" }, self.tensor_name(*i), ty(n))?;
        }
        writeln!(f, ") {{")?;
        for id in self.node_ids() {
            let n = self.node(id).ok_or(fmt::Error)?;
            let rhs = match &n.op {
                NodeOp::Input(_) => continue,
                NodeOp::Const(t) if t.num_elements() == 1 => format!("const {}", scalar_text(t)),
                NodeOp::Const(_) => "const <tensor>".to_string(),
                NodeOp::Prim(p) => {
                    let args: Vec<String> = n.inputs.iter().map(|i| self.tensor_name(*i)).collect();
                    format!("{}{} {}", p.name(), p.attrs(), args.join(" "))
                }
                NodeOp::Print => format!("print {}", args(self, n)),
                NodeOp::ReadVariable(v) => format!("read_variable var{}", v.id()),
                NodeOp::AssignVariable(v, _) => format!("{} var{} {}", n.op.name(), v.id(), args(self, n)),
                NodeOp::Project(k) => format!("project[{k}] {}", args(self, n)),
                NodeOp::Fused(fu) => format!("{}[{}] {}", fu.name(), fu.program_text(), args(self, n)),
                NodeOp::Cond { then, otherwise, .. } => {
                    let ind = |g: &Graph| g.to_string().replace('\n', "\n    ");
                    format!("cond {}\n    then: {}\n    else: {}", args(self, n), ind(then), ind(otherwise))
                }
                NodeOp::While { cond, body, .. } => {
                    let ind = |g: &Graph| g.to_string().replace('\n', "\n    ");
                    format!("while {}\n    cond: {}\n    body: {}", args(self, n), ind(cond), ind(body))
                }
            };
            if matches!(n.op, NodeOp::Cond { .. } | NodeOp::While { .. }) {
                writeln!(f, "  {} = {}", self.tensor_name(id), rhs)?;
            } else {
                writeln!(f, "  {}: {} = {}", self.tensor_name(id), ty(n), rhs)?;
            }
        }
        let outs: Vec<String> = self.outputs.iter().map(|o| self.tensor_name(*o)).collect();
        write!(f, "  return ({})\n}}", outs.join(", "))
    }
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
