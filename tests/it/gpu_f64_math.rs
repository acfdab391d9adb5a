//! f64 transcendentals on the GPU (`backend::wgpu::math`, a software library: SPIR-V has no
//! 64-bit exp/log/sin/...): every function over dense sweeps of the ranges that matter,
//! random doubles of every magnitude (subnormals included) and the special values, GPU
//! against Rust's std (the CPU kernels' definitions; `libm::erf` for gelu) in ulps, with a
//! bound per function; sin/cos of huge arguments (exact Payne-Hanek reduction); pow's IEEE
//! special cases; a fused traced chain, fused reductions and softmax of f64. Everything runs
//! with soft placement off, so a missing GPU kernel would be an error, not a CPU fallback.
//!
//! On a machine without any GPU adapter, or a GPU without f64, each test prints one loud
//! `SKIPPED` line and returns; lavapipe (the CI's adapter) has f64.

use ferroflow as ff;
use ff::{DType, Device, Tensor};

use crate::common::need_gpu;

const GPU: Device = Device::Gpu(0);

/// Returns early (with a SKIPPED line) unless GPU:0 computes f64.
macro_rules! need_f64_gpu {
    ($name:literal) => {
        need_gpu!($name);
        if !ff::gpu::compute_dtypes(GPU).unwrap().contains(&DType::F64) {
            eprintln!("SKIPPED: GPU:0 has no SHADER_F64: gpu_f64_math::{}", $name);
            return;
        }
    };
}

/// The distance in units in the last place: how many doubles lie between `a` and `b`
/// (0 for equal values, ±0 included, and for two NaNs; infinite for NaN against a number).
fn ulps(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() { 0.0 } else { f64::INFINITY };
    }
    // Doubles ordered as integers: negative ones mirrored below zero.
    let ord = |x: f64| {
        let i = x.to_bits() as i64;
        if i < 0 { i64::MIN - i } else { i }
    };
    (ord(a) as i128 - ord(b) as i128).unsigned_abs() as f64
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A finite double with uniformly random bits: every exponent equally likely, so
    /// subnormals, tiny, ordinary and huge values of both signs.
    fn any_finite(&mut self) -> f64 {
        loop {
            let x = f64::from_bits(self.next());
            if x.is_finite() {
                return x;
            }
        }
    }
}

