//! GPU storage: a tensor's elements in one wgpu storage buffer, and the two counted copies
//! across the bus, `upload` (host -> GPU) and `download` (GPU -> host).
//!
//! Every element is stored in 32-bit words: f32 and i32 as their bits, u8 and bool widened
//! to a u32 (bool as 0 or 1), i64 as two words (low, high). i64 is storage-only: it can be
//! moved, gathered with, cast to i32 and produced by argmax/argmin, but not computed with.

use std::sync::Arc;
use std::time::Instant;

use super::context::Ctx;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::profiler::{Direction, record_transfer};
use crate::shape::Shape;
use crate::tensor::storage::Buffer;
use crate::tensor::{Data, Inner, Tensor};

/// The elements of a GPU tensor.
pub(crate) struct GpuBuf {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) buffer: wgpu::Buffer,
    /// Element count (the buffer may be larger: at least 4 bytes, even when empty).
    pub(crate) len: usize,
}

impl GpuBuf {
    pub(crate) fn device(&self) -> Device {
        self.ctx.device_id()
    }
}

/// Behind a trait object so that checking `Tensor: Send + Sync` stops here instead of
/// walking wgpu's internals (which overflows the compiler's recursion limit in user crates).
pub(crate) trait DeviceBuffer: Send + Sync {
    fn get(&self) -> &GpuBuf;
}

impl DeviceBuffer for GpuBuf {
    fn get(&self) -> &GpuBuf {
        self
    }
}

/// A GPU tensor's storage (see `GpuBuf`).
pub(crate) struct GpuStorage(Box<dyn DeviceBuffer>);

impl std::ops::Deref for GpuStorage {
    type Target = GpuBuf;
    fn deref(&self) -> &GpuBuf {
        self.0.get()
    }
}

/// 32-bit words per element on the GPU, or `None` when the dtype cannot live there.
pub(crate) fn words(dtype: DType) -> Option<usize> {
    match dtype {
        DType::F32 | DType::I32 | DType::U8 | DType::Bool => Some(1),
        DType::I64 => Some(2),
        DType::F64 | DType::F16 | DType::BF16 => None,
    }
}

/// The error for a dtype the GPU cannot hold.
pub(crate) fn dtype_unsupported(op: &'static str, dtype: DType) -> Error {
    Error::Unsupported {
        op,
        message: format!(
            "dtype {dtype} is not supported on the GPU backend (f32, i32, u8 and bool compute there; i64 is storage-only): \
             run this op on the CPU (leave soft placement on, or use with_device(\"/CPU:0\", ..)), or cast to f32 first"
        ),
        location: None,
    }
}

/// A new, uninitialised device buffer for `n` elements of `dtype`; errors past the
/// adapter's storage-binding limit (one binding must hold a whole tensor).
pub(crate) fn alloc(ctx: &Arc<Ctx>, op: &'static str, dtype: DType, n: usize) -> Result<GpuStorage> {
    let w = words(dtype).ok_or_else(|| dtype_unsupported(op, dtype))?;
    let bytes = (n * w * 4).max(4) as u64;
    let limit = ctx.limits.max_storage_buffer_binding_size.min(ctx.limits.max_buffer_size);
    if bytes > limit {
        return Err(Error::Unsupported {
            op,
            message: format!(
                "a {dtype} tensor of {n} elements needs {bytes} bytes on the GPU, past this adapter's storage-binding limit of {limit} bytes: \
                 split it (split/slice) or run this op on the CPU"
            ),
            location: None,
        });
    }
    let buffer = ctx.scoped(op, || {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(op),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    })?;
    Ok(GpuStorage(Box::new(GpuBuf { ctx: ctx.clone(), buffer, len: n })))
}

/// Wraps device storage as a tensor.
pub(crate) fn tensor(s: GpuStorage, shape: Shape, dtype: DType) -> Tensor {
    Tensor(Arc::new(Inner { shape, dtype, weak: false, data: Data::Gpu(s) }))
}

/// The host elements as 32-bit words, in the GPU layout.
fn host_words(b: &Buffer) -> Option<Vec<u32>> {
    Some(match b {
        Buffer::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        Buffer::I32(v) => v.iter().map(|x| *x as u32).collect(),
        Buffer::U8(v) => v.iter().map(|x| *x as u32).collect(),
        Buffer::Bool(v) => v.iter().map(|x| *x as u32).collect(),
        Buffer::I64(v) => v.iter().flat_map(|x| [*x as u32, (*x >> 32) as u32]).collect(),
        Buffer::F64(_) | Buffer::F16(_) | Buffer::BF16(_) => return None,
    })
}

/// Copies a host tensor to the GPU (one counted host-to-device transfer).
pub(crate) fn upload(ctx: &Arc<Ctx>, t: &Tensor) -> Result<Tensor> {
    let op = "to_device";
    let b = t.host_buffer().ok_or_else(|| t.symbolic_error(op))?;
    let started = Instant::now();
    let w = host_words(b).ok_or_else(|| dtype_unsupported(op, t.dtype()))?;
    let s = alloc(ctx, op, t.dtype(), t.num_elements())?;
    if !w.is_empty() {
        ctx.scoped(op, || ctx.queue.write_buffer(&s.buffer, 0, bytemuck::cast_slice(&w)))?;
    }
    record_transfer(Direction::HostToDevice, (w.len() * 4) as u64, started, ctx.device_id());
    Ok(tensor(s, t.shape().clone(), t.dtype()))
}

/// Copies a GPU tensor's elements to a host tensor (one counted device-to-host transfer:
/// it waits for every kernel queued before it).
pub(crate) fn download(s: &GpuStorage, shape: &Shape, dtype: DType) -> Result<Tensor> {
    let op = "to_ndarray";
    let ctx = &s.ctx;
    let started = Instant::now();
    let w = words(dtype).ok_or_else(|| dtype_unsupported(op, dtype))?;
    let bytes = (s.len * w * 4) as u64;
    let mut words_out: Vec<u32> = Vec::new();
    if bytes > 0 {
        let staging = ctx.scoped(op, || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("download"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        ctx.copy(&s.buffer, &staging, bytes)?;
        ctx.flush()?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        ctx.wait(op)?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Error::Gpu { op, message: format!("mapping failed: {e}"), source: Some(Box::new(e)) });
            }
            Err(_) => return Err(Error::Gpu { op, message: "mapping never completed".into(), source: None }),
        }
        {
            let view = staging.get_mapped_range(..).map_err(|e| Error::Gpu {
                op,
                message: format!("mapping failed: {e}"),
                source: Some(Box::new(e)),
            })?;
            words_out = bytemuck::cast_slice::<u8, u32>(&view).to_vec();
        }
        staging.unmap();
    }
    ctx.check(op)?;
    let buf = match dtype {
        DType::F32 => Buffer::F32(words_out.iter().map(|w| f32::from_bits(*w)).collect()),
        DType::I32 => Buffer::I32(words_out.iter().map(|w| *w as i32).collect()),
        DType::U8 => Buffer::U8(words_out.iter().map(|w| *w as u8).collect()),
        DType::Bool => Buffer::Bool(words_out.iter().map(|w| *w != 0).collect()),
        DType::I64 => {
            Buffer::I64(words_out.chunks_exact(2).map(|p| (p[0] as u64 | (p[1] as u64) << 32) as i64).collect())
        }
        DType::F64 | DType::F16 | DType::BF16 => return Err(dtype_unsupported(op, dtype)),
    };
    record_transfer(Direction::DeviceToHost, bytes, started, ctx.device_id());
    Ok(Tensor::from_buffer(buf, shape.clone()))
}
