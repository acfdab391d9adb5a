//! Shared helpers: the execution modes every op-table case runs through, a deterministic
//! value generator, tensors built from plain Rust values, and comparison against references
//! computed independently in f64 (floats) or exact integer arithmetic.

use std::fmt::Display;
use std::sync::Arc;

use ferroflow as ff;
use ff::{DType, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};

pub use DType::{BF16, Bool, F16, F32, F64, I32, I64, U8};

pub const FLOATS: &[DType] = &[F32, F64, F16, BF16];
pub const SIGNED: &[DType] = &[F32, F64, F16, BF16, I32, I64];
pub const NUM: &[DType] = &[F32, F64, F16, BF16, I32, I64, U8];
pub const INT_INDEX: &[DType] = &[I32, I64];
pub const BOOL: &[DType] = &[Bool];
pub const ALL: &[DType] = &DType::ALL;

// ---- execution modes -----------------------------------------------------------------------

/// How a table case is executed. Each mode is one variant, one entry in [`MODES`] and one arm
/// in [`run_many`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The op runs at once on concrete tensors.
    Eager,
    /// The op inside `ff::function`: the case's tensor inputs become the function's tensor
    /// arguments, everything else (axes, dtypes, flags) is captured by the closure; the call
    /// traces a graph, optimizes it with every pass (the default options: folding, CSE,
    /// arithmetic rewrites, fusion, memory planning) and runs it. The result (or the error)
    /// must be exactly the eager one: see [`run_many`]. Each pass alone and no pass at all are
    /// the optimizer's differential tests' (`optimizer_diff.rs`), over random programs.
    Traced,
    /// `Eager` with the tensor inputs placed on the GPU (those whose dtype it holds) inside
    /// `with_device("/GPU:0")`: every op must give the CPU's result within a tolerance
    /// (floats) or exactly (the rest), or the CPU's error (an out-of-range gather or one_hot
    /// index aside: the GPU gives zeros, as TensorFlow's GPU kernels). Returns the CPU
    /// outcome, so the table's own reference check is unchanged. Without a GPU adapter it
    /// prints one SKIPPED line and runs `Eager`.
    WgpuEager,
    /// `Traced` with the inputs on the GPU: the plan runs there (fused kernels included).
    WgpuTraced,
}

/// The modes the op table runs every case in.
pub const MODES: &[Mode] = &[Mode::Eager, Mode::Traced, Mode::WgpuEager, Mode::WgpuTraced];

/// The op of a case: its tensor inputs in, its outputs out. Everything else the op needs is
/// captured, as host values are by a traced function, so it must be `Send + Sync + 'static`
/// like any body of `ff::function`.
pub type OpFn = Arc<dyn Fn(&[Tensor]) -> ff::Result<Vec<Tensor>> + Send + Sync>;

thread_local! {
    /// The cases under test on this thread, innermost last (see [`name_case`]).
    static CASES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Names the case under test (op, dtype, shape) in the panics of [`run_many`] until the
/// guard drops, so that a mode that differs says which op it was, not only the inputs.
pub fn name_case(ctx: &str) -> CaseGuard {
    CASES.with(|c| c.borrow_mut().push(ctx.to_string()));
    CaseGuard(())
}

/// Ends a [`name_case`] when dropped.
pub struct CaseGuard(());

impl Drop for CaseGuard {
    fn drop(&mut self) {
        CASES.with(|c| c.borrow_mut().pop());
    }
}

/// `"<case>: "` for the innermost case, or nothing.
fn case_prefix() -> String {
    CASES.with(|c| c.borrow().last().map(|s| format!("{s}: ")).unwrap_or_default())
}

/// Runs `f` over `inputs` in `mode`.
///
/// `Traced` also runs `f` eagerly and panics (at the caller's line) unless both agree
/// exactly: the same number of outputs with the same dtypes, shapes and bits (any NaN
/// matches any NaN), or both an error of the same variant, raised at the same line of the
/// caller, with the same message apart from the location. It returns the traced outcome.
#[track_caller]
pub fn run_many(
    mode: Mode,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> ff::Result<Vec<Tensor>> + Send + Sync + 'static,
) -> ff::Result<Vec<Tensor>> {
    match mode {
        Mode::Eager => f(inputs),
        Mode::Traced => {
            let f: OpFn = Arc::new(f);
            let traced = call_traced(&f, inputs);
            let eager = f(inputs);
            if let Err(why) = same_outcome(&eager, &traced) {
                panic!("{}traced differs from eager on inputs {}: {why}", case_prefix(), describe(inputs));
            }
            traced
        }
        Mode::WgpuEager | Mode::WgpuTraced => {
            let eager = f(inputs);
            if !gpu_available() {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| eprintln!("SKIPPED: no GPU adapter: the op table's Wgpu modes run on the CPU only"));
                return eager;
            }
            let on_gpu: Vec<Tensor> = inputs.iter().map(to_gpu).collect();
            let gpu = if mode == Mode::WgpuEager {
                ff::with_device("/GPU:0", || f(&on_gpu))
            } else {
                let f: OpFn = Arc::new(f);
                ff::with_device("/GPU:0", || call_traced(&f, &on_gpu))
            };
            if let Err(why) = gpu_matches(&eager, &gpu) {
                panic!("{}{mode:?} differs from the CPU on inputs {}: {why}", case_prefix(), describe(inputs));
            }
            eager
        }
    }
}

