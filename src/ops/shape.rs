//! Shape ops: reshape (zero-copy), transpose, expand_dims, squeeze, broadcast_to, concat,
//! stack, split, slice, gather, one_hot. Composites (expand_dims, squeeze, stack, split)
//! are written over the primitives once.

use std::borrow::Borrow;

use super::arg;
use crate::dispatch::apply;
use crate::dtype::DType;
use crate::error::{Error, Loc, Result};
use crate::interop::ndarray::IntoTensor;
use crate::prim::{Axes, PrimOp};
use crate::shape::{Shape, UNKNOWN, fmt_dims, normalize_axes, normalize_axis};
use crate::tensor::Tensor;

/// How `split` divides an axis: into `n` equal parts, or into parts of the given sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SplitSpec {
    /// `n` equal parts (the axis must divide evenly).
    Parts(usize),
    /// Parts of these sizes (they must add up to the axis).
    Sizes(Vec<usize>),
}

impl From<usize> for SplitSpec {
    fn from(n: usize) -> Self {
        SplitSpec::Parts(n)
    }
}
impl From<&[usize]> for SplitSpec {
    fn from(s: &[usize]) -> Self {
        SplitSpec::Sizes(s.to_vec())
    }
}
impl<const N: usize> From<&[usize; N]> for SplitSpec {
    fn from(s: &[usize; N]) -> Self {
        SplitSpec::Sizes(s.to_vec())
    }
}
impl From<Vec<usize>> for SplitSpec {
    fn from(s: Vec<usize>) -> Self {
        SplitSpec::Sizes(s)
    }
}

pub(crate) fn reshape_impl(x: &Tensor, dims: &[isize], loc: Loc) -> Result<Tensor> {
    // Inference resolves -1 (again at run time in a graph whose input dims are unknown).
    apply(PrimOp::Reshape(dims.iter().copied().collect()), &[x], loc)
}

/// A shape as reshape dims; an unknown dim becomes -1 (inferred when the graph runs).
fn as_spec(d: usize) -> isize {
    if d == UNKNOWN { -1 } else { d as isize }
}

pub(crate) fn transpose_impl(x: &Tensor, perm: &[usize], loc: Loc) -> Result<Tensor> {
    apply(PrimOp::Transpose(perm.iter().copied().collect()), &[x], loc)
}

pub(crate) fn expand_dims_impl(x: &Tensor, axis: isize, loc: Loc) -> Result<Tensor> {
    let a = normalize_axis("expand_dims", axis, x.rank() + 1).map_err(|e| e.at(loc))?;
    let mut dims: Vec<isize> = x.shape().iter().map(|&d| as_spec(d)).collect();
    dims.insert(a, 1);
    reshape_impl(x, &dims, loc)
}

fn squeeze_impl(x: &Tensor, axes: Option<&[isize]>, loc: Loc) -> Result<Tensor> {
    let drop: Axes = match axes {
        None => (0..x.rank()).filter(|&d| x.shape()[d] == 1).collect(),
        Some(_) => {
            let a = normalize_axes("squeeze", axes, x.rank()).map_err(|e| e.at(loc))?;
            if let Some(&d) = a.iter().find(|&&d| x.shape()[d] != 1) {
                return Err(Error::InvalidArgument {
                    op: "squeeze",
                    message: format!(
                        "cannot squeeze axis {d} of size {} (shape {}): only size-1 axes can be squeezed",
                        x.shape()[d],
                        x.shape()
                    ),
                    location: Some(loc),
                });
            }
            a
        }
    };
    let dims: Vec<isize> = (0..x.rank()).filter(|d| !drop.contains(d)).map(|d| as_spec(x.shape()[d])).collect();
    reshape_impl(x, &dims, loc)
}

pub(crate) fn concat_impl(xs: &[Tensor], axis: isize, loc: Loc) -> Result<Tensor> {
    let Some(first) = xs.first() else {
        return Err(Error::InvalidArgument {
            op: "concat",
            message: "expected at least one tensor, found none".into(),
            location: Some(loc),
        });
    };
    let a = normalize_axis("concat", axis, first.rank()).map_err(|e| e.at(loc))?;
    let refs: Vec<&Tensor> = xs.iter().collect();
    apply(PrimOp::Concat(a), &refs, loc)
}

pub(crate) fn slice_impl(x: &Tensor, begin: &[usize], size: &[isize], loc: Loc) -> Result<Tensor> {
    if begin.len() != x.rank() || size.len() != x.rank() {
        return Err(Error::InvalidArgument {
            op: "slice",
            message: format!(
                "begin and size need {} entries (rank of {}), found {} and {}",
                x.rank(),
                x.shape(),
                begin.len(),
                size.len()
            ),
            location: Some(loc),
        });
    }
    // Inference checks the bounds and resolves -1 (to the end of the axis).
    apply(PrimOp::Slice { begin: begin.iter().copied().collect(), size: size.iter().copied().collect() }, &[x], loc)
}

