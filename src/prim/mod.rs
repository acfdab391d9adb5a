//! The primitives: the closed set of ops every backend implements (`PrimOp`), their shape
//! and dtype inference with every user error (`infer`, `sparse`), dtype promotion
//! (`promote`), the elementwise tables (`elementwise`) and the description of a fused
//! kernel (`fusion`). Pure definitions: `dispatch::apply` runs them, backends execute them.
//! **Architecture Invariant:** this module knows nothing about how ops execute; it imports
//! only the base modules and `tensor` (for metadata: shape, dtype, the weak flag).

/// Declares a field-less enum of kinds with `ALL`, every variant in declaration order (so a
/// new variant is listed at once: the tidy test reads the lists).
macro_rules! kinds {
    ($(#[$m:meta])* pub enum $name:ident { $($v:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum $name { $($v,)* }
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
        }
    };
}
pub(crate) use kinds;

pub(crate) mod elementwise;
pub(crate) mod fusion;
pub(crate) mod infer;
pub(crate) mod promote;
pub(crate) mod sparse;

use smallvec::SmallVec;

use crate::dtype::DType;
use crate::shape::Shape;
pub(crate) use elementwise::Accepts;
pub use elementwise::{BinaryOp, UnaryOp};
pub use sparse::SparseKind;
pub(crate) use sparse::SparseOp;

/// A small list of axes or dims (inline up to rank 4).
pub(crate) type Axes = SmallVec<[usize; 4]>;

kinds! {
    /// A reduction over a set of axes.
    pub enum ReduceOp { Sum, Mean, Max, Min, Prod }
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Mean => "reduce_mean",
            ReduceOp::Max => "reduce_max",
            ReduceOp::Min => "reduce_min",
            ReduceOp::Prod => "reduce_prod",
        }
    }
}

/// The index of the largest or smallest element along one axis.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum ArgOp {
    Max,
    Min,
}

/// The primitive ops. Composites (softmax aside, which has its own fused kernel) are
/// written once over these in `crate::ops`. Backends `match` this enum with no wildcard
/// arm, so a new primitive does not compile until every backend handles it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) enum PrimOp {
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `where_(cond, x, y)`: three broadcast inputs, `cond` bool.
    Select,
    Cast(DType),
    Reduce {
        op: ReduceOp,
        axes: Axes,
        keepdims: bool,
    },
    /// `axis: None` reduces the flattened tensor.
    ArgReduce {
        op: ArgOp,
        axis: Option<usize>,
        keepdims: bool,
    },
    /// Target dims; one may be -1 (inferred from the input when the graph runs).
    Reshape(SmallVec<[isize; 4]>),
    Transpose(Axes),
    BroadcastTo(Shape),
    Concat(usize),
    /// `size` entries of -1 run to the end of the axis.
    Slice {
        begin: Axes,
        size: SmallVec<[isize; 4]>,
    },
    Gather(usize),
    OneHot {
        depth: usize,
        dtype: DType,
    },
    MatMul {
        transpose_a: bool,
        transpose_b: bool,
    },
    /// Softmax (or log-softmax) along one axis, one fused numerically stable kernel.
    Softmax {
        axis: usize,
        log: bool,
    },
    /// The sparse (COO) primitives, inferred in `prim::sparse`.
    Sparse(SparseOp),
}

kinds! {
    /// The primitives without their attributes (`PrimOp::kind`): the list the tidy test
    /// checks the op table, the gradient checks and the optimizer's random programs against.
    pub enum PrimKind {
        Unary, Binary, Select, Cast, Reduce, ArgReduce, Reshape, Transpose, BroadcastTo, Concat, Slice, Gather,
        OneHot, MatMul, Softmax, Sparse,
    }
}