/// `t` on GPU:0 when the GPU holds its dtype (f32, i32, u8, bool and i64 everywhere; f16
/// and f64 where the adapter has the shader features), else `t`.
pub fn to_gpu(t: &Tensor) -> Tensor {
    match t.to_device(ff::Device::Gpu(0)) {
        Ok(g) => g,
        Err(ff::Error::Unsupported { .. }) => t.clone(),
        Err(e) => panic!("upload of {}: {e}", t.dtype()),
    }
}

/// How close a GPU float must be to the CPU's (`|got - want| <= abs + rel |want|`): sums of
/// hundreds of products are reordered; f16 computes in f32 on both and rounds once, so one
/// f16 ulp (2^-10 relative) apart when the f32 values straddle a rounding boundary; f64 is
/// f64-grade (its transcendentals are a few ulp from std's; sums are reordered), except
/// for a CPU value that is exactly an f32 (an op that computes in f32 and returns f64, as
/// `image::rgb_to_grayscale` does), which gets f32's tolerance.
fn gpu_tol(d: DType, want: f64) -> (f64, f64) {
    match d {
        F64 if (want as f32) as f64 != want => (1e-13, 1e-13),
        F16 => (1e-3, 2e-3),
        _ => (1e-4, 1e-4),
    }
}

/// Whether a GPU outcome matches the CPU one: floats within [`gpu_tol`] (NaN matches NaN,
/// infinities match exactly), everything else bit for bit; errors of the same variant (the
/// GPU may give zeros where the CPU reports an out-of-range index).
pub fn gpu_matches(cpu: &ff::Result<Vec<Tensor>>, gpu: &ff::Result<Vec<Tensor>>) -> Result<(), String> {
    match (cpu, gpu) {
        (Ok(want), Ok(got)) => {
            if want.len() != got.len() {
                return Err(format!("{} outputs, the CPU gave {}", got.len(), want.len()));
            }
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                if w.dtype() != g.dtype() || w.shape().dims() != g.shape().dims() {
                    return Err(format!(
                        "output {i}: got {}{:?}, want {}{:?}",
                        g.dtype(),
                        g.shape().dims(),
                        w.dtype(),
                        w.shape().dims()
                    ));
                }
                if w.dtype().is_float() {
                    let (wv, gv) = (values(w), values(g));
                    for (k, (a, b)) in gv.iter().zip(wv.iter()).enumerate() {
                        let (abs, rel) = gpu_tol(w.dtype(), *b);
                        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= abs + rel * b.abs();
                        if !ok {
                            return Err(format!("output {i} element {k}: GPU {a}, CPU {b}"));
                        }
                    }
                } else if w.dtype() == Bool {
                    same_tensor(w, g).map_err(|e| format!("output {i}: {e}"))?;
                } else {
                    // Exact below 2^20; above, an integer computed through f32 (a cast back
                    // from float math) may differ by one f32 ulp.
                    let (wv, gv) = (values(w), values(g));
                    for (k, (a, b)) in gv.iter().zip(wv.iter()).enumerate() {
                        if (a - b).abs() > 1e-6 * b.abs() {
                            return Err(format!("output {i} element {k}: GPU {a}, CPU {b}"));
                        }
                    }
                }
            }
            Ok(())
        }
        (Err(we), Err(ge)) => {
            if std::mem::discriminant(we) != std::mem::discriminant(ge) {
                return Err(format!("GPU error {ge}, CPU error {we}"));
            }
            Ok(())
        }
        (Err(ff::Error::IndexOutOfBounds { .. }), Ok(_)) => Ok(()),
        (Ok(_), Err(e)) => Err(format!("the GPU failed, the CPU succeeded: {e}")),
        (Err(e), Ok(_)) => Err(format!("the GPU succeeded, the CPU failed: {e}")),
    }
}

