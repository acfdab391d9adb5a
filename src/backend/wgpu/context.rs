//! The wgpu device context: created lazily, once per process per adapter, and the only place
//! that talks to `wgpu::Instance`/`Adapter`/`Device`. A context is opened with the optional
//! shader features its adapter has (`SHADER_F16`, `SHADER_F64`, `SHADER_INT64`), which decide
//! the dtypes that compute there (`Ctx::computes`) and live there (`Ctx::stores`). It also owns the compute-pipeline
//! cache (keyed by WGSL source), the pending command encoder that kernels record into (one
//! queue submission per flush), and the conversion of every wgpu failure into a typed
//! `Error::Gpu` (validation errors are caught with error scopes and an uncaptured-error
//! handler, so wgpu never panics on us).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// A compiled kernel: its pipeline and the bind-group layout it was built with.
pub(crate) struct Kernel {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    /// The number of read-only storage bindings before the output.
    pub(crate) n_inputs: usize,
}

/// Commands recorded but not yet submitted.
struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: usize,
}

/// One opened adapter: device, queue, limits and caches.
pub(crate) struct Ctx {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) ordinal: usize,
    pub(crate) limits: wgpu::Limits,
    /// The optional shader features this device was opened with (`SHADER_F16`,
    /// `SHADER_F64`, `SHADER_INT64` where the adapter has them): they decide which dtypes
    /// compute here (`computes`).
    pub(crate) features: wgpu::Features,
    kernels: Mutex<HashMap<String, Arc<Kernel>>>,
    pending: Mutex<Pending>,
    /// Set by the device-lost callback: every later call fails with `Error::Gpu`.
    lost: Arc<AtomicBool>,
    /// The last error no scope caught (the handler stores it; the next call reports it).
    uncaptured: Arc<Mutex<Option<String>>>,
}

/// Every adapter wgpu found, best first (discrete, integrated, virtual, other, CPU).
struct Registry {
    adapters: Vec<wgpu::Adapter>,
    ctxs: Vec<OnceLock<std::result::Result<Arc<Ctx>, String>>>,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        adapters.sort_by_key(rank);
        let ctxs = adapters.iter().map(|_| OnceLock::new()).collect();
        Registry { adapters, ctxs }
    })
}

/// The GPUs this process can use (`Gpu(0)` is the best adapter).
pub(crate) fn gpu_count() -> usize {
    registry().adapters.len()
}

/// A one-line description of each adapter (name, backend, type).
pub(crate) fn adapter_names() -> Vec<String> {
    registry()
        .adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
        })
        .collect()
}

/// The devices that exist, as a list for error messages.
pub(crate) fn available_devices() -> String {
    let mut v = vec![Device::Cpu.to_string()];
    v.extend((0..gpu_count()).map(|n| Device::Gpu(n).to_string()));
    v.join(", ")
}

/// The context of GPU `ordinal`, opened on first use.
pub(crate) fn ctx(ordinal: usize) -> Result<Arc<Ctx>> {
    let reg = registry();
    let (Some(adapter), Some(cell)) = (reg.adapters.get(ordinal), reg.ctxs.get(ordinal)) else {
        return Err(Error::DeviceUnavailable {
            op: "gpu",
            device: Device::Gpu(ordinal).to_string(),
            available: available_devices(),
            fix: Some("use a device from the list, or leave soft placement on to fall back to the CPU".into()),
            location: None,
        });
    };
    let c = cell.get_or_init(|| open(adapter, ordinal, DTYPE_FEATURES).map(Arc::new));
    match c {
        Ok(c) => {
            if c.lost.load(Ordering::Relaxed) {
                return Err(gpu_err("gpu", format!("device {} was lost", Device::Gpu(ordinal)), None));
            }
            Ok(c.clone())
        }
        Err(m) => Err(gpu_err("gpu", m.clone(), None)),
    }
}

/// The optional features that let more dtypes compute on the GPU: requested when the
/// adapter has them, so any Vulkan 1.1 adapter still opens (without them those dtypes run
/// on the CPU).
pub(crate) const DTYPE_FEATURES: wgpu::Features =
    wgpu::Features::SHADER_F16.union(wgpu::Features::SHADER_F64).union(wgpu::Features::SHADER_INT64);

