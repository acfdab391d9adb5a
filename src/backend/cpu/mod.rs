//! The CPU backend: rayon kernels over contiguous row-major buffers (rayon appears only here,
//! in `random` and in `sparse`, the sparse primitives' kernels).
//! `execute` is one `match` over `PrimOp` with no wildcard arm.

pub(crate) mod elementwise;
pub(crate) mod fastmath;
pub(crate) mod fused;
pub(crate) mod matmul;
mod movement;
pub(crate) mod num;
pub(crate) mod par;
mod reduce;
pub(crate) mod simd;
mod softmax;
pub(crate) mod sparse;
pub(crate) mod stream;

use crate::dtype::DType;
use crate::error::Result;
use crate::prim::{PrimOp, SparseOp};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Runs one primitive whose output (shape, dtype) inference already decided.
#[inline]
pub(crate) fn execute(op: &PrimOp, inputs: &[&Tensor], shape: Shape, dtype: DType) -> Result<Tensor> {
    let x = inputs[0];
    match op {
        PrimOp::Unary(u) => elementwise::unary(*u, x),
        PrimOp::Binary(b) => elementwise::binary(*b, x, inputs[1], shape),
        PrimOp::Select => elementwise::select(x, inputs[1], inputs[2], shape),
        PrimOp::Cast(_) => elementwise::cast(x, dtype),
        PrimOp::Reduce { op, axes, .. } => reduce::reduce(x, *op, axes, shape),
        PrimOp::ArgReduce { op, axis, .. } => reduce::arg_reduce(x, *op, *axis, shape),
        PrimOp::Reshape(_) => Ok(x.alias(shape)),
        PrimOp::Transpose(perm) => movement::transpose(x, perm, shape),
        PrimOp::BroadcastTo(_) => movement::broadcast_to(x, shape),
        PrimOp::Concat(axis) => movement::concat(inputs, *axis, shape),
        PrimOp::Slice { begin, .. } => movement::slice(x, begin, shape),
        PrimOp::Gather(axis) => movement::gather(x, inputs[1], *axis, shape),
        PrimOp::OneHot { depth, .. } => movement::one_hot(x, *depth, dtype, shape),
        PrimOp::MatMul { transpose_a, transpose_b } => matmul::matmul(x, inputs[1], *transpose_a, *transpose_b, shape),
        PrimOp::Softmax { axis, log } => softmax::softmax(x, *axis, *log),
        PrimOp::Sparse(SparseOp::Validate(dense)) => crate::backend::cpu::sparse::validate(x, dense),
        PrimOp::Sparse(SparseOp::ToDense(_)) => crate::backend::cpu::sparse::to_dense(x, inputs[1], inputs[2], shape),
        PrimOp::Sparse(SparseOp::MatMul(dense)) => {
            crate::backend::cpu::sparse::matmul(x, inputs[1], inputs[2], dense, shape)
        }
        PrimOp::Sparse(SparseOp::Reorder) => crate::backend::cpu::sparse::reorder(x),
        PrimOp::Sparse(SparseOp::Unique) => crate::backend::cpu::sparse::unique(x),
        PrimOp::Sparse(SparseOp::SegmentSum) => crate::backend::cpu::sparse::segment_sum(x, inputs[1]),
        PrimOp::Sparse(SparseOp::NonZero) => crate::backend::cpu::sparse::nonzero(x),
    }
}
