//! ndarray interop, named by cost (Rust API guidelines): `as_ndarray` borrows (zero-copy,
//! O(1)), `to_ndarray` copies, `into_ndarray` moves when the buffer is uniquely owned;
//! `Tensor::from(Array)` moves; `convert_to_tensor` / `IntoTensor` accept arrays, views (any
//! strides), `Vec`s, slices and scalars.
//!
//! A view is read-only and borrows the tensor, so the tensor cannot change under it; a
//! copied or moved array is the caller's own, so writing to it never changes a tensor.

use std::sync::Arc;

use ndarray::{Array, ArrayBase, ArrayD, ArrayView, ArrayViewD, Data as NdData, Dimension, IxDyn};

use crate::dtype::Element;
use crate::error::{Error, Loc, Result};
use crate::shape::Shape;
use crate::tensor::{Data, Tensor};

/// Anything an op accepts where it takes a tensor: tensors, ndarray arrays and views,
/// `Vec`s, slices and host scalars (which are weak: they take the other operand's dtype).
pub trait IntoTensor {
    /// Converts (moving, copying or sharing as the implementing type allows).
    fn into_tensor(self) -> Result<Tensor>;
}

impl IntoTensor for Tensor {
    #[inline]
    fn into_tensor(self) -> Result<Tensor> {
        Ok(self)
    }
}

impl IntoTensor for &Tensor {
    #[inline]
    fn into_tensor(self) -> Result<Tensor> {
        Ok(self.clone())
    }
}

impl IntoTensor for Result<Tensor> {
    #[inline]
    fn into_tensor(self) -> Result<Tensor> {
        self
    }
}

impl<T: Element> IntoTensor for T {
    #[inline]
    fn into_tensor(self) -> Result<Tensor> {
        Ok(Tensor::weak_scalar(self))
    }
}

impl<T: Element, D: Dimension> IntoTensor for Array<T, D> {
    fn into_tensor(self) -> Result<Tensor> {
        Ok(Tensor::from(self))
    }
}

impl<T: Element, D: Dimension> IntoTensor for ArrayView<'_, T, D> {
    fn into_tensor(self) -> Result<Tensor> {
        Ok(copy_from_array(&self))
    }
}

impl<S: NdData<Elem = T>, T: Element, D: Dimension> IntoTensor for &ArrayBase<S, D> {
    fn into_tensor(self) -> Result<Tensor> {
        Ok(copy_from_array(self))
    }
}

impl<T: Element> IntoTensor for Vec<T> {
    fn into_tensor(self) -> Result<Tensor> {
        let n = self.len();
        Ok(Tensor::from_vec_unchecked(self, Shape::new(&[n])))
    }
}

impl<T: Element> IntoTensor for &Vec<T> {
    fn into_tensor(self) -> Result<Tensor> {
        self.as_slice().into_tensor()
    }
}

impl<T: Element> IntoTensor for &[T] {
    fn into_tensor(self) -> Result<Tensor> {
        Ok(Tensor::from_vec_unchecked(self.to_vec(), Shape::new(&[self.len()])))
    }
}

impl<T: Element, const N: usize> IntoTensor for [T; N] {
    fn into_tensor(self) -> Result<Tensor> {
        Ok(Tensor::from_vec_unchecked(self.to_vec(), Shape::new(&[N])))
    }
}

impl<T: Element, const N: usize> IntoTensor for &[T; N] {
    fn into_tensor(self) -> Result<Tensor> {
        self.as_slice().into_tensor()
    }
}

/// Converts anything [`IntoTensor`] to a tensor: arrays, views (any strides, negative or
/// transposed) and slices are copied; an owned `Array` or `Vec` is moved; a host scalar
/// becomes a rank-0 tensor of its own Rust type (`3.0f32` is f32, `3.0f64` is f64).
#[track_caller]
pub fn convert_to_tensor(x: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    let t = x.into_tensor().map_err(|e| e.at(loc))?;
    Ok(if t.is_weak() { t.strong() } else { t })
}

/// Copies an array of any layout in logical (row-major) order.
fn copy_from_array<S: NdData<Elem = T>, T: Element, D: Dimension>(a: &ArrayBase<S, D>) -> Tensor {
    let shape = Shape::new(a.shape());
    let v = match a.as_slice() {
        Some(s) => s.to_vec(),
        None => a.iter().copied().collect(),
    };
    Tensor::from_vec_unchecked(v, shape)
}

impl<T: Element, D: Dimension> From<Array<T, D>> for Tensor {
    /// Moves the array's buffer into the tensor without copying when the array is in
    /// standard (row-major) layout; other layouts are copied once into row-major order.
    fn from(a: Array<T, D>) -> Tensor {
        if !a.is_standard_layout() {
            return copy_from_array(&a);
        }
        let shape = Shape::new(a.shape());
        let n = shape.num_elements();
        let (mut v, off) = a.into_raw_vec_and_offset();
        let off = off.unwrap_or(0);
        if off != 0 || v.len() != n {
            // A sliced owned array: keep its elements, drop the rest of the allocation.
            v.truncate(off + n);
            v.drain(..off);
        }
        Tensor::from_vec_unchecked(v, shape)
    }
}