impl PrimKind {
    /// The public names of the primitives of this kind (one per elementwise, reduce, arg or
    /// sparse op; log_softmax beside softmax).
    pub fn names(self) -> Vec<&'static str> {
        match self {
            PrimKind::Unary => UnaryOp::ALL.iter().map(|u| u.name()).collect(),
            PrimKind::Binary => BinaryOp::ALL.iter().map(|b| b.name()).collect(),
            PrimKind::Reduce => ReduceOp::ALL.iter().map(|r| r.name()).collect(),
            PrimKind::ArgReduce => vec!["argmax", "argmin"],
            PrimKind::Softmax => vec!["softmax", "log_softmax"],
            PrimKind::Sparse => SparseKind::ALL.iter().map(|s| s.name()).collect(),
            PrimKind::Select => vec!["where_"],
            PrimKind::Cast => vec!["cast"],
            PrimKind::Reshape => vec!["reshape"],
            PrimKind::Transpose => vec!["transpose"],
            PrimKind::BroadcastTo => vec!["broadcast_to"],
            PrimKind::Concat => vec!["concat"],
            PrimKind::Slice => vec!["slice"],
            PrimKind::Gather => vec!["gather"],
            PrimKind::OneHot => vec!["one_hot"],
            PrimKind::MatMul => vec!["matmul"],
        }
    }
}

/// How many inputs a primitive takes (`PrimOp::arity`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Arity {
    Exactly(usize),
    /// Variadic (`Concat`).
    AtLeast(usize),
}

impl Arity {
    pub(crate) fn admits(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::AtLeast(k) => n >= k,
        }
    }
}

impl std::fmt::Display for Arity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arity::Exactly(k) => write!(f, "{k}"),
            Arity::AtLeast(k) => write!(f, "at least {k}"),
        }
    }
}

/// How a primitive's kernels take a host rank-0 input (`PrimOp::host_scalars`): as a kernel
/// parameter (no copy to the device; `placement` leaves it on the host) or as a buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HostScalars {
    /// Parameters: the elementwise kernels, and `SparseOp::ToDense`'s default value (its only
    /// rank-0 input), which fills the output.
    Params,
    /// Parameters where the device computes both the input's dtype and this one (a cast;
    /// the storage-only i64 casts copy theirs).
    ParamsIfComputed(DType),
    /// Copied to the device like any other input.
    Copied,
}

/// An elementwise primitive of the tables (`PrimOp::elementwise`): what fusion and in-place
/// execution look for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Elementwise {
    Unary(UnaryOp),
    Binary(BinaryOp),
}