/// [`run_many`] for an op with one output.
#[track_caller]
pub fn run(
    mode: Mode,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> ff::Result<Tensor> + Send + Sync + 'static,
) -> ff::Result<Tensor> {
    let out = run_many(mode, inputs, move |xs| f(xs).map(|t| vec![t]))?;
    assert_eq!(out.len(), 1, "run: one output");
    Ok(out.into_iter().next().expect("run: one output"))
}

/// Calls `f` once as a fresh `ff::function` whose tensor arguments are `inputs` (one wrapper
/// per arity, since a traced closure has a fixed parameter list), and checks that the call
/// traced exactly once.
#[track_caller]
pub fn call_traced(f: &OpFn, inputs: &[Tensor]) -> ff::Result<Vec<Tensor>> {
    fn once<M, B: ff::function::Body<M, Output = Vec<Tensor>>>(
        g: ff::Function<M, B>,
        args: impl ff::function::CallArgs,
    ) -> ff::Result<Vec<Tensor>> {
        let out = g.call(args);
        assert_eq!(g.tracing_count(), 1, "a traced call traces once (is run_functions_eagerly on?)");
        out
    }
    let f = f.clone();
    match inputs {
        // No tensor input: a host value stands in, as a function needs one parameter.
        [] => once(ff::function(move |_: u8| f(&[])), (0u8,)),
        [a] => once(ff::function(move |a: &Tensor| f(std::slice::from_ref(a))), (a,)),
        [a, b] => once(ff::function(move |a: &Tensor, b: &Tensor| f(&[a.clone(), b.clone()])), (a, b)),
        [a, b, c] => once(
            ff::function(move |a: &Tensor, b: &Tensor, c: &Tensor| f(&[a.clone(), b.clone(), c.clone()])),
            (a, b, c),
        ),
        [a, b, c, d] => once(
            ff::function(move |a: &Tensor, b: &Tensor, c: &Tensor, d: &Tensor| {
                f(&[a.clone(), b.clone(), c.clone(), d.clone()])
            }),
            (a, b, c, d),
        ),
        _ => panic!("Mode::Traced: add a wrapper for {} tensor inputs", inputs.len()),
    }
}

/// `f32[2, 3], i64[]`: the specs of some tensors, for messages.
pub fn describe(ts: &[Tensor]) -> String {
    ts.iter().map(|t| format!("{}{:?}", t.dtype(), t.shape().dims())).collect::<Vec<_>>().join(", ")
}

/// The elements of a tensor as raw bits (floats by their IEEE bits, every NaN the same;
/// integers sign-extended), so that two tensors compare exactly, `-0.0` apart from `0.0`.
pub fn bits(t: &Tensor) -> Vec<u64> {
    fn float(nan: bool, b: u64) -> u64 {
        if nan { u64::MAX } else { b }
    }
    match t.dtype() {
        F32 => t.to_ndarray::<f32>().unwrap().iter().map(|v| float(v.is_nan(), v.to_bits() as u64)).collect(),
        F64 => t.to_ndarray::<f64>().unwrap().iter().map(|v| float(v.is_nan(), v.to_bits())).collect(),
        F16 => t.to_ndarray::<f16>().unwrap().iter().map(|v| float(v.is_nan(), v.to_bits() as u64)).collect(),
        BF16 => t.to_ndarray::<bf16>().unwrap().iter().map(|v| float(v.is_nan(), v.to_bits() as u64)).collect(),
        I32 => t.to_ndarray::<i32>().unwrap().iter().map(|&v| v as u64).collect(),
        I64 => t.to_ndarray::<i64>().unwrap().iter().map(|&v| v as u64).collect(),
        U8 => t.to_ndarray::<u8>().unwrap().iter().map(|&v| v as u64).collect(),
        Bool => t.to_ndarray::<bool>().unwrap().iter().map(|&v| v as u64).collect(),
    }
}

