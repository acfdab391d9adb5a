//! What the GPU backend found and did: the adapters (`adapters`), and queue submissions
//! and kernel dispatches made by this thread (`thread_submissions`, `thread_dispatches`:
//! how tests check that one traced call on the GPU is one submission and a fused node one
//! kernel). Placement itself is `ff::with_device` and `Tensor::to_device`.

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
