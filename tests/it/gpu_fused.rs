//! Fused reductions and fused matmuls as single GPU kernels: traced functions whose optimized
//! graph is one `fused_reduce_*` or `fused_matmul` node run on the GPU as ONE kernel
//! dispatch (`ff::gpu::thread_dispatches`) in one queue submission, with no copies, and give
//! what eager, unfused CPU ops give. Cases cover every reduce op, several shapes, axes and
//! keepdims, NaN, each load kind (contiguous, broadcast through strides, a host scalar), all
//! four transpose flag pairs, batched products and epilogues (bias + relu, a scale, a
//! residual).
//!
//! On a machine without any GPU adapter each test prints one loud `SKIPPED` line.

use ferroflow as ff;
use ff::{Device, Tensor};
use ndarray::{ArrayD, IxDyn};

use crate::common::need_gpu;

const GPU: Device = Device::Gpu(0);

/// A deterministic f32 tensor of `shape` with values in about [-1.3, 1.3].
fn data(shape: &[usize], seed: u32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i as f32 + 1.0) * (0.37 + seed as f32 * 0.11)).sin() * 1.3).collect();
    Tensor::from(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
}

type Body = fn(&Tensor, &Tensor, &Tensor) -> ff::Result<Tensor>;

/// Traces `body`, checks its optimized graph holds one `op` node, runs it on GPU copies of
/// `args` and checks: one dispatch, one submission, no transfers, and the values of eager
/// CPU ops (unfused) within `tol` (relative, NaN matching NaN).
fn one_kernel(what: &str, op: &str, body: Body, args: [Tensor; 3], tol: f32) {
    let f = ff::function(body);
    let want = body(&args[0], &args[1], &args[2]).unwrap().to_ndarray::<f32>().unwrap();
    let g: Vec<Tensor> = args.iter().map(|t| t.to_device(GPU).unwrap()).collect();
    let cf = f.get_concrete_function((&g[0], &g[1], &g[2])).unwrap();
    let text = cf.optimized_graph().to_string();
    assert_eq!(cf.optimized_graph().op_counts().get(op), Some(&1), "{what}: one {op} in\n{text}");
    let _ = f.call((&g[0], &g[1], &g[2])).unwrap(); // compiles the kernel
    let before = (ff::gpu::thread_dispatches(), ff::gpu::thread_submissions(), ff::profiler::thread_transfers());
    let y = f.call((&g[0], &g[1], &g[2])).unwrap();
    let dispatches = ff::gpu::thread_dispatches() - before.0;
    let submissions = ff::gpu::thread_submissions() - before.1;
    let moved = ff::profiler::thread_transfers() - before.2;
    assert_eq!(y.device(), GPU, "{what}");
    assert_eq!(dispatches, 1, "{what}: the fused node is one kernel dispatch\n{text}");
    // At most: the pending encoder is the context's, so a GPU test on another thread may
    // submit this call's kernels with its own (then this thread counts none).
    assert!(submissions <= 1, "{what}: one call is one submission, got {submissions}");
    assert_eq!(moved.total_count(), 0, "{what}: nothing crosses the bus: {moved}");
    let got = y.to_ndarray::<f32>().unwrap();
    assert_eq!(got.shape(), want.shape(), "{what}");
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let ok = if b.is_nan() { a.is_nan() } else { (a - b).abs() <= tol * (1.0 + b.abs()) };
        assert!(ok, "{what}: element {i}: GPU {a} vs CPU {b}");
    }
}

#[test]
fn fused_reductions_are_one_kernel_and_match_the_cpu() {
    need_gpu!("fused_reductions_are_one_kernel_and_match_the_cpu");
    let mut nan = data(&[4, 33], 3).to_ndarray::<f32>().unwrap();
    nan[[2, 7]] = f32::NAN;
    let nan = Tensor::from(nan);
    let cases: Vec<(&str, &str, Body, [Tensor; 3])> = vec![
        (
            "mean of squared differences, last axis, keepdims",
            "fused_reduce_mean",
            |x, y, _| ((x - y)?.square()?).reduce_mean(Some(&[-1]), true),
            [data(&[3, 5], 1), data(&[3, 5], 2), data(&[1], 0)],
        ),
        (
            "sum of exp(0.1 x) + bias over two trailing axes (rows of 210: strided loop)",
            "fused_reduce_sum",
            |x, _, z| ((x * 0.1f32)?.exp()? + z)?.reduce_sum(Some(&[1, 2]), false),
            [data(&[2, 3, 70], 4), data(&[1], 0), data(&[70], 5)],
        ),
        (
            "max of x * y + column with a NaN in one row",
            "fused_reduce_max",
            |x, y, z| ((x * y)? + z)?.reduce_max(Some(&[-1]), false),
            [nan.clone(), data(&[4, 33], 6), data(&[4, 1], 7)],
        ),
        (
            "min of x - y, y broadcast over the leading axis, keepdims",
            "fused_reduce_min",
            |x, y, _| (x - y)?.reduce_min(Some(&[-1]), true),
            [data(&[2, 3, 5], 8), data(&[3, 5], 9), data(&[1], 0)],
        ),
        (
            "product of 1 + 0.1 x",
            "fused_reduce_prod",
            |x, _, _| ((x * 0.1f32)? + 1.0f32)?.reduce_prod(Some(&[-1]), false),
            [data(&[3, 7], 10), data(&[1], 0), data(&[1], 0)],
        ),
        (
            "sum over every axis (one output, a row of 240)",
            "fused_reduce_sum",
            |x, y, _| (x * y)?.reduce_sum(None, false),
            [data(&[6, 40], 11), data(&[6, 40], 12), data(&[1], 0)],
        ),
        (
            "mean over the last two of three axes, keepdims",
            "fused_reduce_mean",
            |x, y, _| (x * y)?.tanh()?.reduce_mean(Some(&[1, 2]), true),
            [data(&[5, 4, 9], 13), data(&[4, 9], 14), data(&[1], 0)],
        ),
        (
            "mean over an empty last axis (NaN, as the CPU and TensorFlow)",
            "fused_reduce_mean",
            |x, y, _| (x * y)?.reduce_mean(Some(&[-1]), false),
            [data(&[3, 0], 15), data(&[3, 0], 16), data(&[1], 0)],
        ),
        (
            "70,000 rows: more workgroups than one grid dimension holds",
            "fused_reduce_max",
            |x, y, _| (x * y)?.reduce_max(Some(&[-1]), false),
            [data(&[70_000, 3], 17), data(&[3], 18), data(&[1], 0)],
        ),
    ];
    for (what, op, body, args) in cases {
        one_kernel(what, op, body, args, 2e-5);
    }
}

