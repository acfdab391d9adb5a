//! GPU storage: a tensor's elements in one wgpu storage buffer, and the two counted copies
//! across the bus, `upload` (host -> GPU) and `download` (GPU -> host).
//!
//! Layout: f32 and i32 as their bits, u8 and bool widened to a 32-bit word (bool as 0 or
//! 1), f16 as packed 16-bit halves, f64 and i64 as 8 bytes (little-endian, as on the host).
//! Buffers are padded to a multiple of 4 bytes. Which dtypes may live on a device is the
//! context's call (`Ctx::stores`): f16 and f64 only where they compute; i64 everywhere
//! (storage-only without `SHADER_INT64`).

use std::sync::Arc;
use std::time::Instant;

use super::context::Ctx;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::profiler::{Direction, record_transfer};
use crate::shape::Shape;
use crate::tensor::device_buffer::{DeviceBuffer, DeviceStorage};
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

impl DeviceBuffer for GpuBuf {
    fn device(&self) -> Device {
        GpuBuf::device(self)
    }
    fn download(&self, shape: &Shape, dtype: DType) -> Result<Tensor> {
        download(self, shape, dtype)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A GPU tensor's storage, as the kernels see it.
pub(crate) type GpuStorage = GpuBuf;

impl Tensor {
    /// The GPU storage behind this tensor (through a reshape alias), if it lives on a GPU.
    pub(crate) fn gpu_storage(&self) -> Option<&GpuStorage> {
        self.device_storage()?.downcast::<GpuBuf>()
    }
}

/// Bytes per element on the GPU, or `None` for a dtype no GPU holds (bf16).
pub(crate) fn elem_bytes(dtype: DType) -> Option<usize> {
    match dtype {
        DType::F32 | DType::I32 | DType::U8 | DType::Bool => Some(4),
        DType::F16 => Some(2),
        DType::F64 | DType::I64 => Some(8),
        DType::BF16 => None,
    }
}

/// How movement kernels (copies, gather) address a dtype: the WGSL array element type and
/// how many of them make one tensor element (8-byte dtypes move as two u32 words, so they
/// need no 64-bit shader feature; f16 moves as `f16`, which needs `enable f16;`).
pub(crate) fn move_unit(dtype: DType) -> Option<(&'static str, usize)> {
    match dtype {
        DType::F16 => Some(("f16", 1)),
        d => elem_bytes(d).map(|b| ("u32", b / 4)),
    }
}

/// What compute on the GPU needs, for messages.
pub(crate) const DTYPES_NOTE: &str = "f32, i32, u8 and bool compute on every GPU; f16 where the adapter has SHADER_F16, \
     i64 where it has SHADER_INT64 (else i64 is storage-only), f64 where it has SHADER_F64 and SHADER_INT64; bf16 never";

/// The error for a dtype the GPU cannot hold or compute in.
pub(crate) fn dtype_unsupported(op: &'static str, dtype: DType) -> Error {
    Error::Unsupported {
        op,
        message: format!(
            "dtype {dtype} is not supported by this GPU ({DTYPES_NOTE}): \
             run this op on the CPU (leave soft placement on, or use with_device(\"/CPU:0\", ..)), or cast to f32 first"
        ),
        location: None,
    }
}

/// A new, uninitialised device buffer for `n` elements of `dtype`; errors past the
/// adapter's storage-binding limit (one binding must hold a whole tensor).
pub(crate) fn alloc(ctx: &Arc<Ctx>, op: &'static str, dtype: DType, n: usize) -> Result<GpuStorage> {
    let b = elem_bytes(dtype).filter(|_| ctx.stores(dtype)).ok_or_else(|| dtype_unsupported(op, dtype))?;
    // At least 8 bytes: an empty f64/i64 tensor still binds one whole element.
    let bytes = (n * b).next_multiple_of(4).max(8) as u64;
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
    Ok(GpuBuf { ctx: ctx.clone(), buffer, len: n })
}

/// Wraps device storage as a tensor.
pub(crate) fn tensor(s: GpuStorage, shape: Shape, dtype: DType) -> Tensor {
    Tensor(Arc::new(Inner { shape, dtype, weak: false, data: Data::Gpu(DeviceStorage::new(s)) }))
}

/// The host elements as 32-bit words, in the GPU layout (f16 halves packed two a word,
/// the last one padded with zeros).
fn host_words(b: &Buffer) -> Option<Vec<u32>> {
    Some(match b {
        Buffer::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        Buffer::I32(v) => v.iter().map(|x| *x as u32).collect(),
        Buffer::U8(v) => v.iter().map(|x| *x as u32).collect(),
        Buffer::Bool(v) => v.iter().map(|x| *x as u32).collect(),
        Buffer::I64(v) => v.iter().flat_map(|x| [*x as u32, (*x >> 32) as u32]).collect(),
        Buffer::F64(v) => v.iter().flat_map(|x| [x.to_bits() as u32, (x.to_bits() >> 32) as u32]).collect(),
        Buffer::F16(v) => {
            v.chunks(2).map(|p| p[0].to_bits() as u32 | (p.get(1).map_or(0, |h| h.to_bits()) as u32) << 16).collect()
        }
        Buffer::BF16(_) => return None,
    })
}

/// Copies a host tensor to the GPU (one counted host-to-device transfer).
pub(crate) fn upload(ctx: &Arc<Ctx>, t: &Tensor) -> Result<Tensor> {
    let op = "to_device";
    let b = t.host_buffer().ok_or_else(|| t.symbolic_error(op))?;
    let started = Instant::now();
    let s = alloc(ctx, op, t.dtype(), t.num_elements())?;
    let w = host_words(b).ok_or_else(|| dtype_unsupported(op, t.dtype()))?;
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
    let b = elem_bytes(dtype).ok_or_else(|| dtype_unsupported(op, dtype))?;
    let bytes = (s.len * b).next_multiple_of(4) as u64;
    let words_out = read_words(&s.ctx, op, &s.buffer, 0, bytes)?;
    let buf = match dtype {
        DType::F32 => Buffer::F32(words_out.iter().map(|w| f32::from_bits(*w)).collect()),
        DType::I32 => Buffer::I32(words_out.iter().map(|w| *w as i32).collect()),
        DType::U8 => Buffer::U8(words_out.iter().map(|w| *w as u8).collect()),
        DType::Bool => Buffer::Bool(words_out.iter().map(|w| *w != 0).collect()),
        DType::I64 => {
            Buffer::I64(words_out.chunks_exact(2).map(|p| (p[0] as u64 | (p[1] as u64) << 32) as i64).collect())
        }
        DType::F64 => {
            Buffer::F64(words_out.chunks_exact(2).map(|p| f64::from_bits(p[0] as u64 | (p[1] as u64) << 32)).collect())
        }
        DType::F16 => Buffer::F16(
            words_out
                .iter()
                .flat_map(|w| [half::f16::from_bits(*w as u16), half::f16::from_bits((*w >> 16) as u16)])
                .take(s.len)
                .collect(),
        ),
        DType::BF16 => return Err(dtype_unsupported(op, dtype)),
    };
    Ok(Tensor::from_buffer(buf, shape.clone()))
}

/// `bytes` bytes of `buffer` from byte `offset` (both multiples of 4) as host words: one
/// counted device-to-host transfer, which submits and waits for every kernel queued before
/// it. Downloads use it, and so do the few-byte read-backs of the sparse kernels (a count,
/// a status word).
pub(crate) fn read_words(
    ctx: &Arc<Ctx>,
    op: &'static str,
    buffer: &wgpu::Buffer,
    offset: u64,
    bytes: u64,
) -> Result<Vec<u32>> {
    let started = Instant::now();
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
        ctx.copy(buffer, offset, &staging, bytes)?;
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
    record_transfer(Direction::DeviceToHost, bytes, started, ctx.device_id());
    Ok(words_out)
}
