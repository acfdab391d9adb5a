//! The GPU backend: placement (scopes, `to_device`, `device()`), soft placement, the device
//! policy, exact transfer counts (`profiler::thread_transfers` differences), traced
//! functions on the GPU (one submission per call), and failure behaviours. Every op's GPU
//! result against the CPU one is the op table's `Wgpu` modes (`common::Mode`).
//!
//! On a machine without any GPU adapter each test prints one loud `SKIPPED` line and
//! returns; in CI, Mesa's lavapipe (a CPU Vulkan driver) is the adapter, so they run.

use ferroflow as ff;
use ff::{DType, Device, DevicePolicy, Error, Tensor};
use ndarray::{ArrayD, IxDyn};

use crate::common::need_gpu;

const GPU: Device = Device::Gpu(0);

fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
}

fn seq(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.37).sin()).collect()
}

fn close(a: &ArrayD<f32>, b: &ArrayD<f32>, tol: f32) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
    }
}

#[test]
fn to_device_and_back_round_trips_every_gpu_dtype() {
    need_gpu!("to_device_and_back_round_trips_every_gpu_dtype");
    let cases: Vec<Tensor> = vec![
        t(&[2, 3], seq(6)),
        Tensor::from(ndarray::arr1(&[1i32, -2, i32::MAX, i32::MIN]).into_dyn()),
        Tensor::from(ndarray::arr1(&[0u8, 7, 255]).into_dyn()),
        Tensor::from(ndarray::arr1(&[true, false, true]).into_dyn()),
        Tensor::from(ndarray::arr1(&[1i64 << 40, -3, i64::MIN]).into_dyn()),
    ];
    for h in cases {
        let g = h.to_device(GPU).unwrap();
        assert_eq!(g.device(), GPU);
        assert_eq!(g.shape(), h.shape());
        let back = g.to_device(Device::Cpu).unwrap();
        assert_eq!(back.device(), Device::Cpu);
        assert_eq!(crate::common::bits(&back), crate::common::bits(&h), "{}", h.dtype());
    }
}

#[test]
fn upload_three_ops_download_is_one_copy_each_way() {
    need_gpu!("upload_three_ops_download_is_one_copy_each_way");
    let x = t(&[4, 8], seq(32));
    let before = ff::profiler::thread_transfers();
    let g = x.to_device(GPU).unwrap();
    let y = ((&g * 2.0f32).unwrap() + &g).unwrap().relu().unwrap();
    assert_eq!(y.device(), GPU);
    let out = y.to_ndarray::<f32>().unwrap();
    let d = ff::profiler::thread_transfers() - before;
    assert_eq!(d.host_to_device.count, 1);
    assert_eq!(d.host_to_device.bytes, 32 * 4);
    assert_eq!(d.device_to_host.count, 1);
    assert_eq!(d.device_to_host.bytes, 32 * 4);
    let want = x.to_ndarray::<f32>().unwrap().mapv(|v| (v * 2.0 + v).max(0.0));
    close(&out, &want, 1e-6);
}

#[test]
fn matmul_softmax_reductions_match_the_cpu() {
    need_gpu!("matmul_softmax_reductions_match_the_cpu");
    let a = t(&[2, 33, 17], seq(2 * 33 * 17));
    let b = t(&[17, 70], seq(17 * 70));
    let cpu = ff::matmul(&a, &b).unwrap().to_ndarray::<f32>().unwrap();
    let gpu = ff::with_device("/GPU:0", || ff::matmul(&a, &b)).unwrap();
    assert_eq!(gpu.device(), GPU);
    close(&gpu.to_ndarray::<f32>().unwrap(), &cpu, 1e-5);
    let sm = |x: &Tensor| ff::softmax(x, -1).unwrap().to_ndarray::<f32>().unwrap();
    close(&sm(&a.to_device(GPU).unwrap()), &sm(&a), 1e-6);
    let rs = |x: &Tensor| ff::reduce_sum(x, Some(&[0, 2]), false).unwrap().to_ndarray::<f32>().unwrap();
    close(&rs(&a.to_device(GPU).unwrap()), &rs(&a), 1e-5);
    let am = |x: &Tensor| ff::argmax(x, Some(&[1]), false).unwrap().to_ndarray::<i64>().unwrap();
    assert_eq!(am(&a.to_device(GPU).unwrap()), am(&a));
}

