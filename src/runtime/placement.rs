//! Device placement: the `with_device` scope stack, where each op runs, soft placement
//! (a GPU that is missing or has no kernel for the op means the CPU, with a logged notice)
//! and the device policy for inputs that live elsewhere (copy silently, copy and warn, or
//! refuse). Every copy goes through `backend::wgpu::storage` and is counted by the profiler.
//!
//! Where an op runs: the innermost `with_device` scope; without one, the device of its first
//! input that lives on a GPU; otherwise the CPU. (TensorFlow puts every op on GPU:0 when one
//! exists; ferroflow keeps the CPU the default so that moving to the GPU is a visible
//! decision.)

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::backend::wgpu::context::{self, Ctx};
/// A GPU's context, as the graph executor holds it for a plan placed there.
pub(crate) use crate::backend::wgpu::context::{Ctx as GpuCtx, batch as gpu_batch};
/// Which distribution a GPU random draw makes.
pub(crate) use crate::backend::wgpu::kernels::Dist;
use crate::backend::wgpu::storage;
use crate::config::{DevicePolicy, device_policy, soft_device_placement};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Loc, Result};
use crate::prim::fusion::Fusion;
use crate::prim::{HostScalars, PrimOp};
use crate::shape::Shape;
use crate::tensor::Tensor;

thread_local! {
    static SCOPE: RefCell<Vec<Device>> = const { RefCell::new(Vec::new()) };
}

/// What names a device: a `Device`, or a TensorFlow name such as `"/GPU:0"`.
pub trait IntoDevice {
    /// The device, or `InvalidArgument` for a name that does not parse.
    fn into_device(self) -> Result<Device>;
}

impl IntoDevice for Device {
    fn into_device(self) -> Result<Device> {
        Ok(self)
    }
}
impl IntoDevice for &str {
    #[track_caller]
    fn into_device(self) -> Result<Device> {
        Device::parse(self)
    }
}
impl IntoDevice for &String {
    #[track_caller]
    fn into_device(self) -> Result<Device> {
        Device::parse(self)
    }
}
impl IntoDevice for String {
    #[track_caller]
    fn into_device(self) -> Result<Device> {
        Device::parse(&self)
    }
}

/// Runs `f` with ops placed on `device` (as `with tf.device("/GPU:0"):`): ops and
/// creation functions inside run there, inputs on other devices are copied (under the
/// device policy), results stay there. Scopes nest; the innermost wins, on this thread.
/// A missing GPU falls back to the CPU under soft placement (the default).
///
/// ```
/// use ferroflow as ff;
/// # fn main() -> ff::Result<()> {
/// let a = ff::ones(&[2, 2], ff::DType::F32)?;
/// let y = ff::with_device("/GPU:0", || ff::matmul(&a, &a))?;
/// // On the GPU when there is one, on the CPU (soft placement) when not.
/// assert_eq!(y.to_ndarray::<f32>()?[[0, 0]], 2.0);
/// # Ok(()) }
/// ```
#[track_caller]
pub fn with_device<R>(device: impl IntoDevice, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let loc = Loc::caller();
    let d = device.into_device().map_err(|e| e.at(loc))?;
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            SCOPE.with(|s| s.borrow_mut().pop());
        }
    }
    SCOPE.with(|s| s.borrow_mut().push(d));
    let _pop = Pop;
    f()
}

/// The device of the innermost `with_device` scope on this thread.
pub(crate) fn scope() -> Option<Device> {
    SCOPE.with(|s| s.borrow().last().copied())
}

/// The devices this process can use: the CPU, then each GPU wgpu found.
pub fn devices() -> Vec<Device> {
    let mut v = vec![Device::Cpu];
    v.extend((0..context::gpu_count()).map(Device::Gpu));
    v
}

/// Logs `msg` once per process (soft-placement notices would flood a loop otherwise).
fn notice_once(key: String, msg: impl FnOnce() -> String) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut g = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if g.get_or_insert_with(HashSet::new).insert(key) {
        log::warn!("ferroflow: {}", msg());
    }
}

/// The context of `d` (a GPU), `None` to run on the CPU instead (soft placement, logged),
/// or `DeviceUnavailable` with soft placement off.
pub(crate) fn gpu(d: Device, op: &'static str) -> Result<Option<Arc<Ctx>>> {
    let Device::Gpu(n) = d else { return Ok(None) };
    match context::ctx(n) {
        Ok(c) => Ok(Some(c)),
        Err(e) if soft_device_placement() => {
            notice_once(format!("unavailable {d}"), || {
                format!("{d} is not available ({e}); ops placed there run on the CPU (soft placement)")
            });
            Ok(None)
        }
        Err(Error::DeviceUnavailable { device, available, .. }) => Err(Error::DeviceUnavailable {
            op,
            device,
            available,
            fix: Some(
                "place the op on an available device, or turn soft placement on (ff::config::set_soft_device_placement(true)) to fall back to the CPU"
                    .into(),
            ),
            location: None,
        }),
        Err(e) => Err(e),
    }
}

