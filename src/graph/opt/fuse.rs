//! Fusion: groups of primitives become one `Fused` node (kernels in
//! `backend::cpu::fused`), so intermediates never exist as tensors.
//!
//! 1. **Remapping** (Grappler's remapper): the composite softmax
//!    `exp(x - max(x)) / sum(exp(x - max(x)))` over the last axis becomes the fused softmax
//!    primitive, and `(x - max(x)) - log(sum(exp(x - max(x))))` the fused log-softmax.
//! 2. **Groups**, consumers first: an f32/f64 elementwise node roots a group and absorbs each
//!    elementwise producer whose every reader is already in the group and which is not a
//!    function output (so no intermediate must survive, and no cycle can form). A
//!    reduction over trailing axes roots an input fusion the same way. A group whose
//!    elementwise part reads a matmul that only it reads takes the matmul in as its
//!    prologue (output fusion: bias add and activation as the matmul's epilogue).
//!
//! The fused node takes the root's id, so program order is unchanged; the absorbed nodes
//! are removed. Side-effect nodes (print, assign) are never absorbed: a print between two
//! elementwise ops splits the chain and still prints.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use smallvec::SmallVec;

use super::{OptimizerOptions, Pass, PassKind};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::ir::{Graph, Node, NodeId, NodeOp};
use crate::prim::fusion::{Fusion, FusionKind, Instr};
use crate::prim::{BinaryOp, Elementwise, PrimOp, ReduceOp, UnaryOp};

pub(crate) struct Fuse;

impl Pass for Fuse {
    fn kind(&self) -> PassKind {
        PassKind::Fusion
    }

    fn run(&self, g: &mut Graph, _: &OptimizerOptions) -> Result<Vec<String>> {
        let mut changes = remap_softmax(g);
        let mut groups: Vec<(NodeId, String)> = Vec::new();
        let mut taken: HashSet<NodeId> = HashSet::new();
        for root in g.node_ids().into_iter().rev() {
            if taken.contains(&root) {
                continue;
            }
            let Some(n) = g.node(root) else { continue };
            let kind = if let NodeOp::Prim(PrimOp::Reduce { op, axes, keepdims }) = &n.op
                && fusible_dtype(n.dtype)
            {
                let Some(x) = n.inputs.first().and_then(|i| g.node(*i)) else { continue };
                let r = x.shape.rank();
                let trailing = axes.iter().enumerate().all(|(k, &a)| a == r - axes.len() + k);
                if !trailing || axes.is_empty() {
                    continue;
                }
                FusionKind::Reduce { op: *op, axes: axes.clone(), keepdims: *keepdims }
            } else if elementwise(n).is_some() {
                FusionKind::Loop
            } else {
                continue;
            };
            let Some(group) = grow(g, root, &kind, &taken) else { continue };
            taken.extend(group.members.iter().copied());
            groups.push((root, apply(g, root, kind, group)));
        }
        // Groups grow from the end; report them in program order like the other passes.
        groups.sort();
        changes.extend(groups.into_iter().map(|(_, c)| c));
        Ok(changes)
    }
}

/// The dtypes fused kernels exist for.
fn fusible_dtype(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64)
}

/// The instruction a node would be inside a fused kernel: an f32/f64 elementwise op that
/// keeps its dtype (no comparisons or logical ops).
fn elementwise(n: &Node) -> Option<Instr> {
    if !fusible_dtype(n.dtype) {
        return None;
    }
    match n.op.as_prim()?.elementwise()? {
        Elementwise::Unary(u) => (u != UnaryOp::LogicalNot).then_some(Instr::Unary(u, 0)),
        Elementwise::Binary(b) => (!b.is_comparison() && !matches!(b, BinaryOp::LogicalAnd | BinaryOp::LogicalOr))
            .then_some(Instr::Binary(b, 0, 0)),
    }
}

struct Group {
    /// The elementwise nodes of the group (the root too, unless it is a reduction).
    members: Vec<NodeId>,
    /// A matmul absorbed as the prologue.
    matmul: Option<NodeId>,
}