/// Whether two tensors are the same: dtype, shape and every element's bits.
pub fn same_tensor(want: &Tensor, got: &Tensor) -> Result<(), String> {
    if want.dtype() != got.dtype() || want.shape().dims() != got.shape().dims() {
        return Err(format!(
            "got {}{:?}, want {}{:?}",
            got.dtype(),
            got.shape().dims(),
            want.dtype(),
            want.shape().dims()
        ));
    }
    let (w, g) = (bits(want), bits(got));
    match w.iter().zip(&g).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!(
            "element {i} differs: got {}, want {}",
            values(got).iter().nth(i).copied().unwrap_or_default(),
            values(want).iter().nth(i).copied().unwrap_or_default()
        )),
    }
}

/// An error's message without its location (` (at file:line:col)`, which a graph error
/// prefixes with its node).
pub fn message_sans_location(e: &ff::Error) -> String {
    let m = e.to_string();
    match m.rfind(" (at ") {
        Some(i) if m.ends_with(')') => m[..i].to_string(),
        _ => m,
    }
}

/// Whether a traced outcome is the eager one: see [`run_many`].
pub fn same_outcome(eager: &ff::Result<Vec<Tensor>>, traced: &ff::Result<Vec<Tensor>>) -> Result<(), String> {
    match (eager, traced) {
        (Ok(want), Ok(got)) => {
            if want.len() != got.len() {
                return Err(format!("{} outputs, eager gave {}", got.len(), want.len()));
            }
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                same_tensor(w, g).map_err(|e| format!("output {i}: {e}"))?;
            }
            Ok(())
        }
        (Err(we), Err(ge)) => {
            if std::mem::discriminant(we) != std::mem::discriminant(ge) {
                return Err(format!("traced error {ge}, eager error {we}"));
            }
            let (wl, gl) = (we.location(), ge.location());
            let at = |l: Option<ff::Loc>| l.map(|l| (l.file(), l.line(), l.column()));
            if at(wl) != at(gl) {
                return Err(format!("traced error at {gl:?}, eager at {wl:?}: {ge}"));
            }
            if message_sans_location(we) != message_sans_location(ge) {
                return Err(format!("traced error {ge:?}\n  eager error {we:?}"));
            }
            Ok(())
        }
        (Ok(_), Err(e)) => Err(format!("traced failed, eager succeeded: {e}")),
        (Err(e), Ok(_)) => Err(format!("traced succeeded, eager failed: {e}")),
    }
}

// ---- deterministic values --------------------------------------------------------------------

/// SplitMix64: small, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// A generator seeded from a case description, so every case gets its own values.
    pub fn for_case(desc: &str) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in desc.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Rng::new(h)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }
    /// Uniform integer in `lo..=hi`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }
}

/// Which values a case draws (per dtype family).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Floats in [-3, 3); signed ints in -6..=6; u8 in 0..=40 (so squares and sums wrap).
    Any,
    /// Strictly positive: floats in [0.1, 4), ints in 1..=9.
    Pos,
    /// Away from zero: |floats| >= 0.25, ints non-zero.
    NonZero,
    /// Small integers (also for floats), so comparisons meet equal values often.
    Small,
    /// Floats near 1 (products stay tame); ints in -2..=2 (u8 0..=3).
    Prod,
    /// Bases for pow: floats in [0.2, 2.5), ints in -4..=4 (u8 0..=6).
    PowBase,
    /// Exponents for pow: floats in [-2, 2), ints in 0..=4.
    PowExp,
}