#[test]
fn a_scope_places_ops_and_results_stay_on_the_gpu() {
    need_gpu!("a_scope_places_ops_and_results_stay_on_the_gpu");
    let a = t(&[3, 4], seq(12));
    let before = ff::profiler::thread_transfers();
    let (y, z) = ff::with_device("/GPU:0", || {
        let y = ff::exp(&a)?; // the host input is copied up once (silent policy)
        let z = ff::ones(&[3, 4], DType::F32)?; // created there
        Ok((y, z))
    })
    .unwrap();
    assert_eq!((y.device(), z.device()), (GPU, GPU));
    let d = ff::profiler::thread_transfers() - before;
    assert_eq!(d.host_to_device.count, 2);
    assert_eq!(d.device_to_host.count, 0);
    // Outside the scope, an op on a GPU input runs on its device.
    let w = (&y + &z).unwrap();
    assert_eq!(w.device(), GPU);
    // Nested scopes: the innermost wins.
    let c = ff::with_device(Device::Gpu(0), || ff::with_device("/CPU:0", || ff::exp(&a))).unwrap();
    assert_eq!(c.device(), Device::Cpu);
    assert_eq!(format!("{}", Device::parse("/job:localhost/replica:0/task:0/device:GPU:0").unwrap()), "/device:GPU:0");
    assert!(matches!(ff::with_device("/TPU:0", || Ok(())), Err(Error::InvalidArgument { .. })));
}

#[test]
fn a_missing_gpu_falls_back_under_soft_placement_and_errors_without() {
    need_gpu!("a_missing_gpu_falls_back_under_soft_placement_and_errors_without");
    let a = t(&[2, 2], seq(4));
    let missing = Device::Gpu(ff::devices().len() + 5);
    let y = ff::config::with_soft_device_placement(true, || ff::with_device(missing, || ff::exp(&a))).unwrap();
    assert_eq!(y.device(), Device::Cpu);
    let h = ff::config::with_soft_device_placement(true, || a.to_device(missing)).unwrap();
    assert_eq!(h.device(), Device::Cpu);
    let e = ff::config::with_soft_device_placement(false, || ff::with_device(missing, || ff::exp(&a))).unwrap_err();
    match &e {
        Error::DeviceUnavailable { device, available, .. } => {
            assert_eq!(device, &missing.to_string());
            assert!(available.contains("/device:CPU:0") && available.contains("/device:GPU:0"), "{available}");
        }
        other => panic!("expected DeviceUnavailable, got {other:?}"),
    }
    let e = ff::config::with_soft_device_placement(false, || a.to_device(missing)).unwrap_err();
    assert!(matches!(e, Error::DeviceUnavailable { .. }), "{e:?}");
}