/// Opens `adapter` with those of `wanted` it has.
pub(crate) fn open(
    adapter: &wgpu::Adapter,
    ordinal: usize,
    wanted: wgpu::Features,
) -> std::result::Result<Ctx, String> {
    let info = adapter.get_info();
    let limits = adapter.limits();
    let features = adapter.features() & wanted;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("ferroflow"),
        required_features: features,
        required_limits: limits.clone(),
        ..Default::default()
    }))
    .map_err(|e| format!("could not open {} ({}): {e}", Device::Gpu(ordinal), info.name))?;
    let lost = Arc::new(AtomicBool::new(false));
    let l = lost.clone();
    device.set_device_lost_callback(move |reason, msg| {
        log::error!("ferroflow: GPU device lost ({reason:?}): {msg}");
        l.store(true, Ordering::Relaxed);
    });
    let uncaptured = Arc::new(Mutex::new(None));
    let u = uncaptured.clone();
    // wgpu's default handler panics; ours keeps the message for the next call to report.
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        log::error!("ferroflow: uncaptured GPU error: {e}");
        if let Ok(mut g) = u.lock() {
            *g = Some(e.to_string());
        }
    }));
    log::info!(
        "ferroflow: opened {} on {} ({:?}), shader features {features:?}",
        Device::Gpu(ordinal),
        info.name,
        info.backend
    );
    Ok(Ctx {
        device,
        queue,
        ordinal,
        limits,
        features,
        kernels: Mutex::new(HashMap::new()),
        pending: Mutex::new(Pending { encoder: None, dispatches: 0 }),
        lost,
        uncaptured,
    })
}

/// An `Error::Gpu` for `op`, keeping the wgpu error as its source.
pub(crate) fn gpu_err(op: &'static str, message: String, source: Option<wgpu::Error>) -> Error {
    Error::Gpu { op, message, source: source.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>) }
}

thread_local! {
    /// Depth of traced plans running on this thread: while > 0, no automatic flushes
    /// (a plan's call is one submission).
    static BATCH: Cell<usize> = const { Cell::new(0) };
    /// Queue submissions made by this thread (tests assert one per traced call).
    static SUBMITS: Cell<u64> = const { Cell::new(0) };
    /// Kernel dispatches recorded by this thread (tests assert one per fused node).
    static DISPATCHES: Cell<u64> = const { Cell::new(0) };
}

/// Kernel dispatches this thread recorded.
pub(crate) fn thread_dispatches() -> u64 {
    DISPATCHES.with(Cell::get)
}

/// Submissions this thread made.
pub(crate) fn thread_submissions() -> u64 {
    SUBMITS.with(Cell::get)
}

/// Runs `f` as one batch: kernels record into one encoder, submitted once at the end.
pub(crate) fn batch<R>(f: impl FnOnce() -> R) -> R {
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            if BATCH.with(Cell::get) == 0 {
                flush_all();
            }
        }
    }
    let _flush = Flush;
    unflushed(f)
}

/// Runs `f` with automatic flushes held back, so a multi-pass kernel (a sort's passes)
/// records into one encoder. Unlike `batch`, nothing is submitted at the end: the next
/// flush (a download, a plan's end, the next automatic one) does it.
pub(crate) fn unflushed<R>(f: impl FnOnce() -> R) -> R {
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            BATCH.with(|b| b.set(b.get().saturating_sub(1)));
        }
    }
    BATCH.with(|b| b.set(b.get() + 1));
    let _done = Done;
    f()
}

/// Submits pending work of every opened context.
pub(crate) fn flush_all() {
    if let Some(reg) = REGISTRY.get() {
        for c in reg.ctxs.iter().filter_map(|c| c.get()).filter_map(|c| c.as_ref().ok()) {
            if let Err(e) = c.flush() {
                log::error!("ferroflow: {e}");
            }
        }
    }
}