/// `n` values for `dt` from `dom`, as f64 (exact in `dt` once rounded by [`round_to`]).
pub fn values_for(rng: &mut Rng, dt: DType, n: usize, dom: Domain) -> Vec<f64> {
    (0..n)
        .map(|_| {
            if dt == Bool {
                return rng.int(0, 1) as f64;
            }
            if dt.is_float() {
                match dom {
                    Domain::Any => rng.range(-3.0, 3.0),
                    Domain::Pos => rng.range(0.1, 4.0),
                    Domain::NonZero => {
                        let v = rng.range(0.25, 3.0);
                        if rng.int(0, 1) == 0 { v } else { -v }
                    }
                    Domain::Small => rng.int(-2, 2) as f64,
                    Domain::Prod => rng.range(0.5, 1.5),
                    Domain::PowBase => rng.range(0.2, 2.5),
                    Domain::PowExp => rng.range(-2.0, 2.0),
                }
            } else {
                let unsigned = dt == U8;
                let (lo, hi) = match (dom, unsigned) {
                    (Domain::Any, false) => (-6, 6),
                    (Domain::Any, true) => (0, 40),
                    (Domain::Pos, _) => (1, 9),
                    (Domain::NonZero, false) => {
                        let v = rng.int(1, 6);
                        return if rng.int(0, 1) == 0 { v as f64 } else { -v as f64 };
                    }
                    (Domain::NonZero, true) => (1, 20),
                    (Domain::Small, false) => (-2, 2),
                    (Domain::Small, true) => (0, 3),
                    (Domain::Prod, false) => (-2, 2),
                    (Domain::Prod, true) => (0, 3),
                    (Domain::PowBase, false) => (-4, 4),
                    (Domain::PowBase, true) => (0, 6),
                    (Domain::PowExp, _) => (0, 4),
                };
                rng.int(lo, hi) as f64
            }
        })
        .collect()
}

// ---- dtype arithmetic of the references --------------------------------------------------------

/// `v` rounded to the nearest value of `dt` (Rust's own conversions: floats round to nearest,
/// float to int truncates and saturates, anything to bool is `!= 0`).
pub fn round_to(dt: DType, v: f64) -> f64 {
    match dt {
        F32 => v as f32 as f64,
        F64 => v,
        F16 => f16::from_f64(v).to_f64(),
        BF16 => bf16::from_f64(v).to_f64(),
        I32 => v as i32 as f64,
        I64 => v as i64 as f64,
        U8 => v as u8 as f64,
        Bool => (v != 0.0) as u8 as f64,
    }
}

/// An integer result reduced to the width of `dt` (two's-complement wrapping).
pub fn wrap(dt: DType, v: i64) -> i64 {
    match dt {
        I32 => v as i32 as i64,
        U8 => v as u8 as i64,
        _ => v,
    }
}

/// The smallest value of `dt` (the identity of max).
pub fn lowest(dt: DType) -> f64 {
    match dt {
        I32 => i32::MIN as f64,
        I64 => i64::MIN as f64,
        U8 => 0.0,
        _ => f64::NEG_INFINITY,
    }
}

/// The largest value of `dt` (the identity of min).
pub fn highest(dt: DType) -> f64 {
    match dt {
        I32 => i32::MAX as f64,
        I64 => i64::MAX as f64,
        U8 => 255.0,
        _ => f64::INFINITY,
    }
}

