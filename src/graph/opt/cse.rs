//! Common-subexpression elimination: two nodes with the same op, the same attributes and the
//! same inputs compute the same value, so the later one is replaced by the earlier one.
//! Equality is structural (the `PrimOp` value with its attributes, input node ids, and for
//! constants dtype, shape and bit-identical elements), never by comparing text. Stateful
//! nodes (variable reads, prints, assignments, branches and loops) are never merged: a read
//! after an assignment is a different value.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use smallvec::SmallVec;

use super::{OptimizerOptions, Pass, PassKind};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::ir::{Graph, NodeId, NodeOp};
use crate::prim::PrimOp;
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::Buffer;

pub(crate) struct Cse;

/// Constants larger than this are not compared element by element.
const MAX_CONST_ELEMENTS: usize = 1 << 16;

#[derive(PartialEq, Eq, Hash)]
enum Key {
    Prim(PrimOp, SmallVec<[NodeId; 3]>),
    Project(usize, NodeId),
    Fused(std::sync::Arc<crate::prim::fusion::Fusion>, SmallVec<[NodeId; 3]>),
    /// dtype, shape and a hash of the bits; equal keys are confirmed bit by bit.
    Const(DType, Shape, u64),
}

impl Pass for Cse {
    fn kind(&self) -> PassKind {
        PassKind::CommonSubexpression
    }

    fn run(&self, g: &mut Graph, _: &OptimizerOptions) -> Result<Vec<String>> {
        let mut seen: HashMap<Key, Vec<NodeId>> = HashMap::new();
        let mut changes = Vec::new();
        for id in g.node_ids() {
            let Some(n) = g.node(id) else { continue };
            let key = match &n.op {
                NodeOp::Prim(p) => Key::Prim(p.clone(), n.inputs.clone()),
                NodeOp::Project(k) => match n.inputs.first() {
                    Some(i) => Key::Project(*k, *i),
                    None => continue,
                },
                NodeOp::Fused(f) => Key::Fused(f.clone(), n.inputs.clone()),
                NodeOp::Const(t) if t.num_elements() <= MAX_CONST_ELEMENTS => match bits_hash(t) {
                    Some(h) => Key::Const(t.dtype(), t.shape().clone(), h),
                    None => continue,
                },
                _ => continue,
            };
            let earlier = seen.entry(key).or_default();
            let same = earlier.iter().copied().find(|e| match (g.node(*e).map(|m| &m.op), &n.op) {
                (Some(NodeOp::Const(a)), NodeOp::Const(b)) => bits_eq(a, b),
                _ => true,
            });
            match same {
                Some(e) => {
                    changes.push(format!("{id} ({}) is {e}", n.op.name()));
                    g.replace_uses(id, e);
                    g.remove(id);
                }
                None => earlier.push(id),
            }
        }
        Ok(changes)
    }
}

macro_rules! each_pair {
    ($a:expr, $b:expr, $x:ident, $y:ident => $body:expr, $other:expr) => {
        match ($a, $b) {
            (Buffer::F32($x), Buffer::F32($y)) => $body,
            (Buffer::F64($x), Buffer::F64($y)) => $body,
            (Buffer::F16($x), Buffer::F16($y)) => $body,
            (Buffer::BF16($x), Buffer::BF16($y)) => $body,
            (Buffer::I32($x), Buffer::I32($y)) => $body,
            (Buffer::I64($x), Buffer::I64($y)) => $body,
            (Buffer::U8($x), Buffer::U8($y)) => $body,
            (Buffer::Bool($x), Buffer::Bool($y)) => $body,
            _ => $other,
        }
    };
}

/// Whether two constants hold bit-identical elements (a NaN equals the same NaN; `0.0`
/// and `-0.0` differ, as they must: `1/x` tells them apart).
fn bits_eq(a: &Tensor, b: &Tensor) -> bool {
    let (Some(x), Some(y)) = (a.host_buffer(), b.host_buffer()) else { return false };
    a.shape() == b.shape()
        && each_pair!(x, y, p, q => p.iter().zip(q.iter()).all(|(u, v)| Bits::bits(u) == Bits::bits(v)) && p.len() == q.len(), false)
}

fn bits_hash(t: &Tensor) -> Option<u64> {
    let b = t.host_buffer()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    each_pair!(b, b, p, _q => p.iter().for_each(|v| Bits::bits(v).hash(&mut h)), ());
    Some(h.finish())
}

/// An element's bits, for exact comparison.
trait Bits {
    fn bits(&self) -> u64;
}
macro_rules! bits_as {
    ($($t:ty => |$v:ident| $e:expr;)*) => { $(impl Bits for $t { fn bits(&self) -> u64 { let $v = *self; $e } })* };
}
bits_as! {
    f32 => |v| v.to_bits() as u64;
    f64 => |v| v.to_bits();
    half::f16 => |v| v.to_bits() as u64;
    half::bf16 => |v| v.to_bits() as u64;
    i32 => |v| v as u32 as u64;
    i64 => |v| v as u64;
    u8 => |v| v as u64;
    bool => |v| v as u64;
}
