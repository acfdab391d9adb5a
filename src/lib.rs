//! # ferroflow
//!
//! A tensor framework with two modes, in the spirit of TensorFlow 2: eager tensors that
//! compute at once and convert to `ndarray` arrays, and traced functions that record
//! the same ops into a graph, optimize it and run it on the CPU or the GPU.
//!
//! ```
//! use ferroflow as ff;
//! # fn main() -> ff::Result<()> {
//! let x = ff::Tensor::from(ndarray::array![[1.0f32, 2.0], [3.0, 4.0]]); // moves, no copy
//! let w = ff::Tensor::from_slice(&[0.5f32, -1.0], &[2, 1])?;
//! let y = (x.matmul(&w)? + 1.0f32)?.relu()?;            // host scalars take the tensor's dtype
//! assert_eq!(y.to_ndarray::<f32>()?.into_raw_vec_and_offset().0, vec![0.0, 0.0]);
//! let e = ff::add(&x, &ff::Tensor::scalar(1i32)).unwrap_err(); // f32 + i32: strict dtypes
//! assert!(matches!(e, ff::Error::DTypeMismatch { .. }));
//! # Ok(()) }
//! ```
//!
//! The book (`book/`) teaches the library; `ARCHITECTURE.md` maps the code.

mod autograd;
pub mod config;
pub mod data;
mod device;
mod dtype;
mod error;
pub mod function;
pub mod gpu;
pub mod graph;
pub mod image;
pub mod interop;
pub mod io;
pub mod nn;
pub mod optim;
pub mod profiler;
pub mod random;
pub(crate) mod runtime;
mod shape;
pub mod sparse;
mod variable;

pub(crate) mod backend;
#[cfg(doctest)]
mod book_doctests;
pub(crate) mod dispatch;
pub(crate) mod ops;
pub(crate) mod prim;
pub(crate) mod tensor;

/// Not public API: no stability, no semver. The primitive lists, for the integration tests'
/// tidy check that every primitive is covered by the op table, the gradient checks and the
/// optimizer's random programs.
#[doc(hidden)]
pub mod __internal {
    pub use crate::prim::{BinaryOp, PrimKind, SparseKind, UnaryOp};
}

pub use autograd::{
    GradSource, GradSourceRef, GradientOptions, GradientTape, TapeOptions, UnconnectedGradients, stop_gradient,
};
pub use config::{DevicePolicy, PromotionMode};
pub use device::Device;
pub use dtype::{DType, Element};
pub use error::{Error, Loc, Result, SparseIndexProblem};
pub use function::{ConcreteFunction, Function, FunctionOptions, TensorSpec, function, function_with};
pub use graph::{OptimizationReport, OptimizerOptions, PassKind, PassReport};
pub use interop::ndarray::{IntoTensor, convert_to_tensor};
pub use ops::control::{cond, while_loop};
pub use ops::creation::{arange, eye, full, linspace, ones, zeros};
pub use ops::math::{
    abs, add, cast, clip, cos, div, equal, exp, floor_div, gelu, greater, greater_equal, less, less_equal, log,
    logical_and, logical_not, logical_or, maximum, minimum, mul, neg, not_equal, pow, relu, rsqrt, sigmoid, sin, sqrt,
    square, sub, tanh, where_,
};
pub use ops::nn::{log_softmax, matmul, matmul_with, softmax};
pub use ops::print::print;
pub use ops::reduce::{argmax, argmin, reduce_max, reduce_mean, reduce_min, reduce_prod, reduce_sum};
pub use ops::shape::{
    SplitSpec, broadcast_to, concat, expand_dims, gather, one_hot, reshape, slice, split, squeeze, stack, transpose,
};
pub use prim::promote::numpy_promote;
pub use runtime::placement::{IntoDevice, devices, with_device};
pub use runtime::print::capture_prints;
pub use shape::Shape;
pub use sparse::{SparseOptions, SparseTensor};
pub use tensor::Tensor;
pub use tensor::storage::clear_pool;
pub use variable::Variable;
