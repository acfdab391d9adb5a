//! The public `Tensor`: an immutable, cheaply cloned handle to a shape, a dtype and data on
//! a device. Its methods are split by capability: constructors in `constructors.rs`,
//! operators in `operators.rs`, `Display` in `display.rs`; op methods live with the ops
//! (`crate::ops`), ndarray conversions in `crate::interop`.

pub(crate) mod constructors;
pub(crate) mod device_buffer;
mod display;
pub(crate) mod storage;
pub(crate) mod symbol;

use std::sync::Arc;

use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::shape::Shape;
use device_buffer::DeviceStorage;
use storage::{Buffer, HostStorage};

/// A tensor: an immutable, shared handle (cloning is one reference-count increment).
///
/// A tensor is concrete (it holds data on the host or a device) or symbolic (a node of a
/// graph being traced: shape and dtype, no values). Tensors have no `IndexMut` and no `Hash`:
/// they never change after creation, so a converted array can never write back into one.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) shape: Shape,
    pub(crate) dtype: DType,
    /// A host scalar converted implicitly: it takes the dtype of the tensor it meets
    /// (JAX's "weak type"; TensorFlow's `dtype_hint` conversion).
    pub(crate) weak: bool,
    pub(crate) data: Data,
}

pub(crate) enum Data {
    /// Row-major, contiguous elements in host memory.
    Host(HostStorage),
    /// The same elements as a host tensor, seen with another shape (reshape, expand_dims,
    /// squeeze): zero-copy. The target is always a `Host` or `Gpu` tensor, never another alias.
    Alias(Tensor),
    /// A node of a graph being traced: shape and dtype are known, values are not.
    Symbolic(symbol::Symbol),
    /// Elements in a device buffer (`backend::wgpu`'s): reading them on the host is a counted copy.
    // Never made in a build without the `gpu` feature.
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    Gpu(DeviceStorage),
}

impl Tensor {
    /// Wraps a buffer of exactly `shape.num_elements()` elements. Crate-internal: callers
    /// have checked the length.
    #[inline]
    pub(crate) fn from_buffer(buffer: Buffer, shape: Shape) -> Tensor {
        debug_assert_eq!(buffer.len(), shape.num_elements());
        Tensor(Arc::new(Inner { shape, dtype: buffer.dtype(), weak: false, data: Data::Host(HostStorage(buffer)) }))
    }

    #[inline]
    pub(crate) fn from_vec_unchecked<T: Element>(v: Vec<T>, shape: Shape) -> Tensor {
        Tensor::from_buffer(T::into_buffer(v), shape)
    }

    /// A weak rank-0 tensor from a host scalar (it adopts the other operand's dtype).
    pub(crate) fn weak_scalar<T: Element>(v: T) -> Tensor {
        Tensor(Arc::new(Inner {
            shape: Shape::scalar(),
            dtype: T::DTYPE,
            weak: true,
            data: Data::Host(HostStorage(T::into_buffer(vec![v]))),
        }))
    }

    /// The dims of this tensor.
    #[inline]
    pub fn shape(&self) -> &Shape {
        &self.0.shape
    }
    /// The element type.
    #[inline]
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    /// Where the data lives.
    pub fn device(&self) -> Device {
        match &self.0.data {
            Data::Host(_) | Data::Symbolic(_) => Device::Cpu,
            Data::Alias(t) => t.device(),
            Data::Gpu(g) => g.device(),
        }
    }
    /// The device storage behind this tensor (through a reshape alias), if it lives on a
    /// device other than the host.
    pub(crate) fn device_storage(&self) -> Option<&DeviceStorage> {
        match &self.0.data {
            Data::Gpu(g) => Some(g),
            Data::Alias(t) => t.device_storage(),
            Data::Host(_) | Data::Symbolic(_) => None,
        }
    }

    /// Whether the elements live on a device other than the host.
    pub(crate) fn on_device(&self) -> bool {
        self.device_storage().is_some()
    }

    /// This tensor's values on the host: itself when it is there, else a counted download.
    pub(crate) fn to_host(&self) -> Result<Tensor> {
        match self.device_storage() {
            Some(g) => g.download(self.shape(), self.dtype()),
            None => Ok(self.clone()),
        }
    }
    /// The number of dims.
    #[inline]
    pub fn rank(&self) -> usize {
        self.0.shape.rank()
    }
    /// The number of elements (1 for a scalar).
    #[inline]
    pub fn num_elements(&self) -> usize {
        self.0.shape.num_elements()
    }
    /// Whether this tensor is a host scalar that adopts the dtype of the tensor it meets.
    pub fn is_weak(&self) -> bool {
        self.0.weak
    }
    /// Whether this tensor is a node of a graph being traced (no values yet).
    #[inline]
    pub fn is_symbolic(&self) -> bool {
        matches!(self.0.data, Data::Symbolic(_))
    }

