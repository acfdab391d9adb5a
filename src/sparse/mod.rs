//! Sparse tensors in COO form, as TensorFlow's `tf.sparse.SparseTensor`: i64 `indices`
//! `[nnz, rank]` (one row per stored entry), `values` `[nnz]` of any dtype, and a dense
//! shape. This file holds the type, its construction and validation; `ops.rs` the sparse
//! ops (composites over primitives, so they trace like any op); `kernels.rs` the CPU
//! kernels of the sparse primitives; `traced.rs` how a `SparseTensor` crosses a traced
//! function's boundary.
//!
//! The dense shape is static: known when the tensor is made, like the shape of a
//! `tf.SparseTensorSpec`, so a traced function keys its cache on it by value. Indices and
//! values are tensors, symbolic while tracing.

mod ops;
mod traced;

use std::fmt;

pub use ops::{AddOperand, IntoDenseShape, IntoIndices};
pub use ops::{add, coalesce, from_dense, map_values, matmul, reduce_sum, reorder, to_dense, transpose};
pub(crate) use traced::DenseShapeKey;

use crate::dispatch::apply;
use crate::dtype::DType;
use crate::error::{Error, Loc, Result};
use crate::prim::{PrimOp, SparseOp};
use crate::shape::{Shape, UNKNOWN};
use crate::tensor::Tensor;

/// How [`SparseTensor::new_with`] builds a sparse tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SparseOptions {
    /// Check the indices (TensorFlow's `validate_indices`): each in bounds, in canonical
    /// row-major order, none repeated. `true` by default. `false` skips the order and
    /// repeat checks where the caller promises them, or where the next step is
    /// [`reorder`] or [`coalesce`]; bounds are still checked by every op that reads the
    /// indices, so an out-of-range index is an error, never a wrong write.
    pub validate: bool,
}

impl Default for SparseOptions {
    fn default() -> Self {
        SparseOptions { validate: true }
    }
}

/// A sparse tensor in COO form: `indices` (i64 `[nnz, rank]`), `values` (`[nnz]`, any
/// dtype) and a dense shape. Immutable and cheap to clone, like [`Tensor`].
///
/// ```
/// use ferroflow as ff;
/// # fn main() -> ff::Result<()> {
/// let st = ff::SparseTensor::new(&[[0, 1], [2, 3]], &[10.0f32, 20.0], [3, 4])?;
/// let dense = st.to_dense()?.to_ndarray::<f32>()?;
/// assert_eq!(dense[[0, 1]], 10.0);
/// assert_eq!(dense[[2, 3]], 20.0);
/// assert_eq!(dense.sum(), 30.0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SparseTensor {
    indices: Tensor,
    values: Tensor,
    shape: Shape,
}

impl SparseTensor {
    /// A sparse tensor from its indices (anything [`IntoIndices`]: an integer tensor or
    /// ndarray array `[nnz, rank]`, or rows such as `&[[0, 1], [2, 3]]`; i32 and u8 are
    /// widened to i64), its values (anything [`IntoTensor`](crate::IntoTensor) of shape
    /// `[nnz]`) and its dense shape (`[3, 4]`, `&[usize]`, a `&Shape` or an integer tensor).
    ///
    /// The indices are validated as TensorFlow does: an index out of bounds, repeated, or
    /// out of canonical row-major order is `Error::InvalidSparseIndices`, naming the entry
    /// and the fix. Inside a traced function the check is a graph node, and the error
    /// surfaces when the graph runs. Float indices are `DTypeMismatch`; indices and values
    /// of different lengths, or indices whose width is not the rank, are `ShapeMismatch`.
    #[track_caller]
    pub fn new(
        indices: impl IntoIndices,
        values: impl crate::IntoTensor,
        dense_shape: impl IntoDenseShape,
    ) -> Result<Self> {
        let loc = Loc::caller();
        Self::build(indices, values, dense_shape, SparseOptions::default(), loc)
    }

    /// [`new`](Self::new) with options: `SparseOptions { validate: false }` skips the index
    /// checks.
    #[track_caller]
    pub fn new_with(
        indices: impl IntoIndices,
        values: impl crate::IntoTensor,
        dense_shape: impl IntoDenseShape,
        options: SparseOptions,
    ) -> Result<Self> {
        let loc = Loc::caller();
        Self::build(indices, values, dense_shape, options, loc)
    }