impl PrimOp {
    /// The public name of the op, used in error messages and graph text.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            PrimOp::Unary(u) => u.name(),
            PrimOp::Binary(b) => b.name(),
            PrimOp::Select => "where_",
            PrimOp::Cast(_) => "cast",
            PrimOp::Reduce { op, .. } => op.name(),
            PrimOp::ArgReduce { op: ArgOp::Max, .. } => "argmax",
            PrimOp::ArgReduce { op: ArgOp::Min, .. } => "argmin",
            PrimOp::Reshape(_) => "reshape",
            PrimOp::Transpose(_) => "transpose",
            PrimOp::BroadcastTo(_) => "broadcast_to",
            PrimOp::Concat(_) => "concat",
            PrimOp::Slice { .. } => "slice",
            PrimOp::Gather(_) => "gather",
            PrimOp::OneHot { .. } => "one_hot",
            PrimOp::MatMul { .. } => "matmul",
            PrimOp::Softmax { log: false, .. } => "softmax",
            PrimOp::Softmax { log: true, .. } => "log_softmax",
            PrimOp::Sparse(s) => s.name(),
        }
    }

    /// The kind of the op: the variant without its attributes.
    #[cfg_attr(not(test), allow(dead_code))] // a new variant must pick its kind: PrimKind::ALL lists it
    pub(crate) fn kind(&self) -> PrimKind {
        match self {
            PrimOp::Unary(_) => PrimKind::Unary,
            PrimOp::Binary(_) => PrimKind::Binary,
            PrimOp::Select => PrimKind::Select,
            PrimOp::Cast(_) => PrimKind::Cast,
            PrimOp::Reduce { .. } => PrimKind::Reduce,
            PrimOp::ArgReduce { .. } => PrimKind::ArgReduce,
            PrimOp::Reshape(_) => PrimKind::Reshape,
            PrimOp::Transpose(_) => PrimKind::Transpose,
            PrimOp::BroadcastTo(_) => PrimKind::BroadcastTo,
            PrimOp::Concat(_) => PrimKind::Concat,
            PrimOp::Slice { .. } => PrimKind::Slice,
            PrimOp::Gather(_) => PrimKind::Gather,
            PrimOp::OneHot { .. } => PrimKind::OneHot,
            PrimOp::MatMul { .. } => PrimKind::MatMul,
            PrimOp::Softmax { .. } => PrimKind::Softmax,
            PrimOp::Sparse(_) => PrimKind::Sparse,
        }
    }

    /// How many inputs the op takes: `infer` and `Graph::verify` check it, so backends and
    /// gradient rules may index `inputs` up to it.
    pub(crate) fn arity(&self) -> Arity {
        match self {
            PrimOp::Unary(_)
            | PrimOp::Cast(_)
            | PrimOp::Reduce { .. }
            | PrimOp::ArgReduce { .. }
            | PrimOp::Reshape(_)
            | PrimOp::Transpose(_)
            | PrimOp::BroadcastTo(_)
            | PrimOp::Slice { .. }
            | PrimOp::OneHot { .. }
            | PrimOp::Softmax { .. } => Arity::Exactly(1),
            PrimOp::Binary(_) | PrimOp::Gather(_) | PrimOp::MatMul { .. } => Arity::Exactly(2),
            PrimOp::Select => Arity::Exactly(3),
            PrimOp::Concat(_) => Arity::AtLeast(1),
            PrimOp::Sparse(s) => s.arity(),
        }
    }

    /// The attributes graph text shows after the op's name (`[axis=1]`), or nothing.
    pub(crate) fn attrs(&self) -> String {
        match self {
            PrimOp::Cast(d) => format!("[dtype={d}]"),
            PrimOp::Reduce { axes, keepdims, .. } => format!("[axes={axes:?}, keepdims={keepdims}]"),
            PrimOp::ArgReduce { axis: Some(a), keepdims, .. } => format!("[axis={a}, keepdims={keepdims}]"),
            PrimOp::ArgReduce { axis: None, keepdims, .. } => format!("[axis=None, keepdims={keepdims}]"),
            PrimOp::Reshape(s) => format!("[shape={s:?}]"),
            PrimOp::BroadcastTo(s) => format!("[shape={s}]"),
            PrimOp::Transpose(p) => format!("[perm={p:?}]"),
            PrimOp::Concat(a) | PrimOp::Gather(a) => format!("[axis={a}]"),
            PrimOp::Slice { begin, size } => format!("[begin={begin:?}, size={size:?}]"),
            PrimOp::OneHot { depth, dtype } => format!("[depth={depth}, dtype={dtype}]"),
            PrimOp::MatMul { transpose_a: false, transpose_b: false } => String::new(),
            PrimOp::MatMul { transpose_a, transpose_b } => {
                format!("[transpose_a={transpose_a}, transpose_b={transpose_b}]")
            }
            PrimOp::Softmax { axis, .. } => format!("[axis={axis}]"),
            PrimOp::Sparse(s) => s.attrs(),
            PrimOp::Unary(_) | PrimOp::Binary(_) | PrimOp::Select => String::new(),
        }
    }

    /// Whether the op's kernels take host rank-0 inputs as parameters (the scalar-taking
    /// rule `placement` applies before a GPU kernel runs).
    pub(crate) fn host_scalars(&self) -> HostScalars {
        match self {
            PrimOp::Unary(_) | PrimOp::Binary(_) | PrimOp::Select | PrimOp::Sparse(SparseOp::ToDense(_)) => {
                HostScalars::Params
            }
            PrimOp::Cast(to) => HostScalars::ParamsIfComputed(*to),
            PrimOp::Reduce { .. }
            | PrimOp::ArgReduce { .. }
            | PrimOp::Reshape(_)
            | PrimOp::Transpose(_)
            | PrimOp::BroadcastTo(_)
            | PrimOp::Concat(_)
            | PrimOp::Slice { .. }
            | PrimOp::Gather(_)
            | PrimOp::OneHot { .. }
            | PrimOp::MatMul { .. }
            | PrimOp::Softmax { .. }
            | PrimOp::Sparse(
                SparseOp::Validate(_)
                | SparseOp::MatMul(_)
                | SparseOp::Reorder
                | SparseOp::Unique
                | SparseOp::SegmentSum
                | SparseOp::NonZero,
            ) => HostScalars::Copied,
        }
    }

    /// The table op this primitive is, if it is elementwise (`Select` and `Cast` are not
    /// fused instructions): what fusion and in-place execution look for.
    pub(crate) fn elementwise(&self) -> Option<Elementwise> {
        match self {
            PrimOp::Unary(u) => Some(Elementwise::Unary(*u)),
            PrimOp::Binary(b) => Some(Elementwise::Binary(*b)),
            PrimOp::Select
            | PrimOp::Cast(_)
            | PrimOp::Reduce { .. }
            | PrimOp::ArgReduce { .. }
            | PrimOp::Reshape(_)
            | PrimOp::Transpose(_)
            | PrimOp::BroadcastTo(_)
            | PrimOp::Concat(_)
            | PrimOp::Slice { .. }
            | PrimOp::Gather(_)
            | PrimOp::OneHot { .. }
            | PrimOp::MatMul { .. }
            | PrimOp::Softmax { .. }
            | PrimOp::Sparse(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One op of every variant (every elementwise, reduce, arg and sparse op): its name is
    /// among its kind's names, and every kind's name is some op's name.
    #[test]
    fn kinds_name_every_primitive() {
        let s = || Shape::new(&[2, 3]);
        let mut ops: Vec<PrimOp> = UnaryOp::ALL.iter().map(|u| PrimOp::Unary(*u)).collect();
        ops.extend(BinaryOp::ALL.iter().map(|b| PrimOp::Binary(*b)));
        ops.extend(ReduceOp::ALL.iter().map(|op| PrimOp::Reduce { op: *op, axes: Axes::new(), keepdims: false }));
        for op in [ArgOp::Max, ArgOp::Min] {
            ops.push(PrimOp::ArgReduce { op, axis: None, keepdims: false });
        }
        ops.extend([
            PrimOp::Select,
            PrimOp::Cast(DType::F32),
            PrimOp::Reshape(SmallVec::new()),
            PrimOp::Transpose(Axes::new()),
            PrimOp::BroadcastTo(s()),
            PrimOp::Concat(0),
            PrimOp::Slice { begin: Axes::new(), size: SmallVec::new() },
            PrimOp::Gather(0),
            PrimOp::OneHot { depth: 2, dtype: DType::F32 },
            PrimOp::MatMul { transpose_a: false, transpose_b: true },
            PrimOp::Softmax { axis: 0, log: false },
            PrimOp::Softmax { axis: 0, log: true },
        ]);
        ops.extend(
            [
                SparseOp::Validate(s()),
                SparseOp::ToDense(s()),
                SparseOp::MatMul(s()),
                SparseOp::Reorder,
                SparseOp::Unique,
                SparseOp::SegmentSum,
                SparseOp::NonZero,
            ]
            .map(PrimOp::Sparse),
        );
        for op in &ops {
            assert!(op.kind().names().contains(&op.name()), "{op:?} is not among its kind's names");
        }
        for k in PrimKind::ALL {
            for name in k.names() {
                assert!(ops.iter().any(|op| op.name() == name), "{k:?}: no op named {name}");
            }
        }
    }
}