#[test]
fn dtypes_without_gpu_kernels_fall_back_or_fail_clearly() {
    need_gpu!("dtypes_without_gpu_kernels_fall_back_or_fail_clearly");
    // bf16 has no GPU kernels (nor storage). Soft placement: exp of bf16 in a GPU scope runs
    // on the CPU, with a logged notice.
    let a = Tensor::from(ndarray::arr1(&[1.5f64, -2.0]).into_dyn()).cast(DType::BF16).unwrap();
    let y = ff::with_device("/GPU:0", || ff::exp(&a)).unwrap();
    assert_eq!(y.device(), Device::Cpu);
    assert_eq!(crate::common::bits(&y), crate::common::bits(&ff::exp(&a).unwrap()));
    // Strict: Unsupported, naming the dtype.
    let e = ff::config::with_soft_device_placement(false, || ff::with_device("/GPU:0", || ff::exp(&a))).unwrap_err();
    assert!(matches!(&e, Error::Unsupported { .. }) && e.to_string().contains("bf16"), "{e}");
    let e = a.to_device(GPU).unwrap_err();
    assert!(matches!(&e, Error::Unsupported { .. }) && e.to_string().contains("bf16"), "{e:?}");
    // Sparse primitives have GPU kernels (tests/it/gpu_sparse.rs): from_dense of a GPU
    // tensor stays there, and only its count of non-zeros (4 bytes) comes back.
    let g = Tensor::from(ndarray::arr2(&[[0.0f32, 1.0], [2.0, 0.0]]).into_dyn()).to_device(GPU).unwrap();
    let before = ff::profiler::thread_transfers();
    let s = ff::SparseTensor::from_dense(&g).unwrap();
    let d = ff::profiler::thread_transfers() - before;
    assert_eq!((s.indices().device(), s.values().device()), (GPU, GPU));
    assert_eq!((d.host_to_device.count, d.device_to_host.count, d.device_to_host.bytes), (0, 1, 4), "{d}");
    assert_eq!(s.to_dense().unwrap().to_ndarray::<f32>().unwrap(), g.to_ndarray::<f32>().unwrap());
}

#[test]
fn the_device_policy_decides_about_mixed_inputs() {
    need_gpu!("the_device_policy_decides_about_mixed_inputs");
    let h = t(&[2, 3], seq(6));
    let g = h.to_device(GPU).unwrap();
    // Silent: the host input is copied, counted.
    let before = ff::profiler::thread_transfers();
    let y = ff::config::with_device_policy(DevicePolicy::Silent, || &g + &h).unwrap();
    assert_eq!(y.device(), GPU);
    assert_eq!((ff::profiler::thread_transfers() - before).host_to_device.count, 1);
    // Warn: the same copy, and a logged warning.
    let y = ff::config::with_device_policy(DevicePolicy::Warn, || &g + &h).unwrap();
    assert_eq!(y.device(), GPU);
    // Explicit: an error naming both devices, and no copy.
    let before = ff::profiler::thread_transfers();
    let e = ff::config::with_device_policy(DevicePolicy::Explicit, || &g + &h).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    assert!(m.contains("/device:CPU:0") && m.contains("/device:GPU:0") && m.contains("to_device"), "{m}");
    assert_eq!((ff::profiler::thread_transfers() - before).total_count(), 0);
    // Host scalars are kernel parameters, not copies: allowed under Explicit.
    let y = ff::config::with_device_policy(DevicePolicy::Explicit, || &g * 3.0f32).unwrap();
    assert_eq!(y.device(), GPU);
    // An explicit copy is always allowed.
    let y = ff::config::with_device_policy(DevicePolicy::Explicit, || &g + &h.to_device(GPU)?).unwrap();
    assert_eq!(y.device(), GPU);
}

#[test]
fn reading_values_of_a_gpu_tensor() {
    need_gpu!("reading_values_of_a_gpu_tensor");
    let g = t(&[2, 2], seq(4)).to_device(GPU).unwrap();
    // A borrowed view would need host memory: NotOnHost, with the fix.
    let e = g.as_ndarray::<f32>().unwrap_err();
    assert!(matches!(e, Error::NotOnHost { .. }) && e.to_string().contains("to_device"), "{e}");
    // Copies are counted one each.
    let before = ff::profiler::thread_transfers();
    let _ = g.to_ndarray::<f32>().unwrap();
    let s = ff::reduce_sum(&g, None, false).unwrap().to_scalar::<f32>().unwrap();
    let _ = format!("{g}");
    let d = ff::profiler::thread_transfers() - before;
    assert_eq!(d.device_to_host.count, 3);
    assert_eq!(d.device_to_host.bytes, 16 + 4 + 16);
    assert!((s - seq(4).iter().sum::<f32>()).abs() < 1e-6);
    assert!(format!("{g}").contains("device=/device:GPU:0"));
    // A reshape is a zero-copy alias on the device.
    let r = g.reshape(&[4]).unwrap();
    assert_eq!(r.to_ndarray::<f32>().unwrap().as_slice().unwrap(), &seq(4)[..]);
    assert_eq!(r.device(), GPU);
}

