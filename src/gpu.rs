//! What the GPU backend found and did: the adapters (`adapters`), and queue submissions
//! and kernel dispatches made by this thread (`thread_submissions`, `thread_dispatches`:
//! how tests check that one traced call on the GPU is one submission and a fused node one
//! kernel), and the dtypes each device computes in (`compute_dtypes`). Placement itself is
//! `ff::with_device` and `Tensor::to_device`.

/// One line per GPU adapter wgpu found, best first: `Gpu(0)` is the first. Empty when there
/// is none (no Vulkan/Metal/DX12 driver).
pub fn adapters() -> Vec<String> {
    crate::backend::wgpu::context::adapter_names()
}

/// Queue submissions this thread has made to any GPU since it started.
pub fn thread_submissions() -> u64 {
    crate::backend::wgpu::context::thread_submissions()
}

/// Kernel dispatches this thread has recorded on any GPU since it started: a traced call
/// records one per plan step that runs a kernel (a fused node is one), all in one
/// submission.
pub fn thread_dispatches() -> u64 {
    crate::backend::wgpu::context::thread_dispatches()
}

/// Submits the GPU work this process has recorded but not yet submitted, and waits for it
/// (for timing: kernels are recorded without waiting, as CUDA streams are asynchronous).
pub fn synchronize() -> crate::Result<()> {
    crate::backend::wgpu::context::synchronize()
}

/// The dtypes that compute on `device`. The CPU computes in all of them; a GPU in f32,
/// i32, u8 and bool, plus f16 where its adapter has `SHADER_F16`, i64 where it has
/// `SHADER_INT64` and f64 where it has `SHADER_F64` and `SHADER_INT64` (every f64 op:
/// `exp`, `sin`, `pow`, ... are a software library there, within a few ulp of the CPU's,
/// since SPIR-V's are 32-bit only). An op in another dtype placed on
/// the GPU runs on the CPU under soft placement, or is `Error::Unsupported` without it.
/// Opens the GPU on first use; `DeviceUnavailable` for a GPU that does not exist.
///
/// ```
/// use ferroflow as ff;
/// # fn main() -> ff::Result<()> {
/// assert!(ff::gpu::compute_dtypes(ff::Device::Cpu)?.contains(&ff::DType::F64));
/// if !ff::gpu::adapters().is_empty() {
///     let on_gpu = ff::gpu::compute_dtypes(ff::Device::Gpu(0))?;
///     assert!(on_gpu.contains(&ff::DType::F32));
///     println!("GPU:0 computes in {on_gpu:?}");
/// }
/// # Ok(()) }
/// ```
pub fn compute_dtypes(device: crate::Device) -> crate::Result<Vec<crate::DType>> {
    Ok(match device {
        crate::Device::Cpu => crate::DType::ALL.to_vec(),
        crate::Device::Gpu(n) => {
            let ctx = crate::backend::wgpu::context::ctx(n)?;
            crate::DType::ALL.into_iter().filter(|d| ctx.computes(*d)).collect()
        }
    })
}