    fn build(
        indices: impl IntoIndices,
        values: impl crate::IntoTensor,
        dense_shape: impl IntoDenseShape,
        options: SparseOptions,
        loc: Loc,
    ) -> Result<Self> {
        const OP: &str = "SparseTensor::new";
        let indices = indices.into_indices().map_err(|e| e.at(loc))?;
        let values = values.into_tensor().map_err(|e| e.at(loc))?.strong();
        let shape = dense_shape.into_dense_shape().map_err(|e| e.at(loc))?;
        let indices = match indices.dtype() {
            DType::I64 => indices,
            DType::I32 | DType::U8 => crate::ops::math::cast_to(&indices, DType::I64, loc)?,
            d => {
                return Err(Error::DTypeMismatch {
                    op: OP,
                    expected: "integer indices (i64; i32 and u8 are widened to i64)".into(),
                    found: format!("{d} indices"),
                    fix: Some(
                        "indices are positions: build them from integers, or cast(DType::I64) if they hold whole numbers"
                            .into(),
                    ),
                    location: Some(loc),
                });
            }
        };
        check_parts(OP, &indices, &values, &shape).map_err(|e| e.at(loc))?;
        let indices = if options.validate {
            apply(PrimOp::Sparse(SparseOp::Validate(shape.clone())), &[&indices], loc)?
        } else {
            indices
        };
        Ok(SparseTensor { indices, values, shape })
    }

    /// A sparse tensor from parts already checked (or made by an op).
    pub(crate) fn from_parts(indices: Tensor, values: Tensor, shape: Shape) -> SparseTensor {
        SparseTensor { indices, values, shape }
    }

    /// The same dense shape with other indices and values (a traced function's symbols).
    pub(crate) fn with_parts(&self, indices: Tensor, values: Tensor) -> SparseTensor {
        SparseTensor { indices, values, shape: self.shape.clone() }
    }

    /// The indices: i64 `[nnz, rank]`, one row per stored entry.
    pub fn indices(&self) -> &Tensor {
        &self.indices
    }
    /// The values: `[nnz]`.
    pub fn values(&self) -> &Tensor {
        &self.values
    }
    /// The dense shape as a tensor: i64 `[rank]` (TensorFlow's `dense_shape`).
    pub fn dense_shape(&self) -> Tensor {
        let v: Vec<i64> = self.shape.iter().map(|&d| d as i64).collect();
        Tensor::from_vec_unchecked(v, Shape::new(&[self.shape.rank()]))
    }
    /// The dense shape (TensorFlow's static `shape`).
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    /// The rank of the dense tensor.
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
    /// The dtype of the values.
    pub fn dtype(&self) -> DType {
        self.values.dtype()
    }
    /// How many entries are stored (`usize::MAX` when unknown: inside a traced function
    /// whose input signature leaves it open, or after an op whose count depends on data).
    pub fn nnz(&self) -> usize {
        self.values.shape().first().copied().unwrap_or(UNKNOWN)
    }
    /// Whether the parts are symbolic (inside a traced function).
    pub fn is_symbolic(&self) -> bool {
        self.indices.is_symbolic() || self.values.is_symbolic()
    }

    /// `nnz=…, dense_shape=[…], dtype` for messages.
    pub(crate) fn spec_text(&self) -> String {
        let nnz = self.nnz();
        let n = if nnz == UNKNOWN { "?".to_string() } else { nnz.to_string() };
        format!("SparseTensor(nnz={n}, dense_shape={}, dtype={})", self.shape, self.dtype())
    }
}

/// Checks the parts fit together: indices `[nnz, rank]` of the dense shape's rank, values
/// `[nnz]`.
pub(crate) fn check_parts(op: &'static str, indices: &Tensor, values: &Tensor, shape: &Shape) -> Result<()> {
    let agree = |a: usize, b: usize| a == b || a == UNKNOWN || b == UNKNOWN;
    if indices.rank() != 2 {
        return Err(Error::ShapeMismatch {
            op,
            expected: "indices of shape [nnz, rank], one row per entry".into(),
            found: format!("indices of shape {}", indices.shape()),
            fix: Some(format!("give one row of {} coordinates per entry, e.g. &[[0, 1], [2, 3]]", shape.rank())),
            location: None,
        });
    }
    if !agree(indices.shape()[1], shape.rank()) {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("indices with {} columns, one per dim of dense shape {shape}", shape.rank()),
            found: format!("indices of shape {}", indices.shape()),
            fix: None,
            location: None,
        });
    }
    if values.rank() != 1 || !agree(values.shape()[0], indices.shape()[0]) {
        let nnz = indices.shape()[0];
        let n = if nnz == UNKNOWN { "nnz".to_string() } else { nnz.to_string() };
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("one value per index row: values of shape [{n}]"),
            found: format!("values of shape {} for indices of shape {}", values.shape(), indices.shape()),
            fix: None,
            location: None,
        });
    }
    Ok(())
}

impl fmt::Display for SparseTensor {
    /// `SparseTensor(indices=…, values=…, dense_shape=[3, 4])`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SparseTensor(indices={}, values={}, dense_shape={})", self.indices, self.values, self.shape)
    }
}

impl fmt::Debug for SparseTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