#[test]
fn a_traced_function_on_the_gpu_is_one_submission_per_call() {
    need_gpu!("a_traced_function_on_the_gpu_is_one_submission_per_call");
    let f = ff::function(|a: &Tensor, b: &Tensor, c: &Tensor| ((a * b)? + c)?.relu());
    let (a, b, c) = (t(&[8, 16], seq(128)), t(&[8, 16], seq(128).iter().map(|v| v * 2.0).collect()), t(&[16], seq(16)));
    let want = f.call((&a, &b, &c)).unwrap().to_ndarray::<f32>().unwrap();
    let (ga, gb, gc) = (a.to_device(GPU).unwrap(), b.to_device(GPU).unwrap(), c.to_device(GPU).unwrap());
    let before = (ff::profiler::thread_transfers(), ff::gpu::thread_submissions());
    let y = f.call((&ga, &gb, &gc)).unwrap();
    let y2 = f.call((&ga, &gb, &gc)).unwrap();
    let subs = ff::gpu::thread_submissions() - before.1;
    let d = ff::profiler::thread_transfers() - before.0;
    assert_eq!(y.device(), GPU);
    // At most one per call: the pending encoder is the context's, so a GPU test on another
    // thread may submit this thread's kernels along with its own.
    assert!(subs <= 2, "one submission per call, got {subs}");
    assert_eq!(d.total_count(), 0, "nothing crosses the bus until asked: {d}");
    close(&y.to_ndarray::<f32>().unwrap(), &want, 1e-6);
    close(&y2.to_ndarray::<f32>().unwrap(), &want, 1e-6);
    // The optimizer fused the chain into one kernel: the graph shows it.
    let g = f.get_concrete_function((&ga, &gb, &gc)).unwrap().optimized_graph().to_string();
    assert!(g.contains("fused_loop"), "{g}");
}

#[test]
fn a_traced_function_uploads_its_constants_once() {
    need_gpu!("a_traced_function_uploads_its_constants_once");
    let w = t(&[4], vec![1.0, 2.0, 3.0, 4.0]);
    let f = ff::function(move |x: &Tensor| x * &w);
    let g = t(&[2, 4], seq(8)).to_device(GPU).unwrap();
    let _ = f.call((&g,)).unwrap(); // traces, uploads the constant once
    let before = ff::profiler::thread_transfers();
    for _ in 0..3 {
        let y = f.call((&g,)).unwrap();
        assert_eq!(y.device(), GPU);
    }
    assert_eq!((ff::profiler::thread_transfers() - before).total_count(), 0);
    // Under a GPU scope, host arguments are copied up per call (counted).
    let h = t(&[2, 4], seq(8));
    let before = ff::profiler::thread_transfers();
    let y = ff::with_device("/GPU:0", || f.call((&h,))).unwrap();
    assert_eq!(y.device(), GPU);
    assert_eq!((ff::profiler::thread_transfers() - before).host_to_device.count, 1);
}