    /// The graph node behind a symbolic tensor.
    pub(crate) fn symbol(&self) -> Option<&symbol::Symbol> {
        match &self.0.data {
            Data::Symbolic(s) => Some(s),
            _ => None,
        }
    }

    /// A symbolic tensor for `node` of a trace.
    pub(crate) fn symbolic(sym: symbol::Symbol, shape: Shape, dtype: DType) -> Tensor {
        Tensor(Arc::new(Inner { shape, dtype, weak: false, data: Data::Symbolic(sym) }))
    }

    /// The error for reading the values of a symbolic tensor in `op`.
    pub(crate) fn symbolic_error(&self, op: &'static str) -> Error {
        Error::SymbolicTensor {
            op,
            name: self.symbol().map(|s| s.name.clone()).unwrap_or_default(),
            shape: self.shape().to_string(),
            dtype: self.dtype(),
            location: None,
        }
    }
    /// Address of the first element of the host buffer: two tensors (or a tensor and an
    /// array) with the same address share memory. Used to prove zero-copy conversions.
    /// A symbolic tensor has no buffer: its address is null.
    pub fn data_ptr(&self) -> *const u8 {
        self.host_buffer().map_or(std::ptr::null(), Buffer::as_ptr)
    }

    /// The host buffer, for kernels (`None` for a symbolic tensor).
    #[inline]
    pub(crate) fn host_buffer(&self) -> Option<&Buffer> {
        match &self.0.data {
            Data::Host(h) => Some(&h.0),
            Data::Alias(t) => t.host_buffer(),
            Data::Symbolic(_) | Data::Gpu(_) => None,
        }
    }

    /// The host buffer for writing, when this handle is the only one to a host tensor
    /// (no clone, no alias, not symbolic): lets a graph step compute in place.
    pub(crate) fn host_buffer_mut(&mut self) -> Option<&mut Buffer> {
        match &mut Arc::get_mut(&mut self.0)?.data {
            Data::Host(h) => Some(&mut h.0),
            Data::Alias(_) | Data::Symbolic(_) | Data::Gpu(_) => None,
        }
    }

    /// The same elements seen with another shape of the same size (zero-copy).
    pub(crate) fn alias(&self, shape: Shape) -> Tensor {
        let root = match &self.0.data {
            Data::Host(_) | Data::Symbolic(_) | Data::Gpu(_) => self.clone(),
            Data::Alias(t) => t.clone(),
        };
        Tensor(Arc::new(Inner { shape, dtype: self.dtype(), weak: false, data: Data::Alias(root) }))
    }

    /// A new handle to the same data (same buffer or graph node, same weak flag): a distinct
    /// identity for gradient tapes, which key tensors by handle (`ff::stop_gradient`, each
    /// read of a watched variable).
    pub(crate) fn fresh_handle(&self) -> Tensor {
        let data = match &self.0.data {
            Data::Host(_) | Data::Gpu(_) => Data::Alias(self.clone()),
            Data::Alias(t) => Data::Alias(t.clone()),
            Data::Symbolic(s) => Data::Symbolic(s.clone()),
        };
        Tensor(Arc::new(Inner { shape: self.shape().clone(), dtype: self.dtype(), weak: self.is_weak(), data }))
    }

    /// The identity of this handle (stable while any clone of it lives).
    #[inline]
    pub(crate) fn handle_id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The host elements as `T`, or `DTypeMismatch` naming `op` (`SymbolicTensor` when the
    /// tensor has no values yet).
    #[inline]
    pub(crate) fn host_slice<T: Element>(&self, op: &'static str) -> Result<&[T]> {
        let Some(b) = self.host_buffer() else {
            if self.on_device() {
                return Err(Error::NotOnHost { op, device: self.device().to_string(), location: None });
            }
            return Err(self.symbolic_error(op));
        };
        T::slice(b).ok_or_else(|| {
            Error::dtype(
                op,
                T::DTYPE.name(),
                self.dtype().name(),
                Some(format!(
                    "ask for the tensor's own element type ({}), or cast(DType::{:?}) first",
                    self.dtype(),
                    T::DTYPE
                )),
            )
        })
    }
}
