//! `Tensor` constructors from Rust data: `from_vec`, `from_slice`, `scalar`.

use crate::dtype::Element;
use crate::error::{Error, Loc, Result};
use crate::shape::{Shape, fmt_dims};
use crate::tensor::Tensor;

impl Tensor {
    /// A tensor that takes ownership of `data` (no copy), laid out row-major in `shape`.
    /// Errors: `ShapeMismatch` when `data.len()` is not the product of `shape`.
    #[track_caller]
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        check_len("Tensor::from_vec", data.len(), shape, Loc::caller())?;
        Ok(Tensor::from_vec_unchecked(data, Shape::new(shape)))
    }

    /// A tensor holding a copy of `data`, laid out row-major in `shape`.
    /// Errors: `ShapeMismatch` when `data.len()` is not the product of `shape`.
    #[track_caller]
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        check_len("Tensor::from_slice", data.len(), shape, Loc::caller())?;
        Ok(Tensor::from_vec_unchecked(data.to_vec(), Shape::new(shape)))
    }

    /// A rank-0 tensor of `v`'s own dtype (`3.0f32` is f32, `3i64` is i64).
    pub fn scalar<T: Element>(v: T) -> Tensor {
        Tensor::from_vec_unchecked(vec![v], Shape::scalar())
    }

    /// The same tensor without the weak flag of a host scalar.
    pub(crate) fn strong(&self) -> Tensor {
        if self.is_weak() { self.alias(self.shape().clone()) } else { self.clone() }
    }
}

fn check_len(op: &'static str, len: usize, shape: &[usize], loc: Loc) -> Result<()> {
    let n = Shape::checked_num_elements(op, shape).map_err(|e| e.at(loc))?;
    if n != len {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("{n} elements for shape {}", fmt_dims(shape)),
            found: format!("{len} elements"),
            fix: None,
            location: Some(loc),
        });
    }
    Ok(())
}