#[test]
fn a_tensor_past_the_binding_limit_is_an_error_not_a_panic() {
    need_gpu!("a_tensor_past_the_binding_limit_is_an_error_not_a_panic");
    // 2^26 f32 = 256 MiB, past lavapipe's 128 MiB storage binding (and most GPUs' defaults
    // are checked the same way). The host tensor is made lazily by broadcasting a scalar.
    let big = ff::zeros(&[1 << 26], DType::F32).unwrap();
    match big.to_device(GPU) {
        Err(Error::Unsupported { message, .. }) => assert!(message.contains("limit"), "{message}"),
        Ok(g) => assert_eq!(g.device(), GPU), // a GPU with a larger limit holds it
        Err(other) => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn random_under_a_gpu_scope_matches_the_cpu_for_a_seed() {
    need_gpu!("random_under_a_gpu_scope_matches_the_cpu_for_a_seed");
    // Drawn on the GPU by a WGSL Philox: no upload, and uniform values bit for bit.
    let cpu = ff::random::uniform(&[50, 70], DType::F32, Some(42)).unwrap();
    let before = ff::profiler::thread_transfers();
    let gpu = ff::with_device("/GPU:0", || ff::random::uniform(&[50, 70], DType::F32, Some(42))).unwrap();
    assert_eq!((ff::profiler::thread_transfers() - before).host_to_device.count, 0);
    assert_eq!(gpu.device(), GPU);
    assert_eq!(gpu.to_ndarray::<f32>().unwrap(), cpu.to_ndarray::<f32>().unwrap());
    let seed = u64::MAX - 12345; // both halves of the key in use
    let cpu = ff::random::uniform(&[1001], DType::F32, Some(seed)).unwrap();
    let gpu = ff::with_device("/GPU:0", || ff::random::uniform(&[1001], DType::F32, Some(seed))).unwrap();
    assert_eq!(gpu.to_ndarray::<f32>().unwrap(), cpu.to_ndarray::<f32>().unwrap());
    // Normal: Box-Muller in f32 on the GPU, f64 on the CPU: a few ulps apart.
    let cpu = ff::random::normal(&[333], DType::F32, Some(7)).unwrap();
    let gpu = ff::with_device("/GPU:0", || ff::random::normal(&[333], DType::F32, Some(7))).unwrap();
    assert_eq!(gpu.device(), GPU);
    close(&gpu.to_ndarray::<f32>().unwrap(), &cpu.to_ndarray::<f32>().unwrap(), 1e-5);
}

#[test]
fn f64_random_under_a_gpu_scope_is_drawn_there_and_matches_the_cpu() {
    need_gpu!("f64_random_under_a_gpu_scope_is_drawn_there_and_matches_the_cpu");
    if !wide_dtypes_here().contains(&DType::F64) {
        return;
    }
    for seed in [3, u64::MAX - 99] {
        let before = ff::profiler::thread_transfers();
        let (u, n) = ff::with_device("/GPU:0", || {
            Ok::<_, ff::Error>((
                ff::random::uniform(&[1001], DType::F64, Some(seed))?,
                ff::random::normal(&[40, 25], DType::F64, Some(seed))?,
            ))
        })
        .unwrap();
        // Drawn on the GPU: nothing uploaded.
        assert_eq!((ff::profiler::thread_transfers() - before).host_to_device.count, 0);
        assert_eq!((u.device(), n.device()), (GPU, GPU));
        // Uniform: the 53-bit draw exactly, as on the CPU.
        let want = ff::random::uniform(&[1001], DType::F64, Some(seed)).unwrap();
        assert_eq!(u.to_ndarray::<f64>().unwrap(), want.to_ndarray::<f64>().unwrap());
        // Normal: Box-Muller in f64 with the GPU's log/sin/cos, each within an ulp of libm.
        let want = ff::random::normal(&[40, 25], DType::F64, Some(seed)).unwrap().to_ndarray::<f64>().unwrap();
        let got = n.to_ndarray::<f64>().unwrap();
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((g - w).abs() <= 1e-14 * w.abs().max(1e-3), "GPU {g} vs CPU {w}");
        }
    }
}

/// The f16, f64 and i64 this GPU computes in (`compute_dtypes`), with a loud line for those
/// it does not (lavapipe has all three).
fn wide_dtypes_here() -> Vec<DType> {
    let here = ff::gpu::compute_dtypes(GPU).unwrap();
    [DType::F16, DType::F64, DType::I64]
        .into_iter()
        .filter(|d| {
            let ok = here.contains(d);
            if !ok {
                eprintln!("SKIPPED: GPU:0 has no shader feature for {d}: its GPU tests run on the CPU only");
            }
            ok
        })
        .collect()
}

#[test]
fn f16_f64_and_i64_compute_on_the_gpu_where_the_adapter_has_them() {
    need_gpu!("f16_f64_and_i64_compute_on_the_gpu_where_the_adapter_has_them");
    for d in wide_dtypes_here() {
        // Small integers, exact in every dtype, so the CPU and the GPU agree exactly except
        // for rounding in f16's sums (which stay below 2048: exact too).
        let xv: Vec<f64> = (0..12).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
        let x = crate::common::tensor(d, &[3, 4], &xv);
        let w = crate::common::tensor(d, &[4, 2], &xv[..8]);
        let f = |x: &Tensor, w: &Tensor| -> ff::Result<Vec<Tensor>> {
            let y = ((x * x)? - x)?.maximum(x.neg()?)?;
            Ok(vec![
                y.reduce_sum(Some(&[1]), false)?,
                ff::matmul(&y, w)?,
                y.argmax(Some(&[0]), false)?,
                y.cast(DType::F32)?,
                ff::where_(y.greater(x)?, &y, x)?,
            ])
        };
        let want = f(&x, &w).unwrap();
        let before = ff::profiler::thread_transfers();
        let (gx, gw) = (x.to_device(GPU).unwrap(), w.to_device(GPU).unwrap());
        let got = ff::with_device("/GPU:0", || f(&gx, &gw)).unwrap();
        let d_up = ff::profiler::thread_transfers() - before;
        assert_eq!(d_up.host_to_device.count, 2, "{d}: only the two uploads: {d_up}");
        assert_eq!(d_up.device_to_host.count, 0, "{d}: nothing came back to the host: {d_up}");
        for (g, h) in got.iter().zip(&want) {
            assert_eq!(g.device(), GPU, "{d}: ran on the GPU");
            assert_eq!(g.dtype(), h.dtype());
            assert_eq!(crate::common::bits(&g.to_device(Device::Cpu).unwrap()), crate::common::bits(h), "{d}");
        }
    }
}

#[test]
fn f64_on_the_gpu_keeps_f64_precision_transcendentals_included() {
    need_gpu!("f64_on_the_gpu_keeps_f64_precision_transcendentals_included");
    if !wide_dtypes_here().contains(&DType::F64) {
        return;
    }
    // 1 + 1e-12 is 1 in f32: an f64 kernel computing in f32 would lose it.
    let v = [1.0 + 1e-12, 2.0f64.sqrt(), -3.25, 1e300];
    let a = Tensor::from(ndarray::arr1(&v).into_dyn()).to_device(GPU).unwrap();
    let y = ff::with_device("/GPU:0", || ((&a * &a)? - 1.0f64)?.sqrt()).unwrap();
    assert_eq!(y.device(), GPU);
    let got = y.to_ndarray::<f64>().unwrap();
    for (g, x) in got.iter().zip(v) {
        let want = (x * x - 1.0).sqrt();
        assert!(*g == want || (g - want).abs() <= 1e-15 * want.abs(), "{g} vs {want}");
    }
    // exp of f64 computes on the GPU too (a software f64 exp: SPIR-V's is 32-bit only), to
    // f64 accuracy: within one ulp of std's (tests/it/gpu_f64_math.rs sweeps every function).
    let e = ff::config::with_soft_device_placement(false, || ff::with_device("/GPU:0", || ff::exp(&a))).unwrap();
    assert_eq!(e.device(), GPU);
    for (g, x) in e.to_ndarray::<f64>().unwrap().iter().zip(v) {
        let want = x.exp();
        assert!(*g == want || (g - want).abs() <= f64::EPSILON * want.abs(), "exp({x}): {g} vs {want}");
    }
}

#[test]
fn f16_on_the_gpu_rounds_as_the_cpu_does() {
    need_gpu!("f16_on_the_gpu_rounds_as_the_cpu_does");
    if !wide_dtypes_here().contains(&DType::F16) {
        return;
    }
    // Values whose sums, products and exponentials round in f16; the CPU computes each op
    // in f32 and rounds once, and so does the GPU: the same halves.
    let v: Vec<half::f16> = (0..40).map(|i| half::f16::from_f32((i as f32 * 0.731).sin() * 3.0)).collect();
    let a = Tensor::from(ndarray::Array1::from(v).into_dyn());
    let f = |a: &Tensor| -> ff::Result<Vec<Tensor>> {
        Ok(vec![(a * a)?, (a + 0.1f32)?, a.exp()?, a.tanh()?, ff::softmax(&a.reshape(&[4, 10])?, -1)?])
    };
    let want = f(&a).unwrap();
    let g = a.to_device(GPU).unwrap();
    let got = ff::with_device("/GPU:0", || f(&g)).unwrap();
    for (k, (g, h)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.device(), GPU);
        let (gv, hv) = (g.to_ndarray::<half::f16>().unwrap(), h.to_ndarray::<half::f16>().unwrap());
        for (x, y) in gv.iter().zip(hv.iter()) {
            // Elementwise ops agree to the bit unless f32's transcendental differs by an ulp
            // right at an f16 rounding boundary: at most one f16 ulp.
            let one_ulp = half::f16::EPSILON.to_f32() * y.to_f32().abs().max(1.0);
            assert!(x == y || (x.to_f32() - y.to_f32()).abs() <= one_ulp, "output {k}: GPU {x}, CPU {y}");
        }
    }
}