impl Tensor {
    /// A tensor with the same values on `device` (an explicit copy, counted by the
    /// profiler): the same handle when it is already there. A GPU that does not exist falls
    /// back to the CPU under soft placement (with a logged notice); with soft placement off
    /// it is `Error::DeviceUnavailable`. Errors: `Unsupported` for a dtype the GPU cannot
    /// hold (f64, f16, bf16), `SymbolicTensor` inside a trace.
    #[track_caller]
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        let loc = crate::error::Loc::caller();
        copy_to(self, device, "to_device").map_err(|e| e.at(loc))
    }
}

/// `t` on `device`: an explicit copy (`to_device`), counted; the same handle when it is there.
pub(crate) fn copy_to(t: &Tensor, device: Device, op: &'static str) -> Result<Tensor> {
    if t.is_symbolic() {
        return Err(t.symbolic_error(op));
    }
    if t.device() == device {
        return Ok(t.clone());
    }
    match device {
        Device::Cpu => t.to_host(),
        Device::Gpu(_) => match gpu(device, op)? {
            Some(ctx) => {
                let host = t.to_host()?;
                storage::upload(&ctx, &host)
            }
            None => t.to_host(),
        },
    }
}

/// `t` moved to `target` for `op` under the device policy (an implicit copy).
fn implicit(t: &Tensor, target: Device, op: &'static str) -> Result<Tensor> {
    let from = t.device();
    match device_policy() {
        DevicePolicy::Explicit => {
            return Err(Error::InvalidArgument {
                op,
                message: format!(
                    "an input lives on {from} but the op runs on {target}, and the device policy is Explicit: copy it first with to_device({target:?}), or set_device_policy(DevicePolicy::Silent)"
                ),
                location: None,
            });
        }
        DevicePolicy::Warn => log::warn!("ferroflow: {op}: copying an input from {from} to {target}"),
        DevicePolicy::Silent => {}
    }
    copy_to(t, target, op)
}

/// The device an op asks for: its scope, else its first GPU input, else the CPU.
pub(crate) fn requested(inputs: &[&Tensor]) -> Device {
    scope().or_else(|| inputs.iter().map(|t| t.device()).find(|d| *d != Device::Cpu)).unwrap_or(Device::Cpu)
}

/// Whether host rank-0 inputs of `op` are passed to the GPU kernel as parameters (no copy):
/// `PrimOp::host_scalars` on this device.
fn takes_scalars(ctx: &Ctx, op: &PrimOp, inputs: &[&Tensor]) -> bool {
    match op.host_scalars() {
        HostScalars::Params => true,
        HostScalars::ParamsIfComputed(to) => {
            inputs.first().is_some_and(|x| ctx.computes(x.dtype()) && ctx.computes(to))
        }
        HostScalars::Copied => false,
    }
}

fn is_host_scalar(t: &Tensor) -> bool {
    t.rank() == 0 && t.host_buffer().is_some() && t.dtype() != DType::BF16
}

/// Runs one primitive (inference done) on the device placement picks.
pub(crate) fn run(op: &PrimOp, inputs: &[&Tensor], shape: Shape, dtype: DType) -> Result<Tensor> {
    let target = requested(inputs);
    if target == Device::Cpu && inputs.iter().all(|t| !t.on_device()) {
        return crate::backend::cpu::execute(op, inputs, shape, dtype);
    }
    if let Some(ctx) = gpu(target, op.name())? {
        match crate::backend::wgpu::check(&ctx, op, inputs, dtype) {
            Ok(()) => {
                let dev = ctx.device_id();
                let scalars = takes_scalars(&ctx, op, inputs);
                let mut moved: Vec<Tensor> = Vec::with_capacity(inputs.len());
                for t in inputs {
                    let stay = t.device() == dev || (scalars && is_host_scalar(t));
                    moved.push(if stay { (*t).clone() } else { implicit(t, dev, op.name())? });
                }
                let ins: Vec<&Tensor> = moved.iter().collect();
                return crate::backend::wgpu::execute(&ctx, op, &ins, shape, dtype);
            }
            Err(e) if soft_device_placement() => {
                let dt: Vec<String> = inputs.iter().map(|t| t.dtype().to_string()).collect();
                notice_once(format!("{} {:?}", op.name(), dt), || {
                    format!("{} ({}) has no GPU kernel, it runs on the CPU: {e}", op.name(), dt.join(", "))
                });
            }
            Err(e) => return Err(e),
        }
    }
    // On the CPU: inputs that live on a GPU come back (under the policy).
    let mut moved: Vec<Tensor> = Vec::with_capacity(inputs.len());
    for t in inputs {
        moved.push(if t.on_device() { implicit(t, Device::Cpu, op.name())? } else { (*t).clone() });
    }
    let ins: Vec<&Tensor> = moved.iter().collect();
    crate::backend::cpu::execute(op, &ins, shape, dtype)
}