/// The error function to ~1e-14: a Taylor series near 0, a continued fraction for erfc far out.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let z = x.abs();
    let r = if z < 2.5 {
        let (mut sum, mut term, mut n) = (0.0f64, z, 0u32);
        // term_n = (-1)^n z^(2n+1) / n!
        while term.abs() > 1e-18 * sum.abs().max(1e-300) || n < 3 {
            sum += term / (2 * n + 1) as f64;
            n += 1;
            term *= -z * z / n as f64;
            if n > 200 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else if z.is_infinite() {
        1.0
    } else {
        let mut f = z;
        for k in (1..=80).rev() {
            f = z + (k as f64 / 2.0) / f;
        }
        1.0 - (-z * z).exp() / std::f64::consts::PI.sqrt() / f
    };
    if x < 0.0 { -r } else { r }
}

// ---- tensors from plain values ---------------------------------------------------------------

/// A tensor of `dt` holding `vals` converted with Rust's own conversions.
pub fn tensor(dt: DType, shape: &[usize], vals: &[f64]) -> Tensor {
    let t = match dt {
        F32 => Tensor::from_vec(vals.iter().map(|&v| v as f32).collect(), shape),
        F64 => Tensor::from_vec(vals.to_vec(), shape),
        F16 => Tensor::from_vec(vals.iter().map(|&v| f16::from_f64(v)).collect(), shape),
        BF16 => Tensor::from_vec(vals.iter().map(|&v| bf16::from_f64(v)).collect(), shape),
        I32 => Tensor::from_vec(vals.iter().map(|&v| v as i32).collect(), shape),
        I64 => Tensor::from_vec(vals.iter().map(|&v| v as i64).collect(), shape),
        U8 => Tensor::from_vec(vals.iter().map(|&v| v as u8).collect(), shape),
        Bool => Tensor::from_vec(vals.iter().map(|&v| v != 0.0).collect(), shape),
    };
    t.expect("tensor: length matches shape")
}

/// The exact values a tensor built by [`tensor`] holds, as an f64 array.
pub fn exact(dt: DType, shape: &[usize], vals: &[f64]) -> ArrayD<f64> {
    let v: Vec<f64> = vals.iter().map(|&v| round_to(dt, v)).collect();
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("exact: length matches shape")
}

/// A random input: the tensor and the exact values it holds.
pub fn input(rng: &mut Rng, dt: DType, shape: &[usize], dom: Domain) -> (Tensor, ArrayD<f64>) {
    let n = shape.iter().product();
    let v = values_for(rng, dt, n, dom);
    (tensor(dt, shape, &v), exact(dt, shape, &v))
}

/// The values of any tensor as f64 (bool as 0/1).
pub fn values(t: &Tensor) -> ArrayD<f64> {
    match t.dtype() {
        F32 => t.to_ndarray::<f32>().unwrap().mapv(|v| v as f64),
        F64 => t.to_ndarray::<f64>().unwrap(),
        F16 => t.to_ndarray::<f16>().unwrap().mapv(|v| v.to_f64()),
        BF16 => t.to_ndarray::<bf16>().unwrap().mapv(|v| v.to_f64()),
        I32 => t.to_ndarray::<i32>().unwrap().mapv(|v| v as f64),
        I64 => t.to_ndarray::<i64>().unwrap().mapv(|v| v as f64),
        U8 => t.to_ndarray::<u8>().unwrap().mapv(|v| v as f64),
        Bool => t.to_ndarray::<bool>().unwrap().mapv(|v| v as u8 as f64),
    }
}

// ---- comparison ------------------------------------------------------------------------------

/// An absolute and a relative tolerance: `|got - want| <= abs + rel * |want|`.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub abs: f64,
    pub rel: f64,
}

impl Tol {
    /// The default for results of `dt`: tight for f64, ~1e-5 for f32, the rounding of one
    /// half-precision result for f16 / bf16, exact for integers and bool.
    pub fn of(dt: DType) -> Tol {
        match dt {
            F64 => Tol { abs: 1e-12, rel: 1e-12 },
            F32 => Tol { abs: 1e-6, rel: 1e-5 },
            F16 => Tol { abs: 1e-3, rel: 2e-3 },
            BF16 => Tol { abs: 8e-3, rel: 1.6e-2 },
            _ => Tol { abs: 0.0, rel: 0.0 },
        }
    }
    /// Room for results accumulated over many terms in f32 / f64 (sums, matmul): the
    /// absolute part grows by `k`. Half types accumulate in f32 and round once, so they keep
    /// their tolerance.
    pub fn acc(self, dt: DType, k: f64) -> Tol {
        if matches!(dt, F32 | F64) { Tol { abs: self.abs * k, rel: self.rel * k.sqrt() } } else { self }
    }
    pub fn at_least(self, abs: f64, rel: f64) -> Tol {
        Tol { abs: self.abs.max(abs), rel: self.rel.max(rel) }
    }
}