impl<T: Element> TryFrom<Tensor> for ArrayD<T> {
    type Error = Error;
    /// Same as [`Tensor::into_ndarray`].
    fn try_from(t: Tensor) -> Result<ArrayD<T>> {
        t.into_ndarray()
    }
}

impl Tensor {
    fn host_check<T: Element>(&self, op: &'static str, loc: Loc) -> Result<&[T]> {
        // A symbolic tensor is `SymbolicTensor`, a device tensor `NotOnHost` (host_slice).
        self.host_slice::<T>(op).map_err(|e| e.at(loc))
    }

    /// A read-only, zero-copy view of the elements: O(1), whatever the size. Errors:
    /// `DTypeMismatch` when `T` is not the tensor's dtype.
    #[track_caller]
    pub fn as_ndarray<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        let loc = Loc::caller();
        let s = self.host_check::<T>("as_ndarray", loc)?;
        // SAFETY: the slice holds exactly `num_elements` row-major elements of the shape,
        // and the view borrows `self`, which keeps the buffer alive and unchanged.
        Ok(unsafe { ArrayViewD::from_shape_ptr(IxDyn(self.shape()), s.as_ptr()) })
    }

    /// A copy of the elements as an owned array (writable; writing never changes the tensor).
    #[track_caller]
    pub fn to_ndarray<T: Element>(&self) -> Result<ArrayD<T>> {
        let loc = Loc::caller();
        if self.on_device() {
            // A device-to-host copy: it waits for the GPU, then crosses the bus (counted).
            return self.to_host().map_err(|e| e.at(loc))?.into_ndarray::<T>().map_err(|e| e.at(loc));
        }
        let s = self.host_check::<T>("to_ndarray", loc)?;
        let v = s.to_vec();
        ArrayD::from_shape_vec(IxDyn(self.shape()), v).map_err(|e| internal("to_ndarray", e))
    }

    /// The elements as an owned array: moves the buffer (no copy) when this is the only
    /// handle to it (directly, or through the reshape it was made by), otherwise copies.
    #[track_caller]
    pub fn into_ndarray<T: Element>(self) -> Result<ArrayD<T>> {
        let loc = Loc::caller();
        if self.on_device() {
            return self.to_host().map_err(|e| e.at(loc))?.into_ndarray::<T>().map_err(|e| e.at(loc));
        }
        self.host_check::<T>("into_ndarray", loc)?;
        let dims = IxDyn(self.shape());
        ArrayD::from_shape_vec(dims, self.into_host_vec::<T>()).map_err(|e| internal("into_ndarray", e))
    }

    /// The row-major elements (the caller has checked that `T` is the dtype): the buffer
    /// itself when no other handle shares it, else a copy.
    fn into_host_vec<T: Element>(self) -> Vec<T> {
        match Arc::try_unwrap(self.0) {
            Ok(inner) => match inner.data {
                Data::Host(mut h) => {
                    let mut b = h.take();
                    T::slice_mut(&mut b).map(std::mem::take).unwrap_or_default()
                }
                Data::Alias(t) => t.into_host_vec::<T>(),
                Data::Symbolic(_) | Data::Gpu(_) => Vec::new(), // callers check host_slice first
            },
            Err(shared) => Tensor(shared).host_slice::<T>("into_ndarray").map(<[T]>::to_vec).unwrap_or_default(),
        }
    }

    /// The value of a rank-0 tensor. Errors: `ShapeMismatch` for any other rank,
    /// `DTypeMismatch` when `T` is not the tensor's dtype.
    #[track_caller]
    pub fn to_scalar<T: Element>(&self) -> Result<T> {
        let loc = Loc::caller();
        if self.on_device() {
            return self.to_host().map_err(|e| e.at(loc))?.to_scalar::<T>().map_err(|e| e.at(loc));
        }
        let s = self.host_check::<T>("to_scalar", loc)?;
        if self.rank() != 0 {
            return Err(Error::ShapeMismatch {
                op: "to_scalar",
                expected: "a rank-0 tensor (shape [])".into(),
                found: format!("shape {}", self.shape()),
                fix: Some("reduce it (reduce_sum, reduce_mean, ...) or reshape a one-element tensor to &[]".into()),
                location: Some(loc),
            });
        }
        Ok(s[0])
    }
}

fn internal(op: &'static str, e: ndarray::ShapeError) -> Error {
    Error::invalid(op, format!("internal shape error: {e}"))
}