/// Runs a fused kernel of a traced plan on the device placement picks.
pub(crate) fn run_fused(f: &Fusion, inputs: &[&Tensor], shape: Shape) -> Result<Tensor> {
    let target = requested(inputs);
    if target != Device::Cpu
        && let Some(ctx) = gpu(target, f.name())?
    {
        match crate::backend::wgpu::check_fused(&ctx, f) {
            Ok(()) => {
                let dev = ctx.device_id();
                let mut moved: Vec<Tensor> = Vec::with_capacity(inputs.len());
                // Host scalars are kernel parameters (a matmul's operands excepted).
                let operands = if matches!(f.kind, crate::prim::fusion::FusionKind::MatMul { .. }) { 2 } else { 0 };
                for (k, t) in inputs.iter().enumerate() {
                    let stay = t.device() == dev || (k >= operands && is_host_scalar(t));
                    moved.push(if stay { (*t).clone() } else { implicit(t, dev, f.name())? });
                }
                let ins: Vec<&Tensor> = moved.iter().collect();
                return crate::backend::wgpu::run_fused(&ctx, f, &ins, shape);
            }
            Err(e) if soft_device_placement() => {
                notice_once(format!("{} {}", f.name(), f.dtype), || {
                    format!("{} ({}) has no GPU kernel, it runs on the CPU: {e}", f.name(), f.dtype)
                });
            }
            Err(e) => return Err(e),
        }
    }
    let mut moved: Vec<Tensor> = Vec::with_capacity(inputs.len());
    for t in inputs {
        moved.push(if t.on_device() { implicit(t, Device::Cpu, f.name())? } else { (*t).clone() });
    }
    let ins: Vec<&Tensor> = moved.iter().collect();
    crate::backend::cpu::fused::run(f, &ins, shape, None)
}

/// The GPU a traced plan runs on for these arguments, if any (its scope or first GPU
/// argument, when that GPU is usable).
pub(crate) fn plan_gpu(args: &[&Tensor]) -> Result<Option<Arc<Ctx>>> {
    let target = requested(args);
    if target == Device::Cpu {
        return Ok(None);
    }
    gpu(target, "function")
}

/// A tensor made on the host by a creation op, moved to the scope's GPU if there is one
/// (counted as an upload). Eager only: `dispatch::created` decides.
pub(crate) fn place_created(t: Tensor) -> Result<Tensor> {
    match scope() {
        Some(d @ Device::Gpu(_)) => match gpu(d, "create")? {
            Some(ctx) if ctx.stores(t.dtype()) => storage::upload(&ctx, &t),
            _ => Ok(t),
        },
        _ => Ok(t),
    }
}

/// A seeded f32 (or, where the GPU computes f64, f64) draw made on the scope's GPU (no
/// upload), or `None` to draw on the CPU (no GPU scope, another dtype, or soft placement
/// to the CPU); a draw on the CPU inside a GPU scope is then uploaded. Eager only:
/// `dispatch::created` decides.
pub(crate) fn random_on_gpu(shape: &[usize], dtype: DType, seed: u64, dist: Dist) -> Option<Result<Tensor>> {
    let d @ Device::Gpu(_) = scope()? else { return None };
    if !matches!(dtype, DType::F32 | DType::F64) {
        return None;
    }
    match gpu(d, "random") {
        Ok(Some(ctx)) if ctx.computes(dtype) => {
            Some(crate::backend::wgpu::kernels::random(&ctx, &Shape::new(shape), seed, dist, dtype))
        }
        Ok(Some(_)) => None,
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
}

/// Runs one primitive on concrete inputs (a graph step, constant folding, a variable's
/// update): inference on the actual shapes, then the kernel of the inputs' device.
#[inline]
pub(crate) fn execute(op: &PrimOp, inputs: &[&Tensor]) -> Result<Tensor> {
    let (shape, dtype) = crate::prim::infer::infer(op, inputs)?;
    run(op, inputs, shape, dtype)
}