/// Submits pending work everywhere and waits for every opened GPU to finish it.
pub(crate) fn synchronize() -> Result<()> {
    if let Some(reg) = REGISTRY.get() {
        for c in reg.ctxs.iter().filter_map(|c| c.get()).filter_map(|c| c.as_ref().ok()) {
            c.flush()?;
            c.wait("synchronize")?;
        }
    }
    Ok(())
}

/// Dispatches recorded before an eager op flushes by itself (bounds the encoder's size).
const AUTO_FLUSH: usize = 64;

impl Ctx {
    pub(crate) fn device_id(&self) -> Device {
        Device::Gpu(self.ordinal)
    }

    /// Whether `d` computes on this device: f32, i32, u8 and bool always; f16 with
    /// `SHADER_F16` (stored as f16, computed in f32 registers); i64 with `SHADER_INT64`;
    /// f64 with `SHADER_F64` and `SHADER_INT64` (NaN tests and scalar parameters go through
    /// its 64-bit bits); bf16 never.
    pub(crate) fn computes(&self, d: DType) -> bool {
        let f = self.features;
        match d {
            DType::F32 | DType::I32 | DType::U8 | DType::Bool => true,
            DType::F16 => f.contains(wgpu::Features::SHADER_F16),
            DType::I64 => f.contains(wgpu::Features::SHADER_INT64),
            DType::F64 => f.contains(wgpu::Features::SHADER_F64 | wgpu::Features::SHADER_INT64),
            DType::BF16 => false,
        }
    }

    /// Whether tensors of `d` can live on this device: those that compute, and i64 always
    /// (storage-only without `SHADER_INT64`: moved, gathered with, cast to and from i32,
    /// produced by argmax).
    pub(crate) fn stores(&self, d: DType) -> bool {
        d == DType::I64 || self.computes(d)
    }

    /// The error a previous call left behind, or a lost device.
    pub(crate) fn check(&self, op: &'static str) -> Result<()> {
        if self.lost.load(Ordering::Relaxed) {
            return Err(gpu_err(op, format!("device {} was lost", self.device_id()), None));
        }
        if let Some(m) = self.uncaptured.lock().ok().and_then(|mut g| g.take()) {
            return Err(gpu_err(op, m, None));
        }
        Ok(())
    }