#[test]
fn initializers_and_layers_made_in_a_gpu_scope_live_there() {
    need_gpu!("initializers_and_layers_made_in_a_gpu_scope_live_there");
    // Each initializer draws the same values as on the CPU and returns them on the GPU,
    // as the creation functions do; truncated_normal too.
    type Init = fn(&[usize], DType, Option<u64>) -> ff::Result<Tensor>;
    let inits: [(&str, Init); 4] = [
        ("glorot_uniform", ff::nn::init::glorot_uniform),
        ("glorot_normal", ff::nn::init::glorot_normal),
        ("he_uniform", ff::nn::init::he_uniform),
        ("he_normal", ff::nn::init::he_normal),
    ];
    for (name, init) in inits {
        let cpu = init(&[6, 5], DType::F32, Some(9)).unwrap();
        let gpu = ff::with_device("/GPU:0", || init(&[6, 5], DType::F32, Some(9)))
            .unwrap_or_else(|e| panic!("{name} in a GPU scope: {e}"));
        assert_eq!(gpu.device(), GPU, "{name}");
        assert_eq!(gpu.to_ndarray::<f32>().unwrap(), cpu.to_ndarray::<f32>().unwrap(), "{name}");
    }
    let cpu = ff::random::truncated_normal(&[40], DType::F32, Some(2)).unwrap();
    let gpu = ff::with_device("/GPU:0", || ff::random::truncated_normal(&[40], DType::F32, Some(2))).unwrap();
    assert_eq!(gpu.device(), GPU);
    assert_eq!(gpu.to_ndarray::<f32>().unwrap(), cpu.to_ndarray::<f32>().unwrap());
    // A layer built in the scope keeps its weights there and runs there, strict policy on.
    use ff::nn::Layer;
    let x = ff::random::uniform(&[4, 6], DType::F32, Some(3)).unwrap();
    let want = ff::nn::Dense::new(6, 5, Some(8)).unwrap().call(&x).unwrap();
    let got = ff::with_device("/GPU:0", || {
        let layer = ff::nn::Dense::new(6, 5, Some(8))?;
        let gx = x.to_device(GPU)?;
        ff::config::with_device_policy(DevicePolicy::Explicit, || layer.call(&gx))
    })
    .unwrap();
    assert_eq!(got.device(), GPU);
    close(&got.to_ndarray::<f32>().unwrap(), &want.to_ndarray::<f32>().unwrap(), 1e-5);
}