fn split_impl(x: &Tensor, spec: SplitSpec, axis: isize, loc: Loc) -> Result<Vec<Tensor>> {
    let a = normalize_axis("split", axis, x.rank()).map_err(|e| e.at(loc))?;
    let dim = x.shape()[a];
    let sizes = match spec {
        SplitSpec::Parts(0) => {
            return Err(Error::InvalidArgument {
                op: "split",
                message: "cannot split into 0 parts".into(),
                location: Some(loc),
            });
        }
        SplitSpec::Parts(n) if !dim.is_multiple_of(n) => {
            return Err(Error::InvalidArgument {
                op: "split",
                message: format!("axis {a} of size {dim} does not divide into {n} equal parts; pass sizes instead"),
                location: Some(loc),
            });
        }
        SplitSpec::Parts(n) => vec![dim / n; n],
        SplitSpec::Sizes(s) => {
            if s.iter().sum::<usize>() != dim {
                return Err(Error::ShapeMismatch {
                    op: "split",
                    expected: format!("sizes adding up to {dim} (axis {a} of {})", x.shape()),
                    found: format!("{} (sum {})", fmt_dims(&s), s.iter().sum::<usize>()),
                    fix: None,
                    location: Some(loc),
                });
            }
            s
        }
    };
    let mut at = 0;
    let mut out = Vec::with_capacity(sizes.len());
    for s in sizes {
        let mut begin = vec![0usize; x.rank()];
        begin[a] = at;
        let size: Vec<isize> = (0..x.rank()).map(|d| if d == a { s as isize } else { -1 }).collect();
        out.push(slice_impl(x, &begin, &size, loc)?);
        at += s;
    }
    Ok(out)
}

pub(crate) fn gather_impl(x: &Tensor, idx: &Tensor, axis: isize, loc: Loc) -> Result<Tensor> {
    let a = normalize_axis("gather", axis, x.rank()).map_err(|e| e.at(loc))?;
    apply(PrimOp::Gather(a), &[x, idx], loc)
}

pub(crate) fn one_hot_impl(idx: &Tensor, depth: usize, loc: Loc) -> Result<Tensor> {
    apply(PrimOp::OneHot { depth, dtype: DType::F32 }, &[idx], loc)
}

/// The same elements in a new shape (zero-copy); one dim may be -1 to be inferred.
#[track_caller]
pub fn reshape(x: impl IntoTensor, shape: &[isize]) -> Result<Tensor> {
    let loc = Loc::caller();
    reshape_impl(&arg(x, loc)?, shape, loc)
}

/// Permutes the dims: output dim `i` is input dim `perm[i]`.
#[track_caller]
pub fn transpose(x: impl IntoTensor, perm: &[usize]) -> Result<Tensor> {
    let loc = Loc::caller();
    transpose_impl(&arg(x, loc)?, perm, loc)
}

/// Inserts a size-1 dim at `axis` (in `-rank-1..=rank`).
#[track_caller]
pub fn expand_dims(x: impl IntoTensor, axis: isize) -> Result<Tensor> {
    let loc = Loc::caller();
    expand_dims_impl(&arg(x, loc)?, axis, loc)
}

/// Removes size-1 dims: all of them (`None`) or the listed ones (which must have size 1).
#[track_caller]
pub fn squeeze(x: impl IntoTensor, axes: Option<&[isize]>) -> Result<Tensor> {
    let loc = Loc::caller();
    squeeze_impl(&arg(x, loc)?, axes, loc)
}

/// Repeats `x` along broadcast dims to `shape` (NumPy rules).
#[track_caller]
pub fn broadcast_to(x: impl IntoTensor, shape: &[usize]) -> Result<Tensor> {
    let loc = Loc::caller();
    apply(PrimOp::BroadcastTo(Shape::new(shape)), &[&arg(x, loc)?], loc)
}

/// Joins tensors along an existing axis.
#[track_caller]
pub fn concat<T: Borrow<Tensor>>(xs: &[T], axis: isize) -> Result<Tensor> {
    let v: Vec<Tensor> = xs.iter().map(|t| t.borrow().clone()).collect();
    concat_impl(&v, axis, Loc::caller())
}