    /// Runs `f` inside validation and out-of-memory error scopes: a typed error instead of
    /// wgpu's panic.
    pub(crate) fn scoped<R>(&self, op: &'static str, f: impl FnOnce() -> R) -> Result<R> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let r = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            let msg = match &e {
                wgpu::Error::OutOfMemory { .. } => "out of GPU memory".to_string(),
                wgpu::Error::Validation { description, .. } | wgpu::Error::Internal { description, .. } => {
                    description.clone()
                }
            };
            return Err(gpu_err(op, msg, Some(e)));
        }
        Ok(r)
    }

    /// The kernel for this WGSL source (compiled once, cached by its text).
    pub(crate) fn kernel(&self, op: &'static str, src: &str, n_inputs: usize) -> Result<Arc<Kernel>> {
        if let Some(k) = self.kernels.lock().ok().and_then(|m| m.get(src).cloned()) {
            return Ok(k);
        }
        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let k = self.scoped(op, || {
            let mut entries: Vec<_> = (0..n_inputs as u32).map(|b| storage(b, true)).collect();
            entries.push(storage(n_inputs as u32, false));
            entries.push(storage(n_inputs as u32 + 1, true));
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(op), entries: &entries });
            let pl = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(op),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(op),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(op),
                layout: Some(&pl),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
            Kernel { pipeline, layout, n_inputs }
        });
        let k = match k {
            Ok(k) => Arc::new(k),
            Err(Error::Gpu { message, source, .. }) => {
                log::debug!("ferroflow: WGSL that failed:\n{src}");
                return Err(Error::Gpu { op, message: format!("shader compile failed: {message}"), source });
            }
            Err(e) => return Err(e),
        };
        if let Ok(mut m) = self.kernels.lock() {
            m.insert(src.to_string(), k.clone());
        }
        Ok(k)
    }

    /// Records one dispatch of `kernel` over `inputs` into `output`, with `params` (u32
    /// words) as the last binding. `groups` workgroups are laid out in x (and y past the
    /// 65,535 limit); kernels rebuild the linear id from `num_workgroups`.
    pub(crate) fn dispatch(
        &self,
        op: &'static str,
        kernel: &Kernel,
        inputs: &[&wgpu::Buffer],
        output: &wgpu::Buffer,
        params: &[u32],
        groups: u32,
    ) -> Result<()> {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1);
        let (gx, gy) = if groups <= max { (groups, 1) } else { (max, groups.div_ceil(max)) };
        self.dispatch_3d(op, kernel, inputs, output, params, (gx, gy, 1))
    }

    /// `dispatch` with an explicit 3-D grid.
    pub(crate) fn dispatch_3d(
        &self,
        op: &'static str,
        kernel: &Kernel,
        inputs: &[&wgpu::Buffer],
        output: &wgpu::Buffer,
        params: &[u32],
        (gx, gy, gz): (u32, u32, u32),
    ) -> Result<()> {
        self.check(op)?;
        if gx == 0 || gy == 0 || gz == 0 {
            return Ok(());
        }
        let max = self.limits.max_compute_workgroups_per_dimension.max(1);
        if gx > max || gy > max || gz > max {
            return Err(Error::Unsupported {
                op,
                message: format!(
                    "a grid of {gx}x{gy}x{gz} workgroups exceeds this GPU's dispatch limit of {max} per dimension; split the tensor"
                ),
                location: None,
            });
        }
        // A spare 0 word: a kernel's `Params` ending in a runtime-sized array needs the
        // binding to hold at least one element of it, even when the array is empty.
        let mut words = params.to_vec();
        words.push(0);
        self.scoped(op, || {
            let pbuf = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: (words.len() * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: true,
            });
            if let Ok(mut v) = pbuf.get_mapped_range_mut(..) {
                v.copy_from_slice(bytemuck::cast_slice(&words));
            }
            pbuf.unmap();
            let mut entries: Vec<wgpu::BindGroupEntry> = inputs
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
                .collect();
            debug_assert_eq!(inputs.len(), kernel.n_inputs);
            entries.push(wgpu::BindGroupEntry { binding: inputs.len() as u32, resource: output.as_entire_binding() });
            entries.push(wgpu::BindGroupEntry { binding: inputs.len() as u32 + 1, resource: pbuf.as_entire_binding() });
            let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(op),
                layout: &kernel.layout,
                entries: &entries,
            });
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let enc = p.encoder.get_or_insert_with(|| {
                self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ferroflow") })
            });
            {
                let mut pass =
                    enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(op), timestamp_writes: None });
                pass.set_pipeline(&kernel.pipeline);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(gx, gy, gz);
            }
            p.dispatches += 1;
            DISPATCHES.with(|d| d.set(d.get() + 1));
            p.dispatches
        })
        .and_then(|n| if n >= AUTO_FLUSH && BATCH.with(Cell::get) == 0 { self.flush() } else { Ok(()) })
    }

    /// Records a copy of `bytes` bytes of `src` from byte `offset` (both multiples of 4) to
    /// the start of `dst` (for downloads and small read-backs).
    pub(crate) fn copy(&self, src: &wgpu::Buffer, offset: u64, dst: &wgpu::Buffer, bytes: u64) -> Result<()> {
        self.scoped("copy", || {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let enc = p.encoder.get_or_insert_with(|| {
                self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ferroflow") })
            });
            enc.copy_buffer_to_buffer(src, offset, dst, 0, bytes);
        })
    }

    /// Submits what was recorded (one queue submission), if anything.
    ///
    /// The lock is held through the submission: a thread that finds nothing pending knows
    /// that everything recorded before (its own copies included) is already submitted, so a
    /// buffer mapped next cannot race a submission still in flight on another thread.
    pub(crate) fn flush(&self) -> Result<()> {
        {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.dispatches = 0;
            if let Some(enc) = p.encoder.take() {
                self.scoped("submit", || {
                    self.queue.submit([enc.finish()]);
                })?;
                SUBMITS.with(|s| s.set(s.get() + 1));
            }
        }
        self.check("submit")
    }

    /// Blocks until the GPU finished everything submitted.
    pub(crate) fn wait(&self, op: &'static str) -> Result<()> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map(|_| ()).map_err(|e| Error::Gpu {
            op,
            message: format!("waiting for the GPU failed: {e}"),
            source: Some(Box::new(e)),
        })
    }
}

