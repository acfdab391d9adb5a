//! Shape and dtype inference of the sparse (COO) primitives, and the user errors they can
//! raise before any data is read. `indices` are i64 `[nnz, rank]`, `values` `[nnz]`; `nnz`
//! may be unknown while tracing (a data-dependent count, or an open input signature).

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::prim::{Accepts, Arity};
use crate::shape::{Shape, UNKNOWN};
use crate::tensor::Tensor;

/// The sparse (COO) primitives, `PrimOp::Sparse`: `indices` are i64 `[nnz, rank]`,
/// `values` `[nnz]`. Deterministic and free of side effects, like every primitive.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) enum SparseOp {
    /// indices -> the same indices, after checking them against this dense shape: in bounds,
    /// in canonical row-major order, none repeated (a run-time error otherwise).
    Validate(Shape),
    /// (indices, values, default []) -> a dense tensor of this shape: the default, and each
    /// entry's value at its index (repeated indices add up; for bool, or). Bounds checked.
    ToDense(Shape),
    /// (indices, values) of a sparse matrix of this [m, k] shape, dense [k, n] -> [m, n].
    MatMul(Shape),
    /// indices -> i64 [nnz]: the stable permutation that sorts them into row-major order.
    Reorder,
    /// indices -> the distinct indices in row-major order: i64 [?, rank] (data-dependent).
    Unique,
    /// (indices, values) -> per distinct index (in `Unique`'s order) the sum of its values:
    /// [?] (data-dependent).
    SegmentSum,
    /// dense -> i64 [?, rank]: the indices of its non-zero elements in row-major order.
    NonZero,
}

crate::prim::kinds! {
    /// The sparse primitives without their attributes (`SparseOp::kind`), listed in `ALL`.
    pub enum SparseKind { Validate, ToDense, MatMul, Reorder, Unique, SegmentSum, NonZero }
}

impl SparseKind {
    /// The public name, used in error messages and graph text.
    pub fn name(self) -> &'static str {
        match self {
            SparseKind::Validate => "sparse::validate",
            SparseKind::ToDense => "sparse::to_dense",
            SparseKind::MatMul => "sparse::matmul",
            SparseKind::Reorder => "sparse::reorder",
            SparseKind::Unique => "sparse::unique",
            SparseKind::SegmentSum => "sparse::segment_sum",
            SparseKind::NonZero => "sparse::nonzero",
        }
    }
}

impl SparseOp {
    pub(crate) fn kind(&self) -> SparseKind {
        match self {
            SparseOp::Validate(_) => SparseKind::Validate,
            SparseOp::ToDense(_) => SparseKind::ToDense,
            SparseOp::MatMul(_) => SparseKind::MatMul,
            SparseOp::Reorder => SparseKind::Reorder,
            SparseOp::Unique => SparseKind::Unique,
            SparseOp::SegmentSum => SparseKind::SegmentSum,
            SparseOp::NonZero => SparseKind::NonZero,
        }
    }

    /// The public name of the op, used in error messages and graph text.
    pub(crate) fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// How many inputs it takes.
    pub(crate) fn arity(&self) -> Arity {
        Arity::Exactly(match self {
            SparseOp::Validate(_) | SparseOp::Reorder | SparseOp::Unique | SparseOp::NonZero => 1,
            SparseOp::SegmentSum => 2,
            SparseOp::ToDense(_) | SparseOp::MatMul(_) => 3,
        })
    }

    /// The attributes graph text shows after the name (`[shape=[3, 4]]`), or nothing.
    pub(crate) fn attrs(&self) -> String {
        match self {
            SparseOp::Validate(s) | SparseOp::ToDense(s) | SparseOp::MatMul(s) => format!("[shape={s}]"),
            SparseOp::Reorder | SparseOp::Unique | SparseOp::SegmentSum | SparseOp::NonZero => String::new(),
        }
    }
}

fn agree(a: usize, b: usize) -> bool {
    a == b || a == UNKNOWN || b == UNKNOWN
}

