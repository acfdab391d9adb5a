//! `TensorSpec`: a dtype and a shape whose dims may be unknown (`None`), used for input
//! signatures and as the tensor part of the trace cache key.

use std::fmt;

use crate::dtype::DType;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The dtype and (partially known) shape of a tensor argument. (Not `Hash`, on purpose: a
/// spec passed to `get_concrete_function` stands for a tensor, not a host value.)
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TensorSpec {
    /// Dims; `None` matches any size.
    pub dims: Vec<Option<usize>>,
    /// The element type.
    pub dtype: DType,
}

impl TensorSpec {
    /// A spec from dims (`None` = any size) and a dtype.
    pub fn new(dims: &[Option<usize>], dtype: DType) -> TensorSpec {
        TensorSpec { dims: dims.to_vec(), dtype }
    }
    pub(crate) fn hash_into<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        self.dims.hash(h);
        self.dtype.hash(h);
    }
    /// The exact spec of a tensor.
    pub fn of(t: &Tensor) -> TensorSpec {
        TensorSpec { dims: t.shape().iter().map(|&d| Some(d)).collect(), dtype: t.dtype() }
    }
    /// Whether `t` has this dtype, this rank and the known dims.
    pub fn fits(&self, t: &Tensor) -> bool {
        t.dtype() == self.dtype
            && t.rank() == self.dims.len()
            && self.dims.iter().zip(t.shape().iter()).all(|(s, d)| s.is_none_or(|s| s == *d))
    }
    /// This spec with the dims that differ from `other` made unknown (same rank), or with
    /// every dim unknown when the ranks differ... a different rank keeps its own exact spec.
    pub(crate) fn generalized_against(&self, other: &TensorSpec) -> TensorSpec {
        if self.dims.len() != other.dims.len() || self.dtype != other.dtype {
            return self.clone();
        }
        let dims = self.dims.iter().zip(&other.dims).map(|(a, b)| if a == b { *a } else { None }).collect();
        TensorSpec { dims, dtype: self.dtype }
    }
    /// The shape symbolic tensors get while tracing (unknown dims recorded as unknown).
    pub(crate) fn trace_shape(&self) -> Shape {
        Shape(self.dims.iter().map(|d| d.unwrap_or(crate::shape::UNKNOWN)).collect())
    }
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.dims.iter().map(|d| d.map_or("None".to_string(), |d| d.to_string())).collect();
        write!(f, "TensorSpec(shape=[{}], dtype={})", dims.join(", "), self.dtype)
    }
}
