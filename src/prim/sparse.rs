//! Shape and dtype inference of the sparse (COO) primitives, and the user errors they can
//! raise before any data is read. `indices` are i64 `[nnz, rank]`, `values` `[nnz]`; `nnz`
//! may be unknown while tracing (a data-dependent count, or an open input signature).

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::prim::{Accepts, PrimOp};
use crate::shape::{Shape, UNKNOWN};
use crate::tensor::Tensor;

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
pub(crate) fn infer(op: &PrimOp, inputs: &[&Tensor]) -> Result<(Shape, DType)> {
    let name = op.name();
    let x = inputs[0];
    match op {
        PrimOp::SparseValidate(dense) => {
            indices(name, x, Some(dense.rank()))?;
            Ok((x.shape().clone(), DType::I64))
        }
        PrimOp::SparseToDense(dense) => {
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
        PrimOp::SparseMatMul(dense) => {
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
            super::infer::check_accepts(name, Accepts::Num, v.dtype())?;
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
        PrimOp::SparseReorder => {
            let nnz = indices(name, x, None)?;
            Ok((Shape::new(&[nnz]), DType::I64))
        }
        PrimOp::SparseUnique => {
            indices(name, x, None)?;
            Ok((Shape::new(&[UNKNOWN, x.shape()[1]]), DType::I64))
        }
        PrimOp::SparseSegmentSum => {
            let nnz = indices(name, x, None)?;
            values(name, inputs[1], nnz)?;
            Ok((Shape::new(&[UNKNOWN]), inputs[1].dtype()))
        }
        PrimOp::NonZero => Ok((Shape::new(&[UNKNOWN, x.rank()]), DType::I64)),
        other => Err(Error::invalid(other.name(), "not a sparse primitive")),
    }
}