/// Whether `got` matches `want`: NaN matches NaN, infinities match by sign.
pub fn close(got: f64, want: f64, tol: Tol) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    approx::abs_diff_eq!(got, want, epsilon = tol.abs)
        || approx::relative_eq!(got, want, epsilon = tol.abs, max_relative = tol.rel)
}

/// Asserts dtype, shape and every value of `got` against a reference (already computed in f64;
/// it is rounded to `dt` here, so overflow to infinity and integer results compare exactly).
#[track_caller]
pub fn assert_close(ctx: &dyn Display, got: &Tensor, dt: DType, want: &ArrayD<f64>, tol: Tol) {
    assert_eq!(got.dtype(), dt, "{ctx}: dtype");
    assert_eq!(got.shape().dims(), want.shape(), "{ctx}: shape");
    let g = values(got);
    for ((idx, &w), &gv) in want.indexed_iter().zip(g.iter()) {
        let w = round_to(dt, w);
        assert!(close(gv, w, tol), "{ctx}: at {:?}: got {gv}, want {w} (tol {tol:?})", idx);
    }
}

/// `Ok` or a panic that names the case and the error.
#[track_caller]
pub fn ok<T>(ctx: &dyn Display, r: ff::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{ctx}: unexpected error: {e}"),
    }
}

/// The NumPy broadcast of two shapes, or `None`.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Checks an error: its variant (by the caller's `matches!`), that the message starts with the
/// op's name, and that its location is a line of the calling test file.
#[track_caller]
pub fn check_err(e: &ff::Error, op: &str) {
    let caller = std::panic::Location::caller().file();
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{op}:")), "message should name {op:?}: {msg}");
    let loc = e.location().unwrap_or_else(|| panic!("error without a location: {msg}"));
    let base = std::path::Path::new(caller).file_name().and_then(|s| s.to_str()).unwrap_or(caller);
    assert!(loc.file().ends_with(base), "location {loc} should be in {caller} ({msg})");
    assert!(msg.contains(&format!("{}:{}", loc.file(), loc.line())), "message should show the location: {msg}");
}

#[test]
fn reference_erf_is_accurate() {
    let known = [
        (0.0, 0.0),
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.0, 0.995_322_265_018_952_7),
        (2.5, 0.999_593_047_982_555),
        (3.0, 0.999_977_909_503_001_4),
        (4.0, 0.999_999_984_582_742_1),
    ];
    for (x, want) in known {
        assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {}, want {want}", erf(x));
        assert!((erf(-x) + want).abs() < 1e-14);
    }
}

#[test]
fn traced_mode_runs_the_op_as_a_graph() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SYMBOLIC: AtomicUsize = AtomicUsize::new(0);
    let x = tensor(F32, &[2], &[1.0, -2.0]);
    let body = |t: &[Tensor]| {
        if t.iter().all(Tensor::is_symbolic) {
            SYMBOLIC.fetch_add(1, Ordering::SeqCst);
        }
        ff::add(&t[0], &t[1])?.relu()
    };
    let got = run(Mode::Traced, &[x.clone(), x.clone()], body).unwrap();
    assert_eq!(SYMBOLIC.load(Ordering::SeqCst), 1, "the body ran once on symbolic tensors (the trace)");
    assert_eq!(values(&got).iter().copied().collect::<Vec<_>>(), [2.0, 0.0]);
    // Four tensor inputs, and none.
    let got = run(Mode::Traced, &[x.clone(), x.clone(), x.clone(), x.clone()], |t| ff::concat(t, 0)).unwrap();
    assert_eq!(got.shape().dims(), &[8]);
    let got = run(Mode::Traced, &[], |_| ff::ones(&[3], I32)).unwrap();
    assert_eq!(bits(&got), [1, 1, 1]);
}