#[cfg(test)]
mod tests {
    //! Behaviours on a private device (the process-wide one stays healthy for the other
    //! tests): a shader that does not compile and a lost device are typed errors, not
    //! panics, and the CPU path keeps working; a device opened without the 64-bit and f16
    //! shader features computes in none of those dtypes (i64 stays storage-only there).
    use super::*;
    use crate::prim::{PrimOp, SparseOp, UnaryOp};

    fn private_ctx_with(features: wgpu::Features) -> Option<Ctx> {
        let Some(adapter) = registry().adapters.first() else {
            eprintln!("SKIPPED: no GPU adapter (install mesa-vulkan-drivers for lavapipe)");
            return None;
        };
        Some(open(adapter, 0, features).expect("the adapter opens"))
    }

    fn private_ctx() -> Option<Ctx> {
        private_ctx_with(DTYPE_FEATURES)
    }

    #[test]
    fn a_device_without_the_features_computes_only_in_32_bit_dtypes() {
        use crate::backend::wgpu::{check, execute, storage};
        let Some(c) = private_ctx_with(wgpu::Features::empty()) else { return };
        let c = Arc::new(c);
        for d in [DType::F16, DType::F64, DType::I64, DType::BF16] {
            assert!(!c.computes(d), "{d}");
        }
        let f64s = crate::Tensor::from_slice(&[1.5f64, -2.0], &[2]).unwrap();
        let f16s = crate::Tensor::from_slice(&[half::f16::from_f32(1.5)], &[1]).unwrap();
        // f16 and f64 cannot even live there: an upload is Unsupported, naming the dtype.
        for t in [&f64s, &f16s] {
            match storage::upload(&c, t) {
                Err(Error::Unsupported { message, .. }) => assert!(message.contains(&t.dtype().to_string())),
                other => panic!("expected Unsupported for {}, got {:?}", t.dtype(), other.map(|t| t.dtype())),
            }
        }
        let neg = PrimOp::Unary(UnaryOp::Neg);
        assert!(matches!(check(&c, &neg, &[&f64s], DType::F64), Err(Error::Unsupported { .. })));
        // i64 is storage-only: no arithmetic, but the i64 <-> i32 casts run on its two words.
        let v = [5i64, -3, (1 << 40) + 7, i64::MIN];
        let host = crate::Tensor::from_slice(&v, &[4]).unwrap();
        let g = storage::upload(&c, &host).unwrap();
        assert!(matches!(check(&c, &neg, &[&g], DType::I64), Err(Error::Unsupported { .. })));
        let cast = PrimOp::Cast(DType::I32);
        check(&c, &cast, &[&g], DType::I32).unwrap();
        let narrow = execute(&c, &cast, &[&g], g.shape().clone(), DType::I32).unwrap();
        let want: Vec<i32> = v.iter().map(|x| *x as i32).collect();
        assert_eq!(narrow.to_host().unwrap().to_ndarray::<i32>().unwrap().into_raw_vec_and_offset().0, want);
        let wide = execute(&c, &PrimOp::Cast(DType::I64), &[&narrow], g.shape().clone(), DType::I64).unwrap();
        let want: Vec<i64> = want.iter().map(|x| *x as i64).collect();
        assert_eq!(wide.to_host().unwrap().to_ndarray::<i64>().unwrap().into_raw_vec_and_offset().0, want);
    }