/// Joins tensors of one shape along a new axis.
#[track_caller]
pub fn stack<T: Borrow<Tensor>>(xs: &[T], axis: isize) -> Result<Tensor> {
    let loc = Loc::caller();
    // Checked here so that errors name `stack`, not the expand_dims and concat it is made of.
    let Some(first) = xs.first().map(Borrow::borrow) else {
        return Err(Error::InvalidArgument {
            op: "stack",
            message: "expected at least one tensor, found none".into(),
            location: Some(loc),
        });
    };
    normalize_axis("stack", axis, first.rank() + 1).map_err(|e| e.at(loc))?;
    for (i, t) in xs.iter().map(Borrow::borrow).enumerate().skip(1) {
        if t.dtype() != first.dtype() {
            return Err(crate::prim::promote::mismatch("stack", first.dtype(), t.dtype()).at(loc));
        }
        if t.shape() != first.shape() {
            return Err(Error::ShapeMismatch {
                op: "stack",
                expected: format!("tensors of one shape ({})", first.shape()),
                found: format!("{} at position {i}", t.shape()),
                fix: None,
                location: Some(loc),
            });
        }
    }
    let v: Vec<Tensor> = xs.iter().map(|t| expand_dims_impl(t.borrow(), axis, loc)).collect::<Result<_>>()?;
    concat_impl(&v, axis, loc)
}

/// Splits along `axis` into equal parts (`2`) or parts of given sizes (`&[1, 3]`).
#[track_caller]
pub fn split(x: impl IntoTensor, parts: impl Into<SplitSpec>, axis: isize) -> Result<Vec<Tensor>> {
    let loc = Loc::caller();
    split_impl(&arg(x, loc)?, parts.into(), axis, loc)
}

/// The block starting at `begin` of extent `size` (-1 = to the end), as `tf.slice`.
#[track_caller]
pub fn slice(x: impl IntoTensor, begin: &[usize], size: &[isize]) -> Result<Tensor> {
    let loc = Loc::caller();
    slice_impl(&arg(x, loc)?, begin, size, loc)
}

/// Picks entries of `x` along `axis` by integer `indices`; an index outside the axis is
/// `Error::IndexOutOfBounds`.
#[track_caller]
pub fn gather(x: impl IntoTensor, indices: impl IntoTensor, axis: isize) -> Result<Tensor> {
    let loc = Loc::caller();
    gather_impl(&arg(x, loc)?, &arg(indices, loc)?, axis, loc)
}

/// One-hot f32 vectors of length `depth` for integer `indices` (shape `indices + [depth]`).
/// An index outside `0..depth` is `Error::IndexOutOfBounds` (TensorFlow gives a zero row).
#[track_caller]
pub fn one_hot(indices: impl IntoTensor, depth: usize) -> Result<Tensor> {
    let loc = Loc::caller();
    one_hot_impl(&arg(indices, loc)?, depth, loc)
}

impl Tensor {
    /// See [`reshape`].
    #[track_caller]
    pub fn reshape(&self, shape: &[isize]) -> Result<Tensor> {
        reshape_impl(self, shape, Loc::caller())
    }
    /// See [`transpose`].
    #[track_caller]
    pub fn transpose(&self, perm: &[usize]) -> Result<Tensor> {
        transpose_impl(self, perm, Loc::caller())
    }
    /// See [`expand_dims`].
    #[track_caller]
    pub fn expand_dims(&self, axis: isize) -> Result<Tensor> {
        expand_dims_impl(self, axis, Loc::caller())
    }
    /// See [`squeeze`].
    #[track_caller]
    pub fn squeeze(&self, axes: Option<&[isize]>) -> Result<Tensor> {
        squeeze_impl(self, axes, Loc::caller())
    }
    /// See [`broadcast_to`].
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        apply(PrimOp::BroadcastTo(Shape::new(shape)), &[self], Loc::caller())
    }
    /// See [`split`].
    #[track_caller]
    pub fn split(&self, parts: impl Into<SplitSpec>, axis: isize) -> Result<Vec<Tensor>> {
        split_impl(self, parts.into(), axis, Loc::caller())
    }
    /// See [`slice`].
    #[track_caller]
    pub fn slice(&self, begin: &[usize], size: &[isize]) -> Result<Tensor> {
        slice_impl(self, begin, size, Loc::caller())
    }
    /// See [`gather`].
    #[track_caller]
    pub fn gather(&self, indices: impl IntoTensor, axis: isize) -> Result<Tensor> {
        let loc = Loc::caller();
        gather_impl(self, &arg(indices, loc)?, axis, loc)
    }
    /// See [`one_hot`]; `self` holds the indices.
    #[track_caller]
    pub fn one_hot(&self, depth: usize) -> Result<Tensor> {
        one_hot_impl(self, depth, Loc::caller())
    }
}