#[test]
fn same_outcome_is_exact() {
    let t = |dt, v: &[f64]| tensor(dt, &[v.len()], v);
    let ok = |v: Vec<Tensor>| -> ff::Result<Vec<Tensor>> { Ok(v) };
    let same = |a: Vec<Tensor>, b: Vec<Tensor>| same_outcome(&ok(a), &ok(b)).is_ok();
    assert!(same(vec![t(F32, &[1.0, f64::NAN])], vec![t(F32, &[1.0, -f64::NAN])]));
    assert!(!same(vec![t(F32, &[0.0])], vec![t(F32, &[-0.0])]));
    assert!(!same(vec![t(F32, &[1.0])], vec![t(F32, &[1.0 + 1e-7])]));
    assert!(!same(vec![t(F32, &[1.0])], vec![t(F64, &[1.0])]));
    assert!(!same(vec![t(F32, &[1.0])], vec![tensor(F32, &[1, 1], &[1.0])]));
    let big = |v: i64| Tensor::from_slice(&[v], &[1]).unwrap();
    assert!(!same(vec![big(1 << 60)], vec![big((1 << 60) + 1)]), "i64 beyond f64's 53 bits");
    assert!(!same(vec![t(U8, &[1.0])], vec![]));
    let shape_err = ff::add(t(F32, &[1.0, 2.0]), t(F32, &[1.0, 2.0, 3.0])).map(|x| vec![x]);
    let dtype_err = ff::add(t(F32, &[1.0]), t(F64, &[1.0])).map(|x| vec![x]);
    assert!(same_outcome(&shape_err, &dtype_err).is_err());
    assert!(same_outcome(&shape_err, &ok(vec![])).is_err());
    assert!(same_outcome(&dtype_err, &dtype_err).is_ok());
}

/// Unary op number `i` (the property tests' unary table order); `#[track_caller]` so errors
/// still point at the test that called it.
#[track_caller]
pub fn unary_op(i: usize, x: &Tensor) -> ff::Result<Tensor> {
    match i {
        0 => ff::neg(x),
        1 => ff::abs(x),
        2 => ff::square(x),
        3 => ff::relu(x),
        4 => ff::exp(x),
        5 => ff::log(x),
        6 => ff::sqrt(x),
        7 => ff::rsqrt(x),
        8 => ff::sigmoid(x),
        9 => ff::tanh(x),
        10 => ff::gelu(x),
        11 => ff::sin(x),
        12 => ff::cos(x),
        _ => ff::logical_not(x),
    }
}

/// Binary op number `i` (the property tests' binary table order).
#[track_caller]
pub fn binary_op(i: usize, x: &Tensor, y: &Tensor) -> ff::Result<Tensor> {
    match i {
        0 => x + y,
        1 => x - y,
        2 => x * y,
        3 => x / y,
        4 => ff::floor_div(x, y),
        5 => ff::pow(x, y),
        6 => ff::maximum(x, y),
        7 => ff::minimum(x, y),
        8 => ff::equal(x, y),
        9 => ff::not_equal(x, y),
        10 => ff::less(x, y),
        11 => ff::less_equal(x, y),
        12 => ff::greater(x, y),
        13 => ff::greater_equal(x, y),
        14 => ff::logical_and(x, y),
        _ => ff::logical_or(x, y),
    }
}

// ---- GPU -----------------------------------------------------------------------------------

/// Returns early from a GPU test, with one loud `SKIPPED` line naming it, when no GPU
/// adapter exists (CI has lavapipe, so there the tests run).
macro_rules! need_gpu {
    ($name:literal) => {
        if !$crate::common::gpu_available() {
            eprintln!(
                "SKIPPED: no GPU adapter (install mesa-vulkan-drivers for lavapipe): {}::{}",
                module_path!().trim_start_matches("it::"),
                $name
            );
            return;
        }
    };
}
pub(crate) use need_gpu;

/// Whether a GPU adapter exists (lavapipe counts). Sets `XDG_RUNTIME_DIR` first when it is
/// unset, so Mesa does not complain on every test.
pub fn gpu_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            let dir = std::env::temp_dir().join("ferroflow-xdg");
            let _ = std::fs::create_dir_all(&dir);
            // SAFETY: runs once, before any GPU call, while no other thread reads the env
            // for Mesa (the OnceLock serialises the first callers).
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
        ff::devices().len() > 1
    })
}