    #[test]
    fn sparse_kernels_read_i64_indices_as_words_on_a_device_without_int64() {
        use crate::backend::cpu::sparse as cpu;
        use crate::backend::wgpu::{check, execute, storage};
        use crate::shape::Shape;
        let Some(c) = private_ctx_with(wgpu::Features::empty()) else { return };
        let c = Arc::new(c);
        let i64s = |t: &crate::Tensor| t.to_host().unwrap().to_ndarray::<i64>().unwrap();
        let host = crate::Tensor::from_slice(&[2i64, 1, 0, 3, 2, 1, -1 << 40, 0], &[4, 2]).unwrap();
        let idx = storage::upload(&c, &host).unwrap();
        // Index-only primitives need no 64-bit feature: the sort compares word pairs.
        let reorder = PrimOp::Sparse(SparseOp::Reorder);
        check(&c, &reorder, &[&idx], DType::I64).unwrap();
        let perm = execute(&c, &reorder, &[&idx], Shape::new(&[4]), DType::I64).unwrap();
        assert_eq!(i64s(&perm), i64s(&cpu::reorder(&host).unwrap()));
        let unique = PrimOp::Sparse(SparseOp::Unique);
        let u = execute(&c, &unique, &[&idx], Shape::new(&[0, 2]), DType::I64).unwrap();
        assert_eq!(i64s(&u), i64s(&cpu::unique(&host).unwrap()));
        // i64 values would need 64-bit arithmetic: Unsupported (soft placement: the CPU).
        let seg = PrimOp::Sparse(SparseOp::SegmentSum);
        let v64 = storage::upload(&c, &crate::Tensor::from_slice(&[1i64, 2, 3, 4], &[4]).unwrap()).unwrap();
        assert!(matches!(check(&c, &seg, &[&idx, &v64], DType::I64), Err(Error::Unsupported { .. })));
        // f32 values compute everywhere.
        let vh = crate::Tensor::from_slice(&[0.5f32, 1.25, -2.0, 4.0], &[4]).unwrap();
        let v = storage::upload(&c, &vh).unwrap();
        check(&c, &seg, &[&idx, &v], DType::F32).unwrap();
        let got = execute(&c, &seg, &[&idx, &v], Shape::new(&[0]), DType::F32).unwrap();
        let want = cpu::segment_sum(&host, &vh).unwrap();
        assert_eq!(got.to_host().unwrap().to_ndarray::<f32>().unwrap(), want.to_ndarray::<f32>().unwrap());
    }

    #[test]
    fn a_shader_that_does_not_compile_is_a_typed_error() {
        let Some(c) = private_ctx() else { return };
        let e = c.kernel("test_kernel", "this is not WGSL", 1).err().expect("must fail");
        match &e {
            Error::Gpu { op, message, source } => {
                assert_eq!(*op, "test_kernel");
                assert!(message.contains("shader compile failed"), "{message}");
                assert!(source.is_some(), "the wgpu error is kept as the source");
            }
            other => panic!("expected Error::Gpu, got {other:?}"),
        }
        // The device still works afterwards.
        let ok = "@group(0) @binding(0) var<storage, read> a: array<f32>;\n\
                  @group(0) @binding(1) var<storage, read_write> o: array<f32>;\n\
                  @group(0) @binding(2) var<storage, read> p: array<u32>;\n\
                  @compute @workgroup_size(1) fn main() { o[0] = a[0] + f32(p[0]); }";
        assert!(c.kernel("test_kernel", ok, 1).is_ok());
    }

    #[test]
    fn a_lost_device_is_a_typed_error_and_the_cpu_keeps_working() {
        let Some(c) = private_ctx() else { return };
        c.device.destroy();
        let _ = c.device.poll(wgpu::PollType::wait_indefinitely());
        match c.check("test_op") {
            Err(Error::Gpu { message, .. }) => assert!(message.contains("lost"), "{message}"),
            other => panic!("expected Error::Gpu for a lost device, got {other:?}"),
        }
        let x = crate::Tensor::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
        let y = (&x + &x).unwrap();
        assert_eq!(y.to_ndarray::<f32>().unwrap().into_raw_vec_and_offset().0, vec![2.0, 4.0]);
    }
}