#[test]
fn fused_matmuls_are_one_kernel_and_match_the_cpu() {
    need_gpu!("fused_matmuls_are_one_kernel_and_match_the_cpu");
    let cases: Vec<(&str, Body, [Tensor; 3])> = vec![
        (
            "relu(x @ w + bias)",
            |x, w, b| (ff::matmul(x, w)? + b)?.relu(),
            [data(&[5, 8], 1), data(&[8, 70], 2), data(&[70], 3)],
        ),
        (
            "x^T @ w, scaled by a host scalar",
            |x, w, _| ff::matmul_with(x, w, true, false)? * 0.5f32,
            [data(&[8, 5], 4), data(&[8, 70], 5), data(&[1], 0)],
        ),
        (
            "relu(x @ w^T + residual)",
            |x, w, r| (ff::matmul_with(x, w, false, true)? + r)?.relu(),
            [data(&[5, 8], 6), data(&[70, 8], 7), data(&[5, 70], 8)],
        ),
        (
            "tanh(x^T @ w^T + column bias), past one 64x64 tile",
            |x, w, b| (ff::matmul_with(x, w, true, true)? + b)?.tanh(),
            [data(&[8, 66], 9), data(&[3, 8], 10), data(&[66, 1], 11)],
        ),
        (
            "batched x @ w + residual broadcast over the first batch dim",
            |x, w, r| (ff::matmul(x, w)? + r)? * 2.0f32,
            [data(&[2, 3, 33, 17], 12), data(&[17, 20], 13), data(&[3, 33, 20], 14)],
        ),
    ];
    for (what, body, args) in cases {
        one_kernel(what, "fused_matmul", body, args, 2e-5);
    }
}

#[test]
fn a_traced_model_step_dispatches_one_kernel_per_plan_step() {
    need_gpu!("a_traced_model_step_dispatches_one_kernel_per_plan_step");
    // Dense layer, then a mean squared error; returning the activations too keeps them a
    // tensor: a fused matmul, then a fused reduce reading it. (Returning only the loss, the
    // optimizer moves the bias add and relu into the reduction instead.)
    let f = ff::function(|x: &Tensor, w: &Tensor, b: &Tensor, t: &Tensor| -> ff::Result<(Tensor, Tensor)> {
        let h = (ff::matmul(x, w)? + b)?.relu()?;
        Ok(((&h - t)?.square()?.reduce_mean(Some(&[-1]), false)?, h))
    });
    let (x, w, b, t) = (data(&[6, 12], 1), data(&[12, 10], 2), data(&[10], 3), data(&[6, 10], 4));
    let want = {
        let h = (ff::matmul(&x, &w).unwrap() + &b).unwrap().relu().unwrap();
        (&h - &t).unwrap().square().unwrap().reduce_mean(Some(&[-1]), false).unwrap().to_ndarray::<f32>().unwrap()
    };
    let g: Vec<Tensor> = [&x, &w, &b, &t].iter().map(|v| v.to_device(GPU).unwrap()).collect();
    let cf = f.get_concrete_function((&g[0], &g[1], &g[2], &g[3])).unwrap();
    let ops = cf.optimized_graph().op_counts();
    assert_eq!(ops.get("fused_matmul"), Some(&1), "{}", cf.optimized_graph());
    assert_eq!(ops.get("fused_reduce_mean"), Some(&1), "{}", cf.optimized_graph());
    let _ = f.call((&g[0], &g[1], &g[2], &g[3])).unwrap();
    let before = (ff::gpu::thread_dispatches(), ff::gpu::thread_submissions());
    let (y, _) = f.call((&g[0], &g[1], &g[2], &g[3])).unwrap();
    assert_eq!(ff::gpu::thread_dispatches() - before.0, 2, "two fused nodes, two kernels");
    assert!(ff::gpu::thread_submissions() - before.1 <= 1, "one call, one submission (or none: another thread's)");
    let got = y.to_ndarray::<f32>().unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 2e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
}