/// The values every function sees: zeros, the smallest subnormal and normal, the largest
/// double, infinities and NaN.
const SPECIALS: [f64; 12] = [
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    f64::MIN_POSITIVE,
    -f64::MIN_POSITIVE,
    1.0,
    -1.0,
    f64::MAX,
    -f64::MAX,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

/// `n` points evenly over [lo, hi], `n` uniform random ones there, `n` random doubles of
/// every magnitude, the specials and NaN.
fn inputs(rng: &mut Rng, lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let mut v: Vec<f64> = (0..=n).map(|i| lo + (hi - lo) * i as f64 / n as f64).collect();
    v.extend((0..n).map(|_| lo + (hi - lo) * rng.unit()));
    v.extend((0..n).map(|_| rng.any_finite()));
    v.extend(SPECIALS);
    v.push(f64::NAN);
    v
}

/// `op` of `xs` placed on the GPU, with soft placement off (no CPU fallback); checks the
/// result stayed on the GPU.
fn on_gpu(xs: &[&[f64]], op: impl Fn(&[Tensor]) -> ff::Result<Tensor>) -> Vec<f64> {
    let ts: Vec<Tensor> =
        xs.iter().map(|v| Tensor::from(ndarray::Array1::from(v.to_vec()).into_dyn()).to_device(GPU).unwrap()).collect();
    let y = ff::config::with_soft_device_placement(false, || ff::with_device("/GPU:0", || op(&ts))).unwrap();
    assert_eq!(y.device(), GPU, "ran on the GPU");
    y.to_ndarray::<f64>().unwrap().iter().copied().collect()
}

/// Checks `got` against `want(x)` for every input: within `bound` ulps, and bit for bit
/// (NaN matching NaN, the sign of zero included) where `want` is not finite or is zero.
fn check(name: &str, xs: &[f64], got: &[f64], bound: f64, want: impl Fn(f64) -> f64) -> f64 {
    let mut worst = 0.0f64;
    for (&x, &g) in xs.iter().zip(got) {
        let w = want(x);
        let u = ulps(g, w);
        assert!(u <= bound, "{name}({x:e}): GPU {g:e}, std {w:e}: {u} ulp > {bound}");
        if !w.is_finite() || w == 0.0 {
            let same = (g.is_nan() && w.is_nan()) || g.to_bits() == w.to_bits();
            assert!(same, "{name}({x:e}): GPU {g:e}, std {w:e}: special values must match exactly");
        }
        worst = worst.max(u);
    }
    worst
}

/// The CPU's sigmoid (`backend::cpu::num`): exp of a non-positive number only.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The CPU's gelu: the exact (erf) form with `libm::erf`.
fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

#[test]
fn each_function_is_within_its_ulp_bound_of_std() {
    need_f64_gpu!("each_function_is_within_its_ulp_bound_of_std");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Bounds: twice what lavapipe measures (exp, log, sin, cos, pow 1 ulp; tanh and
    // sigmoid 2; gelu 8). The library is fdlibm's (< 1 ulp); std is glibc's (< 1 ulp, tanh
    // ~2). gelu's `1 + erf` cancels for negative x: one ulp of erf near -1 is several of
    // the result.
    type Case = (&'static str, f64, f64, f64, fn(&Tensor) -> ff::Result<Tensor>, fn(f64) -> f64);
    let cases: [Case; 7] = [
        // Over- and underflow thresholds and the subnormal results between -708 and -745.
        ("exp", -750.0, 712.0, 2.0, |x| x.exp(), f64::exp),
        ("log", 0.0, 8.0, 2.0, |x| x.log(), f64::ln),
        ("tanh", -25.0, 25.0, 4.0, |x| x.tanh(), f64::tanh),
        ("sigmoid", -40.0, 40.0, 4.0, |x| ff::sigmoid(x), sigmoid),
        ("gelu", -40.0, 10.0, 16.0, |x| ff::gelu(x), gelu),
        ("sin", -100.0, 100.0, 2.0, |x| x.sin(), f64::sin),
        ("cos", -100.0, 100.0, 2.0, |x| x.cos(), f64::cos),
    ];
    for (name, lo, hi, bound, op, want) in cases {
        let xs = inputs(&mut rng, lo, hi, 3000);
        let got = on_gpu(&[&xs], |t| op(&t[0]));
        let worst = check(name, &xs, &got, bound, want);
        eprintln!("gpu_f64_math: {name} within {worst} ulp of std over {} inputs", xs.len());
    }
    // Subnormal arguments of log (normalized on the bits) and subnormal results of exp.
    let tiny: Vec<f64> = (0..2000).map(|_| f64::from_bits(rng.next() >> 12)).collect();
    check("log", &tiny, &on_gpu(&[&tiny], |t| t[0].log()), 2.0, f64::ln);
    let deep: Vec<f64> = (0..2000).map(|i| -708.0 - 37.2 * i as f64 / 2000.0).collect();
    check("exp", &deep, &on_gpu(&[&deep], |t| t[0].exp()), 2.0, f64::exp);
}

#[test]
fn sin_and_cos_of_huge_arguments_reduce_exactly() {
    need_f64_gpu!("sin_and_cos_of_huge_arguments_reduce_exactly");
    let mut rng = Rng(7);
    // Past 2^20 pi/2 the reduction is Payne-Hanek on 192 bits of 2/pi: random arguments up
    // to f64::MAX, multiples of pi/2 (where x mod pi/2 cancels), and the landmarks.
    let mut xs: Vec<f64> =
        (0..3000).map(|_| rng.any_finite().abs().max(1.7e6) * if rng.unit() < 0.5 { -1.0 } else { 1.0 }).collect();
    xs.extend((0..2000).map(|k| (k * 7919 + 1) as f64 * std::f64::consts::FRAC_PI_2));
    xs.extend((1..=1023).step_by(7).map(|e| 2f64.powi(e)));
    xs.extend([1e15, -1e15, 1e22, 1e300, -1e300, f64::MAX, -f64::MAX, 1.6470993291652855e6, 1.6470993291652857e6]);
    for (name, op, want) in [
        ("sin", Tensor::sin as fn(&Tensor) -> ff::Result<Tensor>, f64::sin as fn(f64) -> f64),
        ("cos", Tensor::cos, f64::cos),
    ] {
        let got = on_gpu(&[&xs], |t| op(&t[0]));
        let worst = check(name, &xs, &got, 2.0, want);
        eprintln!("gpu_f64_math: {name} of huge arguments within {worst} ulp of std");
    }
    // The double closest to a multiple of pi/2 (6381956970095103 * 2^797, 4.7e-19 away):
    // the values correctly rounded from a 3000-bit computation (mpmath). glibc's cos is
    // 8 ulp off here, so this one is checked against the exact value, not std.
    let x = 6381956970095103.0 * 2f64.powi(797);
    assert_eq!(on_gpu(&[&[x]], |t| t[0].sin()), [1.0], "sin at the hardest argument");
    let c = on_gpu(&[&[x]], |t| t[0].cos())[0];
    assert!(ulps(c, -4.687165924254628e-19) <= 1.0, "cos at the hardest argument: {c:e}");
}

#[test]
fn pow_matches_std_with_ieee_special_cases() {
    need_f64_gpu!("pow_matches_std_with_ieee_special_cases");
    let mut rng = Rng(11);
    let (mut a, mut b) = (vec![], vec![]);
    for i in 0..6000 {
        let base = match i % 3 {
            0 => 10f64.powf(rng.unit() * 40.0 - 20.0),
            1 => rng.unit() * 20.0,
            _ => rng.any_finite().abs(),
        };
        // Negative bases with integer exponents (odd and even), fractional exponents
        // (NaN for a negative base), exponents that overflow and underflow.
        a.push(if i % 5 == 0 { -base } else { base });
        b.push(match i % 4 {
            0 => (rng.unit() * 60.0 - 30.0).round(),
            1 => rng.unit() * 20.0 - 10.0,
            2 => rng.unit() * 1400.0 - 700.0,
            _ => rng.any_finite() * 1e-300,
        });
    }
    // Every pair of the special values: pow(x, ±0) = 1 and pow(1, y) = 1 even for NaN,
    // (-1)^±inf = 1, signed zeros and infinities by the exponent's parity and sign.
    let sp = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        2.0,
        -2.0,
        3.0,
        -3.0,
        1.5,
        1e300,
        1e-310,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    for &x in &sp {
        for &y in &sp {
            a.push(x);
            b.push(y);
        }
    }
    // Integer powers that fit are exact.
    for k in 0..=40 {
        a.push(3.0);
        b.push(k as f64);
    }
    let got = on_gpu(&[&a, &b], |t| ff::pow(&t[0], &t[1]));
    let mut worst = 0.0f64;
    for ((&x, &y), &g) in a.iter().zip(&b).zip(&got) {
        let w = x.powf(y);
        let u = ulps(g, w);
        assert!(u <= 2.0, "pow({x:e}, {y:e}): GPU {g:e}, std {w:e}: {u} ulp");
        if !w.is_finite() || w == 0.0 || (x == 3.0 && y.fract() == 0.0 && y <= 33.0) {
            assert!(
                (g.is_nan() && w.is_nan()) || g.to_bits() == w.to_bits(),
                "pow({x:e}, {y:e}): GPU {g:e}, std {w:e}"
            );
        }
        worst = worst.max(u);
    }
    eprintln!("gpu_f64_math: pow within {worst} ulp of std over {} pairs", a.len());
}

/// A traced function of two f64 tensors of `shape` run on GPU copies: checks the kernel
/// dispatches of one call (`dispatches`: one per fused node), no transfers, and the result
/// against the same function run eagerly on the CPU: within `bound` ulps, or within `rel`
/// of `max(|value|, 1)` where terms cancel or sums are reordered.
fn traced_on_gpu(
    name: &str,
    body: fn(&Tensor, &Tensor) -> ff::Result<Tensor>,
    (x, y, shape): (&[f64], &[f64], &[usize]),
    dispatches: u64,
    (bound, rel): (f64, f64),
) {
    let xt = Tensor::from_vec(x.to_vec(), shape).unwrap();
    let yt = Tensor::from_vec(y.to_vec(), shape).unwrap();
    let want = body(&xt, &yt).unwrap();
    let f = ff::function(body);
    let (gx, gy) = (xt.to_device(GPU).unwrap(), yt.to_device(GPU).unwrap());
    ff::config::with_soft_device_placement(false, || {
        let _ = f.call((&gx, &gy)).unwrap(); // compiles the kernels
        let before = (ff::gpu::thread_dispatches(), ff::profiler::thread_transfers());
        let got = f.call((&gx, &gy)).unwrap();
        assert_eq!(got.device(), GPU, "{name}: ran on the GPU");
        assert_eq!(ff::gpu::thread_dispatches() - before.0, dispatches, "{name}: kernel dispatches");
        assert_eq!((ff::profiler::thread_transfers() - before.1).total_count(), 0, "{name}: no copies");
        let (g, w) = (got.to_ndarray::<f64>().unwrap(), want.to_ndarray::<f64>().unwrap());
        assert_eq!(g.shape(), w.shape(), "{name}");
        for (k, (a, b)) in g.iter().zip(w.iter()).enumerate() {
            let ok = ulps(*a, *b) <= bound || (a - b).abs() <= rel * b.abs().max(1.0);
            assert!(ok, "{name}: element {k}: GPU {a:e}, CPU {b:e}");
        }
    });
}

#[test]
fn fused_f64_kernels_compute_on_the_gpu() {
    need_f64_gpu!("fused_f64_kernels_compute_on_the_gpu");
    let x: Vec<f64> = (0..777).map(|i| (i as f64 * 0.731).sin() * 3.0).collect();
    let y: Vec<f64> = (0..777).map(|i| (i as f64 * 0.377).cos() * 40.0).collect();
    // One fused loop (a host scalar as a two-word parameter included); each op within a
    // few ulp, so the chain within a few ulp of its terms (they cancel: e^3 sin + tanh).
    let flat = (&x[..], &y[..], &[777usize][..]);
    traced_on_gpu(
        "exp(x) sin(y) + tanh(x)",
        |x, y| ((x.exp()? * y.sin()?)? + x.tanh()?)? * 2.5f64,
        flat,
        1,
        (8.0, 1e-14),
    );
    traced_on_gpu("pow and sigmoid", |x, y| ff::pow(x.abs()?, y * 0.25f64)? + ff::sigmoid(y)?, flat, 1, (8.0, 1e-14));
    // A fused reduction: the sum of exponentials along the rows, one kernel (the sums
    // are reordered: a tree on the GPU).
    let rows = (&x[..], &y[..], &[7usize, 111][..]);
    traced_on_gpu(
        "reduce_sum(exp(x - y / 10))",
        |x, y| (x - (y / 10.0f64)?)?.exp()?.reduce_sum(Some(&[1]), false),
        rows,
        1,
        (8.0, 1e-14),
    );
    // A fused matmul with a transcendental epilogue.
    let sq = (&x[..729], &y[..729], &[27usize, 27][..]);
    traced_on_gpu("tanh(x @ y / 100 + x)", |x, y| ((ff::matmul(x, y)? / 100.0f64)? + x)?.tanh(), sq, 1, (8.0, 1e-13));
}

#[test]
fn softmax_and_log_softmax_of_f64_compute_on_the_gpu() {
    need_f64_gpu!("softmax_and_log_softmax_of_f64_compute_on_the_gpu");
    let mut rng = Rng(3);
    // Rows of ordinary values, large ones (the max subtracted first), and -inf.
    let mut v: Vec<f64> = (0..12 * 37).map(|_| rng.unit() * 20.0 - 10.0).collect();
    v[5] = 700.0;
    v[40] = f64::NEG_INFINITY;
    v[80] = -1e300;
    for axis in [1isize, 0] {
        for log in [false, true] {
            let x = Tensor::from(ndarray::Array2::from_shape_vec((12, 37), v.clone()).unwrap().into_dyn());
            let op = |t: &Tensor| if log { ff::log_softmax(t, axis) } else { ff::softmax(t, axis) };
            let want = op(&x).unwrap().to_ndarray::<f64>().unwrap();
            let got = on_gpu(&[&v], |t| op(&t[0].reshape(&[12, 37])?));
            for (k, (g, w)) in got.iter().zip(want.iter()).enumerate() {
                // The sums are reordered (a tree on the GPU): a few ulp of the sum, which
                // log_softmax subtracts from values of its size.
                let ok = ulps(*g, *w) <= 8.0 || (g - w).abs() <= 1e-14 * w.abs().max(1.0);
                assert!(
                    ok,
                    "{} axis {axis} element {k}: GPU {g:e}, CPU {w:e}",
                    if log { "log_softmax" } else { "softmax" }
                );
            }
        }
    }
}
