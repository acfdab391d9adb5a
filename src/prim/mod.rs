//! The primitives: the closed set of ops every backend implements (`PrimOp`), their shape
//! and dtype inference with every user error (`infer`, `sparse`), dtype promotion
//! (`promote`), the elementwise tables (`elementwise`) and the description of a fused
//! kernel (`fusion`). Pure definitions: `dispatch::apply` runs them, backends execute them.
//! **Architecture Invariant:** this module knows nothing about how ops execute; it imports
//! only the base modules and `tensor` (for metadata: shape, dtype, the weak flag).

pub(crate) mod elementwise;
pub(crate) mod fusion;
pub(crate) mod infer;
pub(crate) mod promote;
pub(crate) mod sparse;

use smallvec::SmallVec;

use crate::dtype::DType;
use crate::shape::Shape;
pub(crate) use elementwise::{Accepts, BinaryOp, UnaryOp};

/// A small list of axes or dims (inline up to rank 4).
pub(crate) type Axes = SmallVec<[usize; 4]>;

/// A reduction over a set of axes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
}

impl ReduceOp {
    pub(crate) fn name(self) -> &'static str {
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
    // Sparse (COO) primitives, inferred in `op::sparse`: `indices` are i64 [nnz, rank],
    // `values` [nnz]. Deterministic and free of side effects, like every primitive.
    /// indices -> the same indices, after checking them against this dense shape: in bounds,
    /// in canonical row-major order, none repeated (a run-time error otherwise).
    SparseValidate(Shape),
    /// (indices, values, default []) -> a dense tensor of this shape: the default, and each
    /// entry's value at its index (repeated indices add up; for bool, or). Bounds checked.
    SparseToDense(Shape),
    /// (indices, values) of a sparse matrix of this [m, k] shape, dense [k, n] -> [m, n].
    SparseMatMul(Shape),
    /// indices -> i64 [nnz]: the stable permutation that sorts them into row-major order.
    SparseReorder,
    /// indices -> the distinct indices in row-major order: i64 [?, rank] (data-dependent).
    SparseUnique,
    /// (indices, values) -> per distinct index (in `SparseUnique`'s order) the sum of its
    /// values: [?] (data-dependent).
    SparseSegmentSum,
    /// dense -> i64 [?, rank]: the indices of its non-zero elements in row-major order.
    NonZero,
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
            PrimOp::SparseValidate(_) => "sparse::validate",
            PrimOp::SparseToDense(_) => "sparse::to_dense",
            PrimOp::SparseMatMul(_) => "sparse::matmul",
            PrimOp::SparseReorder => "sparse::reorder",
            PrimOp::SparseUnique => "sparse::unique",
            PrimOp::SparseSegmentSum => "sparse::segment_sum",
            PrimOp::NonZero => "sparse::nonzero",
        }
    }
}
