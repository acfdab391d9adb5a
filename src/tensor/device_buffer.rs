//! Elements that live on an accelerator, seen from the tensor layer: an opaque handle that
//! knows its device and can copy itself to the host. The backend that made it (today
//! `backend::wgpu`) implements `DeviceBuffer` and reads its own type back with
//! `DeviceStorage::downcast`; the tensor layer imports no backend.

#![cfg_attr(not(feature = "gpu"), allow(dead_code))] // no device buffers without `gpu`

use std::any::Any;

use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// What a backend's buffer must answer. A trait object, also so that checking
/// `Tensor: Send + Sync` stops here instead of walking a GPU library's internals (which
/// overflows the compiler's recursion limit in user crates).
pub(crate) trait DeviceBuffer: Send + Sync + Any {
    /// The device holding the elements.
    fn device(&self) -> Device;
    /// The elements as a host tensor of this shape and dtype (one counted transfer).
    fn download(&self, shape: &Shape, dtype: DType) -> Result<Tensor>;
    /// Itself, for `DeviceStorage::downcast`.
    fn as_any(&self) -> &dyn Any;
}

/// A device tensor's storage.
pub(crate) struct DeviceStorage(Box<dyn DeviceBuffer>);

impl DeviceStorage {
    pub(crate) fn new(b: impl DeviceBuffer) -> DeviceStorage {
        DeviceStorage(Box::new(b))
    }
    pub(crate) fn device(&self) -> Device {
        self.0.device()
    }
    pub(crate) fn download(&self, shape: &Shape, dtype: DType) -> Result<Tensor> {
        self.0.download(shape, dtype)
    }
    /// The backend's own buffer type, if it is `T`.
    pub(crate) fn downcast<T: 'static>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }
}