/// Checks COO indices: i64, rank 2, `cols` columns when given. Returns `nnz`.
fn indices(op: &'static str, idx: &Tensor, cols: Option<usize>) -> Result<usize> {
    if idx.dtype() != DType::I64 {
        return Err(Error::dtype(op, "i64 indices", idx.dtype().name(), Some("cast(DType::I64) the indices".into())));
    }
    if idx.rank() != 2 || cols.is_some_and(|c| !agree(idx.shape()[1], c)) {
        let want = cols.map_or("[nnz, rank]".to_string(), |c| format!("[nnz, {c}]"));
        return Err(Error::shape(op, format!("indices of shape {want}"), format!("shape {}", idx.shape())));
    }
    Ok(idx.shape()[0])
}

/// Checks values: rank 1, `nnz` long.
fn values(op: &'static str, v: &Tensor, nnz: usize) -> Result<()> {
    if v.rank() != 1 || !agree(v.shape()[0], nnz) {
        let n = if nnz == UNKNOWN { "nnz".to_string() } else { nnz.to_string() };
        return Err(Error::shape(
            op,
            format!("values of shape [{n}], one per index row"),
            format!("shape {}", v.shape()),
        ));
    }
    Ok(())
}

/// The output shape and dtype of a sparse primitive (the arity is checked by the caller).
pub(crate) fn infer(op: &SparseOp, inputs: &[&Tensor]) -> Result<(Shape, DType)> {
    let name = op.name();
    let x = inputs[0];
    match op {
        SparseOp::Validate(dense) => {
            indices(name, x, Some(dense.rank()))?;
            Ok((x.shape().clone(), DType::I64))
        }
        SparseOp::ToDense(dense) => {
            let nnz = indices(name, x, Some(dense.rank()))?;
            let (v, d) = (inputs[1], inputs[2]);
            values(name, v, nnz)?;
            if d.rank() != 0 {
                return Err(Error::shape(name, "a rank-0 default value", format!("shape {}", d.shape())));
            }
            if d.dtype() != v.dtype() {
                return Err(crate::prim::promote::mismatch(name, v.dtype(), d.dtype()));
            }
            Ok((dense.clone(), v.dtype()))
        }
        SparseOp::MatMul(dense) => {
            if dense.rank() != 2 {
                return Err(Error::invalid(
                    name,
                    format!("the sparse operand needs rank 2, found dense shape {dense}"),
                ));
            }
            let nnz = indices(name, x, Some(2))?;
            let (v, b) = (inputs[1], inputs[2]);
            values(name, v, nnz)?;
            if b.dtype() != v.dtype() {
                return Err(crate::prim::promote::mismatch(name, v.dtype(), b.dtype()));
            }
            Accepts::Num.check(name, v.dtype())?;
            if b.rank() != 2 {
                return Err(Error::invalid(
                    name,
                    format!(
                        "the dense operand needs rank 2, found shape {}; use expand_dims to make a vector a [k, 1] matrix",
                        b.shape()
                    ),
                ));
            }
            if !agree(b.shape()[0], dense[1]) {
                return Err(Error::ShapeMismatch {
                    op: name,
                    expected: format!(
                        "the inner dims to agree (the sparse operand has k = {}, dense shape {dense})",
                        dense[1]
                    ),
                    found: format!("a dense operand with k = {} (shape {})", b.shape()[0], b.shape()),
                    fix: Some("transpose one operand (sparse::transpose or Tensor::transpose)".into()),
                    location: None,
                });
            }
            Ok((Shape::new(&[dense[0], b.shape()[1]]), v.dtype()))
        }
        SparseOp::Reorder => {
            let nnz = indices(name, x, None)?;
            Ok((Shape::new(&[nnz]), DType::I64))
        }
        SparseOp::Unique => {
            indices(name, x, None)?;
            Ok((Shape::new(&[UNKNOWN, x.shape()[1]]), DType::I64))
        }
        SparseOp::SegmentSum => {
            let nnz = indices(name, x, None)?;
            values(name, inputs[1], nnz)?;
            Ok((Shape::new(&[UNKNOWN]), inputs[1].dtype()))
        }
        SparseOp::NonZero => Ok((Shape::new(&[UNKNOWN, x.rank()]), DType::I64)),
    }
}