/// Grows a group from `root`; `None` when it would fuse nothing.
fn grow(g: &Graph, root: NodeId, kind: &FusionKind, taken: &HashSet<NodeId>) -> Option<Group> {
    let root_node = g.node(root)?;
    let dtype = root_node.dtype;
    let mut members: Vec<NodeId> = Vec::new();
    let mut set: HashSet<NodeId> = HashSet::new();
    let mut work: Vec<NodeId> = Vec::new();
    // The elementwise shape every member should have (the root's, or the reduction's input).
    let elem_shape = match kind {
        FusionKind::Reduce { .. } => &g.node(*root_node.inputs.first()?)?.shape,
        _ => &root_node.shape,
    };
    let can_absorb = |id: NodeId, set: &HashSet<NodeId>| -> bool {
        let Some(n) = g.node(id) else { return false };
        elementwise(n).is_some()
            && n.dtype == dtype
            && !taken.contains(&id)
            && !g.outputs.contains(&id)
            && (n.shape == *elem_shape || !n.shape.is_fully_known() || !elem_shape.is_fully_known())
            && g.users(id).iter().all(|u| set.contains(u))
    };
    match kind {
        FusionKind::Reduce { .. } => {
            set.insert(root);
            let x = *root_node.inputs.first()?;
            if !can_absorb(x, &set) {
                return None;
            }
            set.insert(x);
            members.push(x);
            work.push(x);
        }
        _ => {
            set.insert(root);
            members.push(root);
            work.push(root);
        }
    }
    while let Some(m) = work.pop() {
        let Some(n) = g.node(m) else { continue };
        for &i in &n.inputs {
            if !set.contains(&i) && can_absorb(i, &set) {
                set.insert(i);
                members.push(i);
                work.push(i);
            }
        }
    }
    // Output fusion: a matmul read only by the group, of the group's own shape (with
    // unknown dims the kernel checks the sizes again when it runs).
    let mut matmul = None;
    if matches!(kind, FusionKind::Loop) {
        'find: for &m in &members {
            for &i in &g.node(m)?.inputs {
                let Some(mm) = g.node(i) else { continue };
                if matches!(mm.op, NodeOp::Prim(PrimOp::MatMul { .. }))
                    && mm.dtype == dtype
                    && mm.shape == root_node.shape
                    && !taken.contains(&i)
                    && !g.outputs.contains(&i)
                    && g.users(i).iter().all(|u| set.contains(u))
                {
                    matmul = Some(i);
                    break 'find;
                }
            }
        }
    }
    let worth = match kind {
        FusionKind::Loop => members.len() >= 2 || matmul.is_some(),
        _ => !members.is_empty(),
    };
    worth.then_some(Group { members, matmul })
}

/// Replaces the group by one fused node at the root's id; returns the change's text.
fn apply(g: &mut Graph, root: NodeId, kind: FusionKind, group: Group) -> String {
    let mut members = group.members;
    members.sort();
    let member_set: HashSet<NodeId> = members.iter().copied().collect();
    let dtype = g.node(root).map_or(DType::F32, |n| n.dtype);
    // Inputs: the matmul's operands first, then every outside value a member reads.
    let mut inputs: SmallVec<[NodeId; 3]> = SmallVec::new();
    let mut reg_of: HashMap<NodeId, u16> = HashMap::new();
    let mut kind = kind;
    let mut n_loads = 0u16;
    if let Some(mm) = group.matmul
        && let Some(NodeOp::Prim(PrimOp::MatMul { transpose_a, transpose_b })) = g.node(mm).map(|n| n.op.clone())
    {
        inputs.extend(g.node(mm).map(|n| n.inputs.clone()).unwrap_or_default());
        kind = FusionKind::MatMul { transpose_a, transpose_b };
        reg_of.insert(mm, 0);
        n_loads = 1;
    }
    for &m in &members {
        for &i in g.node(m).map(|n| n.inputs.clone()).unwrap_or_default().iter() {
            if !member_set.contains(&i) && !reg_of.contains_key(&i) {
                reg_of.insert(i, n_loads);
                n_loads += 1;
                inputs.push(i);
            }
        }
    }
    let mut program = Vec::with_capacity(members.len());
    for (k, &m) in members.iter().enumerate() {
        let Some(n) = g.node(m) else { continue };
        let r = |i: usize| n.inputs.get(i).and_then(|x| reg_of.get(x)).copied().unwrap_or(0);
        let Some(e) = n.op.as_prim().and_then(PrimOp::elementwise) else { continue };
        program.push(match e {
            Elementwise::Unary(u) => Instr::Unary(u, r(0)),
            Elementwise::Binary(b) => Instr::Binary(b, r(0), r(1)),
        });
        reg_of.insert(m, n_loads + k as u16);
    }
    let fusion = Fusion { kind, n_loads: n_loads as usize, program, dtype };
    let text = format!(
        "{root} = {}[{}], fusing {} ops",
        fusion.name(),
        fusion.program_text(),
        members.len()
            + usize::from(group.matmul.is_some())
            + usize::from(matches!(fusion.kind, FusionKind::Reduce { .. }))
    );
    g.rewrite(root, NodeOp::Fused(Arc::new(fusion)), inputs);
    // Absorbed nodes, consumers first (the root was rewritten and reads none of them).
    let mut gone: Vec<NodeId> = members.into_iter().filter(|m| *m != root).collect();
    gone.extend(group.matmul);
    gone.sort();
    for m in gone.into_iter().rev() {
        g.remove(m);
    }
    text
}

