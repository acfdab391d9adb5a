//! A `SparseTensor` across a traced function's boundary. As a parameter (`&SparseTensor`)
//! its indices and values become two graph inputs, keyed by dtype and shape like tensor
//! arguments (so a new `nnz` retraces, unless an input signature or `reduce_retracing`
//! leaves it open), and its dense shape keys the cache by value. As an output it flattens
//! to its indices, values and dense shape (a constant of the graph).

use super::SparseTensor;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::function::{ArgRef, CallArg, CallArgs, OutputPart, Outputs, Param};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The dense shape of a sparse argument, as a part of a trace cache key.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct DenseShapeKey(pub(crate) Vec<usize>);

impl Param for &'static SparseTensor {
    type Item<'a> = &'a SparseTensor;
    const IS_TENSOR: bool = true;
    fn extract<'a>(a: &ArgRef<'a>) -> Option<&'a SparseTensor> {
        match a {
            ArgRef::Sparse(s) => Some(s),
            ArgRef::Tensor(_) | ArgRef::Host(_) | ArgRef::Spec(_) => None,
        }
    }
}

impl CallArg for &SparseTensor {
    fn arg_ref(&self) -> ArgRef<'_> {
        ArgRef::Sparse(self)
    }
}

impl CallArg for SparseTensor {
    fn arg_ref(&self) -> ArgRef<'_> {
        ArgRef::Sparse(self)
    }
}

impl CallArgs for &SparseTensor {
    fn arg_refs(&self) -> smallvec::SmallVec<[ArgRef<'_>; 6]> {
        smallvec::smallvec![ArgRef::Sparse(self)]
    }
}

impl Outputs for SparseTensor {
    fn flatten(self) -> Vec<Tensor> {
        let shape = self.dense_shape();
        vec![self.indices, self.values, shape]
    }
    fn unflatten(v: Vec<Tensor>) -> Result<Self> {
        const OP: &str = "function";
        let n = v.len();
        let mut it = v.into_iter();
        let (Some(indices), Some(values), Some(shape), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(Error::invalid(OP, format!("the graph returned {n} outputs, a SparseTensor output holds 3")));
        };
        if shape.dtype() != DType::I64 || shape.rank() != 1 {
            return Err(Error::invalid(OP, "a SparseTensor output's dense shape is not an i64 vector"));
        }
        let dims = shape.host_slice::<i64>(OP)?;
        let shape: Shape = dims.iter().map(|&d| d.max(0) as usize).collect::<Vec<_>>().into();
        super::check_parts(OP, &indices, &values, &shape)?;
        Ok(SparseTensor::from_parts(indices, values, shape))
    }
}

impl OutputPart for SparseTensor {
    const WIDTH: usize = 3;
}