/// `exp(x - m) / s` with `m = reduce_max(x, [last], keepdims)` and
/// `s = reduce_sum(exp(x - m), [last], keepdims)` becomes `softmax(x)` over the last axis;
/// `(x - m) - log(s)` becomes `log_softmax(x)`.
fn remap_softmax(g: &mut Graph) -> Vec<String> {
    let mut changes = Vec::new();
    for id in g.node_ids() {
        let (x, axis, log) = match (softmax_pattern(g, id), log_softmax_pattern(g, id)) {
            (Some((x, axis)), _) => (x, axis, false),
            (None, Some((x, axis))) => (x, axis, true),
            (None, None) => continue,
        };
        let what = if log { "(x - max) - log(sum(exp(x - max)))" } else { "exp(x - max) / sum(exp(x - max))" };
        let name = if log { "log_softmax" } else { "softmax" };
        changes.push(format!("{id} = {what} remapped to {name} of {}", g.tensor_name(x)));
        let parts = g.node(id).map(|n| n.inputs.clone()).unwrap_or_default();
        g.rewrite(id, NodeOp::Prim(PrimOp::Softmax { axis, log }), smallvec::smallvec![x]);
        remove_dead(g, parts.to_vec());
    }
    changes
}

/// Removes the nodes of `ids` (and, transitively, their producers) that nothing reads any
/// more and that are neither outputs, arguments nor side effects.
fn remove_dead(g: &mut Graph, mut ids: Vec<NodeId>) {
    while let Some(id) = ids.pop() {
        let Some(n) = g.node(id) else { continue };
        if g.use_count(id) > 0 || g.outputs.contains(&id) || matches!(n.op, NodeOp::Input(_)) || n.op.has_side_effect()
        {
            continue;
        }
        ids.extend(n.inputs.iter().copied());
        g.remove(id);
    }
}

fn softmax_pattern(g: &Graph, id: NodeId) -> Option<(NodeId, usize)> {
    let prim = |i: NodeId| g.node(i).and_then(|n| n.op.as_prim()).cloned();
    let ins = |i: NodeId| g.node(i).map(|n| n.inputs.clone());
    let d = g.node(id)?;
    if !fusible_dtype(d.dtype) || prim(id)? != PrimOp::Binary(BinaryOp::Div) {
        return None;
    }
    let (e, s) = (d.inputs[0], d.inputs[1]);
    let rank = d.shape.rank();
    if rank == 0 {
        return None;
    }
    let last = |p: &PrimOp, want: ReduceOp| matches!(p, PrimOp::Reduce { op, axes, keepdims: true } if *op == want && axes.as_slice() == [rank - 1]);
    if prim(e)? != PrimOp::Unary(UnaryOp::Exp) || !last(&prim(s)?, ReduceOp::Sum) || ins(s)?[0] != e {
        return None;
    }
    let sub = ins(e)?[0];
    if prim(sub)? != PrimOp::Binary(BinaryOp::Sub) {
        return None;
    }
    let (x, m) = (ins(sub)?[0], ins(sub)?[1]);
    if !last(&prim(m)?, ReduceOp::Max) || ins(m)?[0] != x || g.node(x)?.shape != d.shape {
        return None;
    }
    Some((x, rank - 1))
}

/// `(x - m) - log(reduce_sum(exp(x - m), [last], keepdims))` with
/// `m = reduce_max(x, [last], keepdims)` (both `x - m` one node, as CSE leaves them).
fn log_softmax_pattern(g: &Graph, id: NodeId) -> Option<(NodeId, usize)> {
    let prim = |i: NodeId| g.node(i).and_then(|n| n.op.as_prim()).cloned();
    let ins = |i: NodeId| g.node(i).map(|n| n.inputs.clone());
    let d = g.node(id)?;
    let rank = d.shape.rank();
    if !fusible_dtype(d.dtype) || rank == 0 || prim(id)? != PrimOp::Binary(BinaryOp::Sub) {
        return None;
    }
    let last = |p: &PrimOp, want: ReduceOp| matches!(p, PrimOp::Reduce { op, axes, keepdims: true } if *op == want && axes.as_slice() == [rank - 1]);
    let (t, l) = (d.inputs[0], d.inputs[1]);
    if prim(t)? != PrimOp::Binary(BinaryOp::Sub) || prim(l)? != PrimOp::Unary(UnaryOp::Log) {
        return None;
    }
    let s = ins(l)?[0];
    if !last(&prim(s)?, ReduceOp::Sum) {
        return None;
    }
    let e = ins(s)?[0];
    if prim(e)? != PrimOp::Unary(UnaryOp::Exp) || ins(e)?[0] != t {
        return None;
    }
    let (x, m) = (ins(t)?[0], ins(t)?[1]);
    if !last(&prim(m)?, ReduceOp::Max) || ins(m)?[0] != x || g.node(x)?.shape != d.shape {
        return None;
    }
    Some((x, rank - 1))
}
