//! Differential test of the graph optimizer: random programs (DAGs over the whole op set,
//! with deliberate optimizer bait) run eagerly, traced with no passes, with each pass alone
//! and with every pass; all must agree (same outputs within tolerance, or an error of the
//! same variant), prints must print the same, variables must end equal.
//!
//! A program is a list of instructions over earlier values chosen by index, so values are
//! reused (common subexpressions, producers with several readers). Instructions hold raw
//! random choices; the interpreter resolves them against the static shapes and dtypes of
//! the values (never against data), so eager mode and every trace make the same decisions,
//! and shrinking keeps programs valid. A few instructions are `bad` (unresolved choices) so
//! that trace-time errors occur, and gather / one_hot read index data that may be out of
//! range, so that run-time errors occur.
//!
//! Passes may change results slightly: fusion reorders reductions, `x + 0 -> x` keeps the
//! sign of a zero, transposes folded into matmul change the kernel's access order. The
//! interpreter tracks, per float value, a bound on its magnitude and on how far two runs
//! may differ (`Val::b`, `Val::e`), keeps magnitudes bounded (exact power-of-two scaling,
//! or `tanh` when a value may be infinite), and never feeds a value that may differ into a
//! discontinuous op (comparison, argmax, float-to-int cast, floor_div) or a singular one
//! (division by it, log, rsqrt, pow): those get well-conditioned replacements. Everything
//! else is compared within the tolerance the tracking gives (NaN equals NaN).

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ferroflow as ff;
use ff::{DType, Error, FunctionOptions, OptimizerOptions, PassKind, Tensor};
use proptest::prelude::{ProptestConfig, Strategy, any, prop};
use proptest::test_runner::{TestCaseError, TestRunner};

use crate::common::*;

type R<T> = ff::Result<T>;

/// Float values are kept within this magnitude (larger bounds are scaled down).
const LIMIT: f64 = 32.0;
/// Largest element count an instruction may create by broadcasting.
const MAX_ELEMS: usize = 1 << 18;
/// At most this many variable assignments per program (per call).
const MAX_ASSIGNS: usize = 3;
/// Bound of a variable's value: its initial value is in [-1, 1] and every assignment adds
/// a value in [-1, 1], at most `MAX_ASSIGNS` per call, over two calls.
const VAR_BOUND: f64 = 1.0 + 2.0 * MAX_ASSIGNS as f64;

// ---- programs ---------------------------------------------------------------------------------

/// The spec of one tensor argument.
#[derive(Clone, Debug, PartialEq)]
struct Spec {
    dt: DType,
    dims: Vec<usize>,
}

/// One instruction: raw choices that `Interp::exec` resolves.
#[derive(Clone, Copy, Debug)]
struct Ins {
    /// Which instruction ([`KINDS`] index, modulo).
    op: u8,
    /// The main operand (an earlier value, modulo the number of values).
    a: u8,
    /// A second operand or a start for scanning for a compatible one.
    b: u8,
    /// Op variants, axes, dims.
    p: [u8; 4],
    /// Use the raw choices unresolved (may be invalid: trace-time errors).
    bad: bool,
    /// Also return an intermediate (a function output inside a fusible chain).
    keep: bool,
    /// Leave the result unused when nothing reads it (dead code for pruning).
    dead: bool,
}

#[derive(Clone, Debug)]
struct Program {
    /// The tensor arguments `x`, `y`, `z` and the index argument `i`.
    args: [Spec; 4],
    /// Whether the index data may hold out-of-range indices.
    oob: bool,
    /// Whether the program has a variable (of `x`'s spec when `x` is a float).
    var: bool,
    ins: Vec<Ins>,
    seed: u64,
}

impl Program {
    /// The four arguments, with values drawn from `seed`.
    fn make_args(&self, seed: u64) -> Vec<Tensor> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        for s in &self.args[..3] {
            let n = s.dims.iter().product();
            out.push(tensor(s.dt, &s.dims, &values_for(&mut rng, s.dt, n, Domain::Any)));
        }
        let s = &self.args[3];
        let n: usize = s.dims.iter().product();
        let mut iv: Vec<f64> = (0..n).map(|_| rng.int(0, 3) as f64).collect();
        if self.oob && n > 0 && rng.int(0, 1) == 0 {
            let k = rng.int(0, n as i64 - 1) as usize;
            iv[k] = if rng.int(0, 1) == 0 { -1.0 } else { 6.0 };
        }
        out.push(tensor(s.dt, &s.dims, &iv));
        out
    }

    /// A fresh variable for one run (eager or one configuration), or none.
    fn make_var(&self) -> Option<ff::Variable> {
        let s = self.var_spec()?;
        let n = s.dims.iter().product();
        let mut rng = Rng::new(self.seed ^ 0x5157);
        let v: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
        Some(ff::Variable::new(tensor(s.dt, &s.dims, &v)).expect("variable"))
    }

    fn var_spec(&self) -> Option<Spec> {
        let x = &self.args[0];
        (self.var && matches!(x.dt, F32 | F64)).then(|| x.clone())
    }
}

// ---- strategies -------------------------------------------------------------------------------

fn ins() -> impl Strategy<Value = Ins> {
    (
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<[u8; 4]>()),
        (prop::bool::weighted(0.008), prop::bool::weighted(0.1), prop::bool::weighted(0.1)),
    )
        .prop_map(|((op, a, b, p), (bad, keep, dead))| Ins { op, a, b, p, bad, keep, dead })
}

fn dims(big: bool) -> impl Strategy<Value = Vec<usize>> {
    // Small shapes, now and then a zero dim; big ones cross the fused kernels' chunks (1024
    // elements) and, now and then, their parallel threshold (32768).
    let small = prop::collection::vec(prop::sample::select(vec![1usize, 2, 2, 3, 3, 4, 4, 5, 1, 0]), 0..=4);
    let large = prop::sample::select(vec![
        vec![37, 61],
        vec![3, 1500],
        vec![2, 33, 40],
        vec![40000],
        vec![140_000],
        vec![130, 260],
        vec![1025],
        vec![8, 129],
    ]);
    if big { large.boxed() } else { small.boxed() }
}

fn program() -> impl Strategy<Value = Program> {
    let dt = || prop::sample::select(vec![F32, F32, F32, F64, F64, F64, F32, F64, F16, BF16, I32, I64, U8, Bool]);
    let main = prop::bool::weighted(0.1).prop_flat_map(move |big| (dims(big), dims(false), dims(false)));
    (
        (main, dt(), dt(), dt(), 0u8..4, prop::bool::weighted(0.8)),
        (prop::sample::select(vec![I64, I32]), 1usize..=4, prop::bool::weighted(0.15), prop::bool::weighted(0.25)),
        (prop::collection::vec(ins(), 2..=48), any::<u64>()),
    )
        .prop_map(|(((xd, yf, zf), xt, yt, zt, bk, same), (it, n, oob, var), (ins, seed))| {
            // y's shape follows x's: the same, some dims 1, a suffix, or its own.
            let yd = match bk {
                0 => xd.clone(),
                1 => xd
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| if yf.get(i).is_none_or(|m| m % 2 == 0) { 1 } else { d })
                    .collect(),
                2 => xd[xd.len() - yf.len().min(xd.len())..].to_vec(),
                _ => yf,
            };
            // z: x's last dims, or its own.
            let zd = if zf.len() % 2 == 0 { xd[xd.len() - zf.len().min(xd.len())..].to_vec() } else { zf };
            Program {
                args: [
                    Spec { dt: xt, dims: xd },
                    Spec { dt: if same { xt } else { yt }, dims: yd },
                    Spec { dt: zt, dims: zd },
                    Spec { dt: it, dims: vec![n] },
                ],
                oob,
                var,
                ins,
                seed,
            }
        })
}

// ---- constants captured from outside the function ------------------------------------------------

/// A constant's dtype, shape, kind and seed.
type ConstKey = (DType, Vec<usize>, u8, usize);

/// Concrete tensors the function body captures (so they become constants of the graph),
/// made on first request and shared by every run of a program (eager and each
/// configuration), so that every run sees the same handles and values. A run must never
/// change them (in-place execution must not write over a constant).
struct Pool {
    seed: u64,
    map: Mutex<HashMap<ConstKey, Tensor>>,
}

/// What values a pooled constant holds.
#[derive(Clone, Copy)]
enum Flavor {
    /// In [-2, 2] (ints in -3..=3, u8 in 0..=5).
    Any = 0,
    /// Away from zero: |v| in [0.5, 2].
    Divisor = 1,
    /// The same values as `Any`, in a different tensor (two captures CSE may merge).
    Copy = 2,
    /// Indices in `0..bound`.
    Index = 3,
    /// Indices, one of them `bound` (out of range).
    BadIndex = 4,
}

impl Pool {
    fn get(&self, dt: DType, dims: &[usize], fl: Flavor, bound: usize) -> Tensor {
        let key = (dt, dims.to_vec(), fl as u8, bound);
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = m.get(&key) {
            return t.clone();
        }
        let n: usize = dims.iter().product();
        let mut h = self.seed ^ (n as u64).wrapping_mul(0x9E37) ^ ((dims.len() as u64) << 40);
        for &d in dims {
            h = h.wrapping_mul(31).wrapping_add(d as u64);
        }
        let src_flavor = if matches!(fl, Flavor::Copy) { Flavor::Any as u8 } else { fl as u8 };
        let mut rng = Rng::new(h ^ ((src_flavor as u64) << 56) ^ (dt as u64) << 48);
        let v: Vec<f64> = (0..n)
            .map(|k| match fl {
                Flavor::Index => rng.int(0, bound.max(1) as i64 - 1) as f64,
                Flavor::BadIndex if k == 0 => bound as f64,
                Flavor::BadIndex => rng.int(0, bound.max(1) as i64 - 1) as f64,
                Flavor::Divisor => {
                    let v = rng.range(0.5, 2.0);
                    if rng.int(0, 1) == 0 { v } else { -v }
                }
                _ if dt == U8 => rng.int(0, 5) as f64,
                _ if dt.is_float() => rng.range(-2.0, 2.0),
                _ => rng.int(-3, 3) as f64,
            })
            .collect();
        let t = tensor(dt, dims, &v);
        m.insert(key, t.clone());
        t
    }

    /// Every constant made so far, by key, with its bits.
    fn snapshot(&self) -> Vec<(String, Vec<u64>)> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(String, Vec<u64>)> = m.iter().map(|(k, t)| (format!("{k:?}"), bits(t))).collect();
        v.sort();
        v
    }

    /// Whether the constants of `before` still hold their bits.
    fn unchanged(&self, before: &[(String, Vec<u64>)]) -> bool {
        let now: HashMap<String, Vec<u64>> = self.snapshot().into_iter().collect();
        before.iter().all(|(k, b)| now.get(k) == Some(b))
    }
}

// ---- the interpreter ----------------------------------------------------------------------------

/// A value of the program: its tensor and what the interpreter knows about it statically.
#[derive(Clone)]
struct Val {
    t: Tensor,
    /// Floats: a bound on |element| (NaN elements aside). Others: the dtype's range.
    b: f64,
    /// Floats: how far two correct runs may differ (0: bit-identical).
    e: f64,
    /// The sign of a zero element may differ between runs.
    zs: bool,
    /// Depends on a gather or one_hot (which may fail at run time): never dead code. (The
    /// gather or one_hot itself is always returned: a value an instruction picked and then
    /// replaced counts as used without being read.)
    risky: bool,
}

impl Val {
    fn dt(&self) -> DType {
        self.t.dtype()
    }
    fn dims(&self) -> Vec<usize> {
        self.t.shape().dims().to_vec()
    }
    fn rank(&self) -> usize {
        self.t.rank()
    }
    fn float(&self) -> bool {
        self.dt().is_float()
    }
    /// Its elements may differ between runs.
    fn noisy(&self) -> bool {
        self.e > 0.0
    }
    /// Its elements, or the sign of its zeros, may differ between runs.
    fn fuzzy(&self) -> bool {
        self.e > 0.0 || self.zs
    }
}

/// Unit roundoff (doubled) of a float dtype.
fn eps(d: DType) -> f64 {
    match d {
        F32 => 2f64.powi(-23),
        F64 => 2f64.powi(-52),
        F16 => 2f64.powi(-10),
        BF16 => 2f64.powi(-7),
        _ => 0.0,
    }
}

/// The largest finite value of a float dtype.
fn dmax(d: DType) -> f64 {
    match d {
        F16 => 65504.0,
        BF16 | F32 => 3.38e38,
        F64 => f64::MAX,
        _ => f64::INFINITY,
    }
}

/// The magnitude bound of an integer or bool dtype's values.
fn range_of(d: DType) -> f64 {
    match d {
        Bool => 1.0,
        U8 => 255.0,
        I32 => 2f64.powi(31),
        I64 => 2f64.powi(63),
        _ => f64::INFINITY,
    }
}

/// `a * b` for error terms, with `0 * inf = 0`.
fn m(a: f64, b: f64) -> f64 {
    if a == 0.0 || b == 0.0 { 0.0 } else { a * b }
}

/// Whether f32/f64 (the dtypes fusion reorders).
fn fusible(d: DType) -> bool {
    matches!(d, F32 | F64)
}

thread_local! {
    /// The instruction at which the last interpretation on this thread failed.
    static FAILED_AT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// What an interpretation reports besides its outcome.
#[derive(Default)]
struct Info {
    /// One line per op: the resolved program.
    listing: Vec<String>,
    /// Per output: (b, e) of its value.
    out_meta: Vec<(f64, f64)>,
    /// Per print: e of the printed value.
    prints: Vec<f64>,
    /// Variable assignments made.
    assigns: usize,
}

struct Interp<'a> {
    pool: &'a Pool,
    var: Option<&'a ff::Variable>,
    vals: Vec<Val>,
    used: Vec<bool>,
    /// Made by a `dead` instruction (not returned when unused).
    dead: Vec<bool>,
    /// Returned even when used (`keep`).
    keep: Vec<bool>,
    info: Info,
    step: usize,
    cur_dead: bool,
    /// The program's index data may be out of range (gathers read it directly).
    oob: bool,
}

/// Runs `prog` on the four arguments (concrete eagerly, symbolic while tracing).
fn interpret(prog: &Program, pool: &Pool, var: Option<&ff::Variable>, args: [&Tensor; 4]) -> (R<Vec<Tensor>>, Info) {
    FAILED_AT.with(|f| f.set(None));
    let mut it = Interp {
        pool,
        var,
        vals: Vec::new(),
        used: Vec::new(),
        dead: Vec::new(),
        keep: Vec::new(),
        info: Info::default(),
        step: 0,
        cur_dead: false,
        oob: prog.oob,
    };
    for (k, a) in args.iter().enumerate() {
        let d = a.dtype();
        let b = if d.is_float() { 3.0 } else { range_of(d) };
        let v = Val { t: (*a).clone(), b, e: 0.0, zs: false, risky: false };
        it.info.listing.push(format!("v{k} = {} {}{:?}", ["x", "y", "z", "i"][k], d, a.shape().dims()));
        it.vals.push(v);
        it.used.push(false);
        it.dead.push(false);
        it.keep.push(false);
    }
    it.used[3] = true; // the index argument is only an index source
    // Two captured constants among the values from the start.
    let x = &prog.args[0];
    for (k, (dims, fl)) in [(x.dims.clone(), Flavor::Any), (vec![], Flavor::Divisor)].into_iter().enumerate() {
        let t = pool.get(x.dt, &dims, fl, 0);
        let b = if x.dt.is_float() { 2.0 } else { range_of(x.dt) };
        it.info.listing.push(format!("v{} = const {}{:?}", 4 + k, x.dt, dims));
        it.vals.push(Val { t, b, e: 0.0, zs: false, risky: false });
        it.used.push(true);
        it.dead.push(false);
        it.keep.push(false);
    }
    for (s, ins) in prog.ins.iter().enumerate() {
        it.step = s;
        it.cur_dead = ins.dead;
        let kind = KINDS[ins.op as usize % KINDS.len()];
        it.info.listing.push(format!("  # {s}: {kind:?}{}", if ins.bad { " (bad)" } else { "" }));
        if let Err(e) = it.exec(ins) {
            FAILED_AT.with(|f| f.set(Some(s)));
            it.info.listing.push(format!("  ^ step {s} failed: {e}"));
            return (Err(e), it.info);
        }
    }
    let mut outs = Vec::new();
    for k in 6..it.vals.len() {
        let v = &it.vals[k];
        if it.keep[k] || (!it.used[k] && (!it.dead[k] || v.risky)) {
            outs.push(k);
        }
    }
    if outs.is_empty() {
        outs.push(it.vals.len() - 1);
    }
    it.info.listing.push(format!("return {}", outs.iter().map(|k| format!("v{k}")).collect::<Vec<_>>().join(", ")));
    it.info.out_meta = outs.iter().map(|&k| (it.vals[k].b, it.vals[k].e)).collect();
    (Ok(outs.iter().map(|&k| it.vals[k].t.clone()).collect()), it.info)
}

/// The instructions, by weight.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Unary,
    Binary,
    Scalar,
    Where,
    Cast,
    Reduce,
    Arg,
    Reshape,
    Transpose,
    Broadcast,
    Concat,
    Slice,
    Gather,
    OneHot,
    MatMul,
    Softmax,
    ExpandSqueeze,
    Chain,
    Print,
    Cse,
    Var,
    Split,
    Clip,
    Control,
}

const KINDS: &[Kind] = {
    use Kind::*;
    &[
        Unary,
        Unary,
        Binary,
        Binary,
        Binary,
        Scalar,
        Scalar,
        Where,
        Cast,
        Reduce,
        Reduce,
        Arg,
        Reshape,
        Transpose,
        Broadcast,
        Concat,
        Slice,
        Gather,
        OneHot,
        MatMul,
        MatMul,
        Softmax,
        ExpandSqueeze,
        Chain,
        Chain,
        Chain,
        Chain,
        Print,
        Cse,
        Var,
        Split,
        Clip,
        Control,
    ]
};

const UNARY_NAMES: [&str; 14] = [
    "neg",
    "abs",
    "square",
    "relu",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "sigmoid",
    "tanh",
    "gelu",
    "sin",
    "cos",
    "logical_not",
];
const BINARY_NAMES: [&str; 16] = [
    "add",
    "sub",
    "mul",
    "div",
    "floor_div",
    "pow",
    "maximum",
    "minimum",
    "equal",
    "not_equal",
    "less",
    "less_equal",
    "greater",
    "greater_equal",
    "logical_and",
    "logical_or",
];

/// Unary ops (by `unary_op` number) a dtype accepts.
fn unary_ops(d: DType) -> &'static [usize] {
    match d {
        Bool => &[13],
        U8 => &[1, 2, 3],
        I32 | I64 => &[0, 1, 2, 3],
        _ => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    }
}

/// Binary ops (by `binary_op` number) a dtype accepts.
fn binary_ops(d: DType) -> &'static [usize] {
    match d {
        Bool => &[8, 9, 14, 15],
        I32 | I64 | U8 => &[0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
        _ => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
    }
}

/// The `n`-th permutation of `0..r` (Lehmer code).
fn nth_perm(r: usize, mut n: usize) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..r).collect();
    let mut out = Vec::with_capacity(r);
    for k in (1..=r).rev() {
        out.push(pool.remove(n % k));
        n /= k;
    }
    out
}

fn inverse(p: &[usize]) -> Vec<usize> {
    let mut q = vec![0; p.len()];
    for (i, &x) in p.iter().enumerate() {
        q[x] = i;
    }
    q
}

fn numel(d: &[usize]) -> usize {
    d.iter().product()
}

impl Interp<'_> {
    fn note(&mut self, s: String) {
        self.info.listing.push(format!("    {s}"));
    }

    /// Value `k` (modulo), marked used.
    fn pick(&mut self, k: u8) -> (usize, Val) {
        let i = k as usize % self.vals.len();
        self.used[i] = true;
        (i, self.vals[i].clone())
    }

    /// The first value from `start` (wrapping) that satisfies `ok`, marked used.
    fn scan(&mut self, start: u8, ok: impl Fn(&Val) -> bool) -> Option<(usize, Val)> {
        let n = self.vals.len();
        (0..n).map(|k| (start as usize + k) % n).find(|&i| ok(&self.vals[i])).map(|i| {
            self.used[i] = true;
            (i, self.vals[i].clone())
        })
    }

    /// A captured constant as a value.
    fn konst(&mut self, dt: DType, dims: &[usize], fl: Flavor, bound: usize) -> Val {
        let t = self.pool.get(dt, dims, fl, bound);
        let b = if dt.is_float() { 2.0 } else { range_of(dt) };
        self.note(format!("c = const {dt}{dims:?}"));
        Val { t, b, e: 0.0, zs: false, risky: false }
    }

    /// A result over `ins` with magnitude bound `b` and propagated difference `e`: adds the
    /// rounding a fuzzy input may flip, and saturates bounds past the dtype's range.
    fn derive(&self, t: Tensor, ins: &[&Val], b: f64, e: f64) -> Val {
        let d = t.dtype();
        let fuzzy = ins.iter().any(|v| v.fuzzy());
        let (b, e) = if d.is_float() {
            let b = if b.is_nan() || b > dmax(d) { f64::INFINITY } else { b };
            (b, e + if fuzzy { m(eps(d), b.min(dmax(d))) } else { 0.0 })
        } else {
            assert!(!ins.iter().any(|v| v.noisy()), "generator bug: an integer result of a noisy value");
            (range_of(d), 0.0)
        };
        Val { t, b, e, zs: d.is_float() && ins.iter().any(|v| v.zs), risky: ins.iter().any(|v| v.risky) }
    }

    /// Scales a float value into [-LIMIT, LIMIT] when its bound exceeds that: by an exact
    /// power of two, or with tanh when it may be infinite.
    fn tame(&mut self, v: Val) -> R<Val> {
        if !v.float() || v.b <= LIMIT {
            return Ok(v);
        }
        if v.b.is_finite() && v.b < 1e30 {
            let k = (v.b / 8.0).log2().ceil() as i32;
            let s = 2f64.powi(-k);
            self.note(format!("scale by 2^-{k}"));
            let t = (&v.t * s)?;
            Ok(Val { t, b: v.b * s, e: v.e * s, ..v })
        } else {
            self.note("tanh (may be infinite)".into());
            let t = ff::tanh(&v.t)?;
            Ok(Val { t, b: 1.0, e: v.e.min(2.0), ..v })
        }
    }

    /// Adds a value (tamed) and logs it.
    fn push(&mut self, v: Val, what: String) -> R<usize> {
        let v = self.tame(v)?;
        let k = self.vals.len();
        let zs = if v.zs { " ±0" } else { "" };
        let extra = if v.float() { format!(" b={:.3e} e={:.2e}{zs}", v.b, v.e) } else { String::new() };
        self.info.listing.push(format!("v{k} = {what} -> {}{:?}{extra}", v.dt(), v.dims()));
        self.vals.push(v);
        self.used.push(false);
        self.dead.push(self.cur_dead);
        self.keep.push(false);
        Ok(k)
    }

    // ---- op helpers with their bounds -------------------------------------------------------

    /// Unary op `i` (`unary_op` numbering).
    fn unary(&mut self, i: usize, v: &Val) -> R<Val> {
        let t = unary_op(i, &v.t)?;
        if !v.float() || !t.dtype().is_float() {
            return Ok(self.derive(t, &[v], 0.0, 0.0));
        }
        let b = v.b;
        let (bo, l) = match i {
            0 | 1 | 3 => (b, 1.0),
            2 => (b * b, 2.0 * b),
            4 => (b.exp(), b.exp()),
            5 | 7 => (f64::INFINITY, 0.0),
            6 => (b.sqrt(), 0.0),
            8 => (1.0, 0.25),
            10 => (b, 1.13),
            _ => (1.0, 1.0),
        };
        assert!(l > 0.0 || !v.noisy(), "generator bug: a singular unary op on a noisy value");
        Ok(self.derive(t, &[v], bo, m(l, v.e)))
    }

    /// log, sqrt or rsqrt of `1 + v * v` (well-conditioned for any v).
    fn safe_unary(&mut self, i: usize, v: &Val) -> R<Val> {
        self.note(format!("{}(1 + square) for a fuzzy input", UNARY_NAMES[i]));
        let u = (&ff::square(&v.t)? + 1.0f64)?;
        let t = unary_op(i, &u)?;
        let b = 1.0 + v.b * v.b;
        let (bo, l) = match i {
            5 => (b.ln(), 1.0),
            6 => (b.sqrt(), 0.5),
            _ => (1.0, 0.5),
        };
        Ok(self.derive(t, &[v], bo, m(l * 2.0 * v.b, v.e)))
    }

    /// Binary op `i` (`binary_op` numbering) on `(v, w)`.
    fn binary(&mut self, i: usize, v: &Val, w: &Val) -> R<Val> {
        let t = binary_op(i, &v.t, &w.t)?;
        if !v.float() || !t.dtype().is_float() {
            return Ok(self.derive(t, &[v, w], 0.0, 0.0));
        }
        let (b, e) = match i {
            0 | 1 => (v.b + w.b, v.e + w.e),
            2 => (v.b * w.b, m(v.e, w.b) + m(w.e, v.b) + m(v.e, w.e)),
            6 | 7 => (v.b.max(w.b), v.e.max(w.e)),
            _ => {
                assert!(!v.fuzzy() && !w.fuzzy(), "generator bug: a singular binary op on a fuzzy value");
                (f64::INFINITY, 0.0)
            }
        };
        Ok(self.derive(t, &[v, w], b, e))
    }

    /// `v / (1 + w * w)`: division by a fuzzy value, well-conditioned.
    fn safe_div(&mut self, v: &Val, w: &Val) -> R<Val> {
        self.note("div by (1 + square) for a fuzzy divisor".into());
        let d = (&ff::square(&w.t)? + 1.0f64)?;
        let t = ff::div(&v.t, &d)?;
        Ok(self.derive(t, &[v, w], v.b, v.e + m(v.b * 0.65, w.e)))
    }

    /// A value of `v`'s dtype whose shape broadcasts with `v`'s (an earlier value from
    /// `start`, else a captured constant of a suffix of `v`'s shape).
    fn partner(&mut self, v: &Val, start: u8, suffix: u8) -> Val {
        let (dt, dims) = (v.dt(), v.dims());
        let found = self.scan(start, |w| {
            w.dt() == dt && broadcast(&dims, &w.dims()).is_some_and(|s| numel(&s) <= MAX_ELEMS && s.len() <= 4)
        });
        match found {
            Some((i, w)) => {
                self.note(format!("partner v{i}"));
                w
            }
            None => {
                let k = suffix as usize % (dims.len() + 1);
                let s = dims[dims.len() - k..].to_vec();
                self.konst(dt, &s, Flavor::Any, 0)
            }
        }
    }

    /// A float version of `v`: itself, or a float value found from `start`, or `v` cast.
    fn floaty(&mut self, v: Val, start: u8) -> R<Val> {
        if v.float() {
            return Ok(v);
        }
        if let Some((i, w)) = self.scan(start, |w| w.float()) {
            self.note(format!("float operand v{i}"));
            return Ok(w);
        }
        let t = v.t.cast(F32)?;
        self.note("cast to f32".into());
        let w = self.derive(t, &[&v], range_of(v.dt()), 0.0);
        self.tame(w)
    }

    /// The last value is also a function output.
    fn keep_last(&mut self) {
        if let Some(k) = self.keep.last_mut() {
            *k = true;
        }
    }

    /// Axes for a reduction of rank `r` from raw choices.
    fn axes(r: usize, p: u8, q: u8, bad: bool) -> Option<Vec<isize>> {
        let ri = r as isize;
        if bad {
            return Some(vec![(q % 7) as isize - 3]);
        }
        match p % 6 {
            0 => None,
            1 if r >= 1 => Some(vec![-1]),
            2 if r >= 2 => Some(vec![-2, -1]),
            3 => Some((0..ri).filter(|d| q >> d & 1 == 1).collect()),
            4 if r >= 1 => Some(vec![0]),
            5 if r >= 1 => Some(vec![(q as isize % ri) - ri]),
            _ => None,
        }
    }

    // ---- instructions -------------------------------------------------------------------------

    fn exec(&mut self, ins: &Ins) -> R<()> {
        let kind = KINDS[ins.op as usize % KINDS.len()];
        let [p0, p1, p2, p3] = ins.p;
        let bad = ins.bad;
        match kind {
            Kind::Unary => {
                let (i, v) = self.pick(ins.a);
                let ops = unary_ops(v.dt());
                let op = if bad { p0 as usize % 14 } else { ops[p0 as usize % ops.len()] };
                let out = if v.float() && ((matches!(op, 5 | 6) && v.noisy()) || (op == 7 && v.fuzzy())) {
                    self.safe_unary(op, &v)?
                } else {
                    self.unary(op, &v)?
                };
                self.push(out, format!("{}(v{i})", UNARY_NAMES[op]))?;
            }
            Kind::Binary => {
                let (i, v) = self.pick(ins.a);
                let w = if bad { self.pick(ins.b).1 } else { self.partner(&v, ins.b, p2) };
                if broadcast(&v.dims(), &w.dims()).is_some_and(|s| numel(&s) > MAX_ELEMS) {
                    return Ok(()); // an outer product of two long vectors
                }
                let ops = binary_ops(v.dt());
                let mut op = if bad { p0 as usize % 16 } else { ops[p0 as usize % ops.len()] };
                let (x, y) = if p1 & 1 == 0 { (v, w) } else { (w, v) };
                let out = if !x.float() || x.dt() != y.dt() {
                    self.binary(op, &x, &y)?
                } else {
                    let (noisy, fuzzy) = (x.noisy() || y.noisy(), x.fuzzy() || y.fuzzy());
                    if (8..=13).contains(&op) && noisy {
                        op = 6;
                    }
                    if matches!(op, 4 | 5) && fuzzy {
                        op = 2;
                    }
                    if op == 3 && fuzzy { self.safe_div(&x, &y)? } else { self.binary(op, &x, &y)? }
                };
                self.push(out, format!("{}(v{i}, ..)", BINARY_NAMES[op]))?;
            }
            Kind::Scalar => self.scalar(ins)?,
            Kind::Where => {
                let (i, v) = self.pick(ins.a);
                let w = self.partner(&v, ins.b, p2);
                let shape = broadcast(&v.dims(), &w.dims()).unwrap_or_default();
                let fits =
                    |c: &Val| broadcast(&c.dims(), &shape).is_some_and(|s| numel(&s) <= MAX_ELEMS && s.len() <= 4);
                let cond = match self.scan(p0, |c| c.dt() == Bool && fits(c)) {
                    Some((j, c)) => {
                        self.note(format!("condition v{j}"));
                        c
                    }
                    None => match self.scan(p1, |c| c.dt() != Bool && !c.noisy() && fits(c)) {
                        Some((j, c)) => {
                            self.note(format!("condition greater(v{j}, 0)"));
                            let t = ff::greater(&c.t, 0i32)?;
                            self.derive(t, &[&c], 1.0, 0.0)
                        }
                        None => return Ok(()),
                    },
                };
                let (x, y) = if p3 & 1 == 0 { (&v, &w) } else { (&w, &v) };
                let t = ff::where_(&cond.t, &x.t, &y.t)?;
                let out = self.derive(t, &[&cond, x, y], x.b.max(y.b), x.e.max(y.e));
                self.push(out, format!("where_(.., v{i}, ..)"))?;
            }
            Kind::Cast => self.cast(ins)?,
            Kind::Reduce => self.reduce(ins)?,
            Kind::Arg => {
                let (_, v0) = self.pick(ins.a);
                let cand = |v: &Val| v.dt() != Bool && !v.noisy();
                let (i, v) = if cand(&v0) {
                    (ins.a as usize % self.vals.len(), v0)
                } else {
                    match self.scan(ins.b, cand) {
                        Some(x) => x,
                        None => return Ok(()),
                    }
                };
                let r = v.rank();
                let axes: Option<Vec<isize>> = if p1 % 3 == 0 || (r == 0 && !bad) {
                    None
                } else {
                    Some(vec![if bad { (p2 % 7) as isize - 3 } else { (p2 as usize % r.max(1)) as isize }])
                };
                let keep = p3 & 1 == 1;
                let reduced: usize = match &axes {
                    Some(a) => a.iter().map(|&x| v.dims().get(x.max(0) as usize).copied().unwrap_or(1)).product(),
                    None => v.t.num_elements(),
                };
                if reduced == 0 && !bad {
                    return Ok(());
                }
                let (name, t) = if p0 & 1 == 0 {
                    ("argmax", ff::argmax(&v.t, axes.as_deref(), keep)?)
                } else {
                    ("argmin", v.t.argmin(axes.as_deref(), keep)?)
                };
                let out = self.derive(t, &[&v], 0.0, 0.0);
                self.push(out, format!("{name}(v{i}, {axes:?}, keep={keep})"))?;
            }
            Kind::Reshape => {
                let (i, v) = self.pick(ins.a);
                let d = v.dims();
                let r = d.len();
                let target: Vec<isize> = if bad {
                    vec![(p1 % 5) as isize, (p2 % 5) as isize - 1]
                } else {
                    match p0 % 5 {
                        0 => vec![-1],
                        1 if r >= 1 => {
                            let mut t: Vec<isize> = d.iter().rev().map(|&x| x as isize).collect();
                            if !d.contains(&0) {
                                t[0] = -1;
                            }
                            t
                        }
                        2 => std::iter::once(1).chain(d.iter().map(|&x| x as isize)).collect(),
                        3 if r >= 2 => {
                            std::iter::once((d[0] * d[1]) as isize).chain(d[2..].iter().map(|&x| x as isize)).collect()
                        }
                        _ => {
                            // A reshape pair: flat, then back.
                            self.note("reshape pair".into());
                            let flat = v.t.reshape(&[numel(&d) as isize])?;
                            let back: Vec<isize> = d.iter().map(|&x| x as isize).collect();
                            let t = flat.reshape(&back)?;
                            let out = Val { t, ..v.clone() };
                            self.push(out, format!("reshape(reshape(v{i}, [-1]), {back:?})"))?;
                            return Ok(());
                        }
                    }
                };
                let t = v.t.reshape(&target)?;
                self.push(Val { t, ..v }, format!("reshape(v{i}, {target:?})"))?;
            }
            Kind::Transpose => {
                let (i, v) = self.pick(ins.a);
                let r = v.rank();
                if bad {
                    let perm: Vec<usize> =
                        (0..r + (p1 as usize % 2)).map(|k| (p0 as usize + k * p2 as usize) % 4).collect();
                    let t = ff::transpose(&v.t, &perm)?;
                    self.push(Val { t, ..v }, format!("transpose(v{i}, {perm:?})"))?;
                    return Ok(());
                }
                let fact: usize = (1..=r).product();
                let perm = nth_perm(r, p0 as usize % fact.max(1));
                let t = ff::transpose(&v.t, &perm)?;
                let (t, what) = match p1 % 3 {
                    1 => {
                        let q = inverse(&perm);
                        (t.transpose(&q)?, format!("transpose(transpose(v{i}, {perm:?}), {q:?})"))
                    }
                    2 => {
                        let q = nth_perm(r, p2 as usize % fact.max(1));
                        (t.transpose(&q)?, format!("transpose(transpose(v{i}, {perm:?}), {q:?})"))
                    }
                    _ => (t, format!("transpose(v{i}, {perm:?})")),
                };
                self.push(Val { t, ..v }, what)?;
            }
            Kind::Broadcast => {
                let (i, v) = self.pick(ins.a);
                let d = v.dims();
                let target: Vec<usize> = if bad {
                    vec![p1 as usize % 4, p2 as usize % 4]
                } else {
                    let t: Vec<usize> = match p0 % 3 {
                        0 => std::iter::once(p1 as usize % 3 + 1).chain(d.iter().copied()).collect(),
                        1 => d.iter().map(|&x| if x == 1 { p1 as usize % 3 + 2 } else { x }).collect(),
                        _ => [p1 as usize % 2 + 1, p2 as usize % 3 + 1].into_iter().chain(d.iter().copied()).collect(),
                    };
                    if numel(&t) > MAX_ELEMS || t.len() > 5 { d.clone() } else { t }
                };
                let t = v.t.broadcast_to(&target)?;
                self.push(Val { t, ..v }, format!("broadcast_to(v{i}, {target:?})"))?;
            }
            Kind::Concat => {
                let (i, mut v) = self.pick(ins.a);
                if v.rank() == 0 && !bad {
                    v = Val { t: ff::expand_dims(&v.t, 0)?, ..v };
                }
                let r = v.rank();
                let axis = if bad {
                    (p0 % 7) as isize - 3
                } else {
                    (p0 as usize % r) as isize - if p1 & 1 == 1 { r as isize } else { 0 }
                };
                let a = if axis < 0 { (axis + r as isize) as usize } else { axis as usize };
                let d = v.dims();
                let w = if bad {
                    self.pick(ins.b).1
                } else {
                    let found = self.scan(ins.b, |w| {
                        w.dt() == v.dt()
                            && w.rank() == r
                            && (0..r).all(|k| k == a || w.dims()[k] == d[k])
                            && numel(&d) + numel(&w.dims()) <= MAX_ELEMS
                    });
                    found.map(|x| x.1).unwrap_or_else(|| v.clone())
                };
                let mut parts = vec![v.t.clone(), w.t.clone()];
                if p2 & 1 == 1 && numel(&d) * 3 <= MAX_ELEMS {
                    parts.push(v.t.clone());
                }
                let t = ff::concat(&parts, axis)?;
                let out = self.derive(t, &[&v, &w], v.b.max(w.b), v.e.max(w.e));
                self.push(out, format!("concat(v{i}, .., axis={axis})"))?;
            }
            Kind::Slice => {
                let (i, v) = self.pick(ins.a);
                let d = v.dims();
                let (begin, size): (Vec<usize>, Vec<isize>) = if bad {
                    (d.iter().map(|&x| x + p0 as usize % 2).collect(), vec![-1; d.len()])
                } else {
                    let begin: Vec<usize> =
                        d.iter().enumerate().map(|(k, &x)| ins.p[k % 4] as usize % (x + 1)).collect();
                    let size = d
                        .iter()
                        .enumerate()
                        .map(|(k, &x)| {
                            let q = ins.p[(k + 1) % 4];
                            if q & 1 == 1 { -1 } else { (q as usize % (x - begin[k] + 1)) as isize }
                        })
                        .collect();
                    (begin, size)
                };
                let t = v.t.slice(&begin, &size)?;
                self.push(Val { t, ..v }, format!("slice(v{i}, {begin:?}, {size:?})"))?;
            }
            Kind::Gather => self.gather(ins)?,
            Kind::OneHot => {
                let idx = match self.scan(ins.a, |v| matches!(v.dt(), I32 | I64 | U8) && v.rank() <= 2) {
                    Some((_, v)) => v,
                    None => self.vals[3].clone(),
                };
                let depth = p0 as usize % 4 + 1;
                let idx = if bad {
                    idx
                } else {
                    let t = idx.t.clip(0i32, (depth - 1) as i32)?;
                    self.derive(t, &[&idx], 0.0, 0.0)
                };
                let t = ff::one_hot(&idx.t, depth)?;
                let mut out = self.derive(t, &[&idx], 1.0, 0.0);
                out.risky = true;
                self.push(out, format!("one_hot(.., depth={depth})"))?;
                self.keep_last();
            }
            Kind::MatMul => self.matmul(ins)?,
            Kind::Softmax => self.softmax(ins)?,
            Kind::ExpandSqueeze => {
                let (i, v) = self.pick(ins.a);
                let r = v.rank() as isize;
                if p0 & 1 == 0 {
                    let axis = if bad { r + 2 } else { (p1 as isize % (2 * r + 2)) - r - 1 };
                    let t = ff::expand_dims(&v.t, axis)?;
                    self.push(Val { t, ..v }, format!("expand_dims(v{i}, {axis})"))?;
                } else {
                    let ones: Vec<isize> =
                        v.dims().iter().enumerate().filter(|(_, d)| **d == 1).map(|(k, _)| k as isize).collect();
                    let axes: Option<Vec<isize>> = if bad {
                        Some(vec![(p1 % 5) as isize - 2])
                    } else if p1 & 1 == 0 {
                        None
                    } else {
                        Some(ones.iter().enumerate().filter(|(k, _)| p2 >> k & 1 == 1).map(|(_, a)| *a).collect())
                    };
                    let t = v.t.squeeze(axes.as_deref())?;
                    self.push(Val { t, ..v }, format!("squeeze(v{i}, {axes:?})"))?;
                }
            }
            Kind::Chain | Kind::Print => self.chain(ins, kind == Kind::Print)?,
            Kind::Cse => self.cse(ins)?,
            Kind::Control => self.control(ins)?,
            Kind::Var => self.var(ins)?,
            Kind::Split => {
                let (i, v) = self.pick(ins.a);
                if p2 & 1 == 1 {
                    let w = self
                        .scan(ins.b, |w| w.dt() == v.dt() && w.dims() == v.dims())
                        .map(|x| x.1)
                        .unwrap_or_else(|| v.clone());
                    let axis = (p0 as isize % (v.rank() as isize + 1)) - if bad { 5 } else { 0 };
                    let t = ff::stack(&[v.t.clone(), w.t.clone()], axis)?;
                    let out = self.derive(t, &[&v, &w], v.b.max(w.b), v.e.max(w.e));
                    self.push(out, format!("stack(v{i}, .., axis={axis})"))?;
                    return Ok(());
                }
                if v.rank() == 0 && !bad {
                    return Ok(());
                }
                let r = v.rank().max(1);
                let a = p0 as usize % r;
                let n = v.dims().get(a).copied().unwrap_or(0);
                let k = p1 as usize % 3 + 1;
                let spec = if bad {
                    ff::SplitSpec::Parts(k + 1)
                } else if n % k == 0 {
                    ff::SplitSpec::Parts(k)
                } else {
                    let first = p3 as usize % (n + 1);
                    ff::SplitSpec::Sizes(vec![first, n - first])
                };
                let parts = ff::split(&v.t, spec.clone(), a as isize)?;
                for (k, t) in parts.into_iter().enumerate() {
                    self.push(Val { t, ..v.clone() }, format!("split(v{i}, {spec:?}, axis={a})[{k}]"))?;
                }
            }
            Kind::Clip => {
                let (i, v) = self.pick(ins.a);
                if v.dt() == Bool && !bad {
                    return Ok(());
                }
                let t = if p0 & 1 == 0 {
                    if v.float() { v.t.clip(-1.0f64, 2.0f64)? } else { v.t.clip(0i32, 3i32)? }
                } else {
                    let lo = self.partner(&v, ins.b, p1);
                    let wide = broadcast(&v.dims(), &lo.dims()).unwrap_or_default();
                    let shape_of = Val { t: ff::zeros(&wide, v.dt())?, ..v.clone() };
                    let hi = self.partner(&shape_of, ins.b.wrapping_add(1), p2);
                    let t = ff::clip(&v.t, &lo.t, &hi.t)?;
                    let out = self.derive(t, &[&v, &lo, &hi], v.b.max(lo.b).max(hi.b), v.e.max(lo.e).max(hi.e));
                    self.push(out, format!("clip(v{i}, .., ..)"))?;
                    return Ok(());
                };
                let out = self.derive(t, &[&v], v.b.max(2.0), v.e);
                self.push(out, format!("clip(v{i}, const, const)"))?;
            }
        }
        Ok(())
    }

    /// Binary ops with a host scalar: the arithmetic pass's identities (`x + 0`, `x * 1`,
    /// ...), `x * 0` (which it must not rewrite), `x * x`, `neg(neg(x))`, `x - x`.
    fn scalar(&mut self, ins: &Ins) -> R<()> {
        let (i, v) = self.pick(ins.a);
        if v.dt() == Bool && !ins.bad {
            return Ok(());
        }
        let f = v.float();
        let x = &v.t;
        let form = ins.p[0] % 13;
        let (t, what, b, e, zs) = match form {
            0 => (if f { (x + 0.0f64)? } else { (x + 0i32)? }, "v + 0", v.b, v.e, f),
            1 => (if f { ff::add(0.0f64, x)? } else { ff::add(0i32, x)? }, "0 + v", v.b, v.e, f),
            2 => (if f { (x - 0.0f64)? } else { (x - 0i32)? }, "v - 0", v.b, v.e, false),
            3 => (if f { (x * 1.0f64)? } else { (x * 1i32)? }, "v * 1", v.b, v.e, false),
            4 => (if f { ff::mul(1.0f64, x)? } else { ff::mul(1i32, x)? }, "1 * v", v.b, v.e, false),
            5 if f => (ff::div(x, 1.0f64)?, "v / 1", v.b, v.e, false),
            6 => (if f { (x * 0.0f64)? } else { (x * 0i32)? }, "v * 0", 0.0, 0.0, false),
            7 => (if f { (x * 0.5f64)? } else { (x * 2i32)? }, "v * 0.5 (2)", v.b, v.e / 2.0, false),
            8 => (if f { (x + 1.5f64)? } else { (x + 2i32)? }, "v + 1.5 (2)", v.b + 1.5, v.e, false),
            9 => (
                if f { ff::maximum(x, 1.0f64)? } else { ff::maximum(x, 1i32)? },
                "maximum(v, 1)",
                v.b.max(1.0),
                v.e,
                false,
            ),
            10 => (ff::mul(x, x)?, "v * v", v.b * v.b, m(2.0 * v.b, v.e) + m(v.e, v.e), false),
            11 if v.dt() != U8 => (ff::neg(&ff::neg(x)?)?, "neg(neg(v))", v.b, v.e, false),
            _ => (ff::sub(x, x)?, "v - v", 2.0 * v.b, 2.0 * v.e, false),
        };
        let mut out = self.derive(t, &[&v], b, e);
        out.zs |= zs;
        self.push(out, format!("{what} [v = v{i}]"))?;
        Ok(())
    }

    fn cast(&mut self, ins: &Ins) -> R<()> {
        let (i, v) = self.pick(ins.a);
        let [p0, p1, ..] = ins.p;
        let src = v.dt();
        let mut to = DType::ALL[p0 as usize % DType::ALL.len()];
        if v.noisy() && !to.is_float() {
            to = if p0 & 1 == 0 { F32 } else { F64 };
        }
        // A round trip through a wider dtype (lossless), a lossy pair, a cast to itself, or
        // one cast.
        let via = match p1 % 5 {
            0 => match src {
                F32 => Some(F64),
                F16 | BF16 => Some(F32),
                I32 => Some(I64),
                U8 => Some(I32),
                Bool => Some(U8),
                _ => None,
            },
            1 => match src {
                F32 => Some(F16),
                F64 => Some(F32),
                I64 => Some(I32),
                _ => None,
            },
            _ => None,
        };
        let cast1 = |me: &mut Self, v: &Val, to: DType| -> R<Val> {
            let t = if p0 & 2 == 0 { ff::cast(&v.t, to)? } else { v.t.cast(to)? };
            let (b, e) = match (v.float(), to.is_float()) {
                (true, true) => (v.b, v.e + if v.noisy() { m(eps(to), v.b) } else { 0.0 }),
                (false, true) => (range_of(v.dt()), 0.0),
                _ => (0.0, 0.0),
            };
            Ok(me.derive(t, &[v], b, e))
        };
        let (out, what) = match (via, p1 % 5) {
            (Some(w), _) => {
                let mid = cast1(self, &v, w)?;
                (cast1(self, &mid, src)?, format!("cast(cast(v{i}, {w}), {src})"))
            }
            (None, 2) => (cast1(self, &v, src)?, format!("cast(v{i}, {src})")),
            _ => (cast1(self, &v, to)?, format!("cast(v{i}, {to})")),
        };
        self.push(out, what)?;
        Ok(())
    }

    fn reduce(&mut self, ins: &Ins) -> R<()> {
        let (i, mut v) = self.pick(ins.a);
        let [p0, p1, p2, p3] = ins.p;
        if v.dt() == Bool && !ins.bad {
            v = self.derive(v.t.cast(I32)?, &[&v], 0.0, 0.0);
        }
        let r = v.rank();
        let axes = Self::axes(r, p1, p2, ins.bad);
        let keep = p3 & 1 == 1;
        let d = v.dims();
        let n: usize = match &axes {
            None => numel(&d),
            Some(a) => a.iter().filter_map(|&x| d.get(((x + r as isize) % r.max(1) as isize) as usize)).product(),
        };
        let mut op = p0 % 5;
        let dt = v.dt();
        let (b, e, zs);
        if dt.is_float() {
            let nf = n as f64;
            let reorder = if fusible(dt) { 1.0 } else { 0.0 };
            if op == 4 && n > 32 {
                op = 0;
            }
            if op == 4 && (v.b > 1.5 || n > 4) {
                // Products of many elements: squeezed into [0.5, 1.5] first.
                self.note("sigmoid(v) + 0.5 before the product".into());
                let t = (&ff::sigmoid(&v.t)? + 0.5f64)?;
                v = self.derive(t, &[&v], 1.5, m(0.25, v.e));
            }
            if matches!(op, 0 | 1) && v.b * nf > 1e4 {
                let k = (v.b * nf / 1e4).log2().ceil() as i32;
                self.note(format!("scale by 2^-{k} before the sum"));
                let t = (&v.t * 2f64.powi(-k))?;
                v = Val { t, b: v.b * 2f64.powi(-k), e: v.e * 2f64.powi(-k), ..v };
            }
            let slack = 8.0 * eps(dt) * v.b * reorder;
            (b, e, zs) = match op {
                0 => (v.b * nf, nf * v.e + slack * nf * nf.sqrt(), v.zs || reorder > 0.0),
                1 => (v.b, v.e + slack * nf.sqrt(), v.zs || reorder > 0.0),
                2 | 3 => (if n == 0 { f64::INFINITY } else { v.b }, v.e, v.zs || reorder > 0.0),
                _ => {
                    let bo = v.b.powf(nf);
                    (bo, m(bo, nf * v.e / 0.5 + 8.0 * nf * eps(dt) * reorder), v.zs || reorder > 0.0)
                }
            };
        } else {
            (b, e, zs) = (0.0, 0.0, false);
        }
        let a = axes.as_deref();
        let (name, t) = match op {
            0 => ("reduce_sum", ff::reduce_sum(&v.t, a, keep)?),
            1 => ("reduce_mean", ff::reduce_mean(&v.t, a, keep)?),
            2 => ("reduce_max", v.t.reduce_max(a, keep)?),
            3 => ("reduce_min", ff::reduce_min(&v.t, a, keep)?),
            _ => ("reduce_prod", ff::reduce_prod(&v.t, a, keep)?),
        };
        let mut out = self.derive(t, &[&v], b, e);
        out.zs |= zs && out.float();
        self.push(out, format!("{name}(v{i}, {axes:?}, keep={keep})"))?;
        Ok(())
    }

    fn gather(&mut self, ins: &Ins) -> R<()> {
        let (i, v) = self.pick(ins.a);
        let [p0, p1, _, _] = ins.p;
        let r = v.rank();
        if r == 0 && !ins.bad {
            return Ok(());
        }
        let axis = if ins.bad { p0 as isize % 4 } else { (p0 as usize % r) as isize };
        let dim = v.dims().get(axis as usize).copied().unwrap_or(1);
        if dim == 0 && !ins.bad {
            return Ok(());
        }
        let idx = match p1 % 3 {
            0 if dim >= 4 || self.oob || ins.bad => {
                self.note("indices: the index argument".into());
                self.vals[3].clone()
            }
            1 => {
                let fl = if ins.bad { Flavor::BadIndex } else { Flavor::Index };
                let n = ins.p[3] as usize % 4 + 1;
                let dt = if p1 & 4 == 0 { I64 } else { I32 };
                self.konst(dt, &[n], fl, dim)
            }
            _ => match self.scan(ins.b, |w| {
                matches!(w.dt(), I32 | I64) && w.rank() <= 2 && w.dims().iter().product::<usize>() <= 64
            }) {
                Some((j, w)) => {
                    self.note(format!("indices: clip(v{j}, 0, {})", dim.saturating_sub(1)));
                    let t = w.t.clip(0i32, (dim.saturating_sub(1)) as i32)?;
                    self.derive(t, &[&w], 0.0, 0.0)
                }
                None => {
                    self.note(format!("indices: clip(i, 0, {})", dim.saturating_sub(1)));
                    let i = self.vals[3].clone();
                    let t = i.t.clip(0i32, (dim.saturating_sub(1)) as i32)?;
                    self.derive(t, &[&i], 0.0, 0.0)
                }
            },
        };
        if dim > 0 && (v.t.num_elements() / dim).saturating_mul(idx.t.num_elements()) > MAX_ELEMS {
            return Ok(());
        }
        let t = if p1 & 8 == 0 { ff::gather(&v.t, &idx.t, axis)? } else { v.t.gather(&idx.t, axis)? };
        let mut out = self.derive(t, &[&v, &idx], v.b, v.e);
        out.zs = v.zs;
        out.risky = true;
        self.push(out, format!("gather(v{i}, .., axis={axis})"))?;
        self.keep_last(); // live in every graph, as eager mode always runs it
        Ok(())
    }

    fn matmul(&mut self, ins: &Ins) -> R<()> {
        let (i, v) = self.pick(ins.a);
        let [p0, p1, p2, _] = ins.p;
        let mut a = if v.dt() == Bool && !ins.bad { self.derive(v.t.cast(F32)?, &[&v], 1.0, 0.0) } else { v };
        if !ins.bad {
            if a.rank() == 0 {
                a = Val { t: a.t.reshape(&[1, 1])?, ..a };
            } else if a.rank() == 1 {
                a = Val { t: ff::expand_dims(&a.t, 0)?, ..a };
            }
        }
        let ad = a.dims();
        let r = ad.len();
        let k = if r >= 2 { ad[r - 1] } else { 1 };
        let n = p1 as usize % 4 + 1;
        let dt = a.dt();
        // The second operand and the transpose flags, as written by the program.
        let (w, tb) = match p0 % 4 {
            0 if !ins.bad => (self.konst(dt, &[k, n], Flavor::Any, 0), false),
            1 => (a.clone(), true),
            2 if !ins.bad => {
                let found = self.scan(ins.b, |w| {
                    w.dt() == dt
                        && w.rank() == 2
                        && w.dims()[0] == k
                        && numel(&w.dims()) * numel(&ad) / k.max(1) <= MAX_ELEMS
                });
                match found {
                    Some((j, w)) => {
                        self.note(format!("rhs v{j}"));
                        (w, false)
                    }
                    None => (self.konst(dt, &[k, n], Flavor::Any, 0), false),
                }
            }
            3 if !ins.bad => (self.konst(dt, &[n, k], Flavor::Any, 0), true),
            _ => (self.pick(ins.b).1, p0 & 16 != 0),
        };
        // Transposes feeding the matmul (the arithmetic pass folds them into the flags).
        let swap = |t: &Tensor| -> R<Tensor> {
            let r = t.rank();
            let mut p: Vec<usize> = (0..r).collect();
            if r >= 2 {
                p.swap(r - 1, r - 2);
            }
            ff::transpose(t, &p)
        };
        let (mut at, mut ta) = (a.t.clone(), false);
        if p0 & 4 != 0 && r >= 2 {
            at = swap(&at)?;
            ta = true;
        }
        let (mut wt, mut tb) = (w.t.clone(), tb);
        if p0 & 8 != 0 && w.rank() >= 2 {
            wt = swap(&wt)?;
            tb = !tb;
        }
        // Never a huge product (`a @ a^T` of a long column): at most rows(a) * cols(w) per batch.
        let contracted = |t: &Tensor, last: bool| {
            let d = t.shape().dims();
            let k = if last { d.len().checked_sub(1) } else { d.len().checked_sub(2) };
            k.and_then(|k| d.get(k)).copied().unwrap_or(1).max(1)
        };
        let (ka, kw) = (contracted(&at, !ta), contracted(&wt, tb));
        if (at.num_elements() / ka).saturating_mul(wt.num_elements() / kw) > MAX_ELEMS {
            self.note("skipped: the product would be too large".into());
            return Ok(());
        }
        let t = if !ta && !tb && p2 & 4 == 0 { at.matmul(&wt)? } else { ff::matmul_with(&at, &wt, ta, tb)? };
        let kf = k as f64;
        let mut out = if dt.is_float() {
            let b = kf * a.b * w.b;
            let e = kf * (m(a.e, w.b) + m(w.e, a.b)) + 8.0 * eps(dt) * a.b * w.b * kf * kf.sqrt();
            let mut o = self.derive(t, &[&a, &w], b, e);
            o.zs = true;
            o
        } else {
            self.derive(t, &[&a, &w], 0.0, 0.0)
        };
        let mut what = format!("matmul(v{i}, .., transpose_a={ta}, transpose_b={tb})");
        // A bias and an activation: the epilogue fusion pattern.
        if p2 % 3 != 0 && dt.is_float() && out.rank() >= 1 {
            let nn = *out.dims().last().unwrap_or(&1);
            out = self.tame(out)?;
            let bias = self.konst(dt, &[nn], Flavor::Any, 0);
            out = self.binary(0, &out, &bias)?;
            out = self.unary(if p2 % 3 == 1 { 3 } else { 9 }, &out)?;
            what.push_str(if p2 % 3 == 1 { " + bias, relu" } else { " + bias, tanh" });
        }
        self.push(out, what)?;
        Ok(())
    }

    fn softmax(&mut self, ins: &Ins) -> R<()> {
        let bad_axis = |a: isize, r: isize| a < -r || a >= r;
        let (i, v0) = self.pick(ins.a);
        let [p0, p1, ..] = ins.p;
        let mut v = if ins.bad { v0 } else { self.floaty(v0, ins.b)? };
        if v.rank() == 0 && !ins.bad {
            v = Val { t: ff::expand_dims(&v.t, 0)?, ..v };
        }
        let r = v.rank() as isize;
        let axis = if ins.bad { r } else { (p1 as isize % r.max(1)) - if p1 & 0x40 != 0 { r } else { 0 } };
        let dt = v.dt();
        // The composites reduce over the last axis (the remapped pattern) or another one.
        let cax: isize = if p0 & 16 == 0 || bad_axis(axis, r) { -1 } else { axis };
        let last = v.dims().get(((cax + r) % r.max(1)) as usize).copied().unwrap_or(1) as f64;
        match p0 % 4 {
            0 => {
                let t = if p0 & 4 == 0 { ff::softmax(&v.t, axis)? } else { v.t.softmax(axis)? };
                let out = self.derive(t, &[&v], 1.0, 2.0 * v.e);
                self.push(out, format!("softmax(v{i}, {axis})"))?;
            }
            1 => {
                let n = v.dims().get(((axis + r) % r.max(1)) as usize).copied().unwrap_or(1) as f64;
                let t = if p0 & 4 == 0 { ff::log_softmax(&v.t, axis)? } else { v.t.log_softmax(axis)? };
                let out = self.derive(t, &[&v], 2.0 * v.b + n.max(1.0).ln() + 1.0, 2.0 * v.e);
                self.push(out, format!("log_softmax(v{i}, {axis})"))?;
            }
            3 => {
                // The composite the fusion pass remaps to the log-softmax primitive: `x - max`
                // shared, or written twice (one node once CSE merged them).
                let mx = v.t.reduce_max(Some(&[cax]), true)?;
                let t = (&v.t - &mx)?;
                let t2 = if p0 & 8 == 0 { t.clone() } else { (&v.t - &mx)? };
                let l = t2.exp()?.reduce_sum(Some(&[cax]), true)?.log()?;
                let out_t = (&t - &l)?;
                let b = 2.0 * v.b + last.max(1.0).ln() + 1.0;
                let slack = if fusible(dt) { 16.0 * eps(dt) * (b + last + 1.0) } else { 0.0 };
                let mut out = self.derive(out_t, &[&v], b, 2.0 * v.e + slack);
                out.zs |= fusible(dt);
                self.push(out, format!("(v{i} - max) - log(sum(exp(v{i} - max))) (composite log-softmax)"))?;
            }
            _ => {
                // The composite the fusion pass remaps to the softmax primitive.
                let mx = v.t.reduce_max(Some(&[cax]), true)?;
                let ex = (&v.t - &mx)?.exp()?;
                let s = ex.reduce_sum(Some(&[cax]), true)?;
                let t = (&ex / &s)?;
                let slack = if fusible(dt) { 16.0 * eps(dt) * (last + 1.0) } else { 0.0 };
                let mut out = self.derive(t, &[&v], 1.0, 2.0 * v.e + slack);
                out.zs |= fusible(dt);
                self.push(out, format!("exp(v{i} - max) / sum(exp(v{i} - max)) (composite softmax)"))?;
            }
        }
        Ok(())
    }

    /// An elementwise chain of 2-8 ops with broadcasts (fusion's loop kernels); `print`
    /// prints its middle value.
    fn chain(&mut self, ins: &Ins, print: bool) -> R<()> {
        let (i, v) = self.pick(ins.a);
        let mut cur = if ins.bad { v } else { self.floaty(v, ins.b)? };
        let len = ins.p[0] as usize % 7 + 2;
        let mut rng = Rng::new(u64::from_le_bytes([ins.p[0], ins.p[1], ins.p[2], ins.p[3], ins.a, ins.b, 7, 7]));
        let mut text = format!("chain(v{i}):");
        for s in 0..len {
            if s == len / 2 {
                if print {
                    ff::print(&cur.t)?;
                    self.info.prints.push(cur.e);
                    text.push_str(" print;");
                }
                if ins.keep && s > 0 {
                    self.push(cur.clone(), format!("{text} (kept: also an output)"))?;
                    self.keep_last();
                    text = format!("chain(v{}) cont.:", self.vals.len() - 1);
                }
            }
            let c = rng.int(0, 9);
            cur = if c <= 3 {
                let mut ops = vec![0usize, 1, 3, 8, 9, 10, 11, 12];
                if cur.b <= 4.0 {
                    ops.push(4);
                }
                if cur.b <= 6.0 {
                    ops.push(2);
                }
                let op = ops[rng.int(0, ops.len() as i64 - 1) as usize];
                text.push_str(&format!(" {};", UNARY_NAMES[op]));
                self.unary(op, &cur)?
            } else if c <= 8 {
                let dims = cur.dims();
                let dt = cur.dt();
                let o = match rng.int(0, 3) {
                    0 => {
                        let s = [0.5, 2.0, -1.0, 3.0][rng.int(0, 3) as usize];
                        text.push_str(&format!(" (scalar {s})"));
                        let t = ff::full::<f64>(&[], s)?.cast(dt)?;
                        Val { t, b: 3.0, e: 0.0, zs: false, risky: false }
                    }
                    1 => {
                        let k = rng.int(1, dims.len().max(1) as i64) as usize;
                        let s = dims[dims.len() - k.min(dims.len())..].to_vec();
                        text.push_str(&format!(" (bias {s:?})"));
                        self.konst(dt, &s, Flavor::Any, 0)
                    }
                    2 => {
                        let found = self.scan(rng.int(0, 255) as u8, |w| {
                            w.dt() == dt
                                && broadcast(&dims, &w.dims()).is_some_and(|s| numel(&s) <= MAX_ELEMS && s.len() <= 4)
                        });
                        match found {
                            Some((j, w)) => {
                                text.push_str(&format!(" (v{j})"));
                                w
                            }
                            None => self.konst(dt, &[], Flavor::Any, 0),
                        }
                    }
                    _ => {
                        let s: Vec<usize> = dims.iter().enumerate().map(|(k, &d)| if k == 0 { 1 } else { d }).collect();
                        text.push_str(&format!(" (const {s:?})"));
                        self.konst(dt, &s, Flavor::Any, 0)
                    }
                };
                let op = [0usize, 1, 2, 6, 7, 3][rng.int(0, 5) as usize];
                let swap = rng.int(0, 1) == 1;
                let (x, y) = if swap { (o, cur) } else { (cur, o) };
                text.push_str(&format!(" {}{};", BINARY_NAMES[op], if swap { "(o, c)" } else { "" }));
                if op == 3 { self.safe_div(&x, &y)? } else { self.binary(op, &x, &y)? }
            } else if rng.int(0, 1) == 0 {
                text.push_str(" x*x;");
                let t = ff::mul(&cur.t, &cur.t)?;
                self.derive(t, &[&cur], cur.b * cur.b, m(2.0 * cur.b, cur.e) + m(cur.e, cur.e))
            } else {
                text.push_str(" neg(neg);");
                let t = cur.t.neg()?.neg()?;
                Val { t, ..cur }
            };
            if cur.b > LIMIT {
                cur = self.tame(cur)?;
                text.push_str(" (scaled);");
            }
        }
        self.push(cur, text)?;
        Ok(())
    }

    /// Common subexpressions: the same op twice on the same inputs (merged), ops that differ
    /// only in attributes (not merged), equal constants captured twice (merged).
    fn cse(&mut self, ins: &Ins) -> R<()> {
        let (i, v) = self.pick(ins.a);
        let [p0, p1, ..] = ins.p;
        let (t, what, b, e) = match p0 % 4 {
            0 if v.float() => {
                let u = [9usize, 8, 11, 3][p1 as usize % 4];
                let a = unary_op(u, &v.t)?;
                let c = unary_op(u, &v.t)?;
                let bu = if u == 3 { v.b } else { 1.0 };
                (ff::add(&a, &c)?, format!("{0}(v{i}) + {0}(v{i})", UNARY_NAMES[u]), 2.0 * bu, 2.0 * v.e)
            }
            1 if v.dt() != Bool => {
                let w = self.partner(&v, ins.b, p1);
                let a = ff::mul(&v.t, &w.t)?;
                let c = ff::mul(&v.t, &w.t)?;
                let b = v.b * w.b;
                let e = m(v.e, w.b) + m(w.e, v.b) + m(v.e, w.e);
                let t = ff::add(&a, &c)?;
                let out = self.derive(t, &[&v, &w], 2.0 * b, 2.0 * e);
                self.push(out, format!("v{i} * w + v{i} * w"))?;
                return Ok(());
            }
            2 if v.float() && v.rank() >= 1 => {
                let r = v.rank() as isize;
                let a = ff::softmax(&v.t, 0)?;
                let c = ff::softmax(&v.t, if r > 1 { -1 } else { 0 })?;
                (ff::sub(&a, &c)?, format!("softmax(v{i}, 0) - softmax(v{i}, -1)"), 2.0, 4.0 * v.e)
            }
            _ if v.dt() != Bool => {
                let d = v.dims();
                let k = p1 as usize % (d.len() + 1);
                let s = d[d.len() - k..].to_vec();
                let c1 = self.konst(v.dt(), &s, Flavor::Any, 0);
                let c2 = self.konst(v.dt(), &s, Flavor::Copy, 0);
                let t = ((&v.t + &c1.t)? - &c2.t)?;
                let out = self.derive(t, &[&v, &c1, &c2], v.b + 4.0, v.e);
                self.push(out, format!("v{i} + c - copy of c"))?;
                return Ok(());
            }
            _ => return Ok(()),
        };
        let out = self.derive(t, &[&v], b, e);
        self.push(out, what)?;
        Ok(())
    }

    /// `ff::cond` (both branches traced, one run; a print in one branch) and
    /// `ff::while_loop` (a counted loop over an elementwise body): the optimizer works on
    /// their branch and loop graphs too.
    fn control(&mut self, ins: &Ins) -> R<()> {
        let (i, v0) = self.pick(ins.a);
        let v = self.floaty(v0, ins.b)?;
        let [p0, p1, p2, p3] = ins.p;
        if p0 & 1 == 0 {
            let w = self.partner(&v, ins.b, p2);
            // The predicate: the max of an exact value (order-free, so the same in every run).
            let found = self.scan(p1, |u| u.dt() != Bool && !u.noisy() && u.t.num_elements() > 0);
            let Some((j, u)) = found else { return Ok(()) };
            let mx = u.t.reduce_max(None, false)?;
            let pred = ff::greater(&mx, if u.dt() == U8 { 2i32 } else { 0i32 })?;
            let print_then = p3 & 1 == 1;
            let (vt, wt) = (v.t.clone(), w.t.clone());
            let t = ff::cond(
                &pred,
                || {
                    let a = ((&vt * &wt)? + 1.0f64)?;
                    if print_then {
                        ff::print(&a)?;
                    }
                    a.tanh()
                },
                || (&vt - &wt)?.sin(),
            )?;
            let e_then = m(v.e, w.b) + m(w.e, v.b) + m(v.e, w.e);
            if print_then {
                self.info.prints.push(e_then);
            }
            let out = self.derive(t, &[&v, &w, &u], 1.0, e_then.max(v.e + w.e));
            let p = if print_then { ", print" } else { "" };
            self.push(out, format!("cond(max(v{j}) > 0, tanh(v{i} * w + 1){p}, sin(v{i} - w))"))?;
        } else {
            let n = p1 as i32 % 3 + 1;
            let k = p2 as usize % (v.rank() + 1);
            let d = v.dims();
            let c = self.konst(v.dt(), &d[d.len() - k..], Flavor::Any, 0);
            let (ct, half) = (c.t.clone(), 0.5f64);
            let vars = ff::while_loop(
                |vars| ff::less(&vars[0], n),
                |vars| Ok(vec![(&vars[0] + 1i32)?, ((&vars[1] * half)? + &ct)?.tanh()?]),
                vec![Tensor::scalar(0i32), v.t.clone()],
            )?;
            let t = vars.into_iter().nth(1).expect("two loop variables");
            let out = self.derive(t, &[&v, &c], 1.0, v.e);
            self.push(out, format!("while i < {n}: v = tanh(v * 0.5 + c) [v = v{i}]"))?;
        }
        Ok(())
    }

    /// Variable reads and assignments (side effects, never merged or pruned).
    fn var(&mut self, ins: &Ins) -> R<()> {
        let Some(var) = self.var else { return Ok(()) };
        let (dt, shape) = (var.dtype(), var.shape().dims().to_vec());
        let read = |me: &mut Self| -> Val {
            me.note("read".into());
            Val { t: var.value(), b: VAR_BOUND, e: 0.0, zs: false, risky: false }
        };
        let form = if self.info.assigns >= MAX_ASSIGNS { 0 } else { ins.p[0] % 4 };
        if form == 0 {
            let r = read(self);
            self.push(r, "read var".into())?;
            return Ok(());
        }
        let found = self
            .scan(ins.b, |w| w.dt() == dt && !w.fuzzy() && broadcast(&w.dims(), &shape).is_some_and(|s| s == shape));
        let Some((j, w)) = found else { return Ok(()) };
        let mut x = ff::tanh(&w.t)?;
        if w.dims() != shape {
            x = x.broadcast_to(&shape)?;
        }
        if form == 3 {
            // The assigned value stays a value of the program: later steps may read it (and
            // want to write over it in place, which must not change the variable).
            var.assign(&x)?;
            self.info.assigns += 1;
            let out = Val { t: x, b: 1.0, e: 0.0, zs: false, risky: w.risky };
            self.push(out, format!("assign(var, tanh(v{j}))"))?;
        } else if form == 1 {
            var.assign_add(&x)?;
            self.info.assigns += 1;
            let r = read(self);
            self.push(r, format!("assign_add(var, tanh(v{j})); read var"))?;
        } else {
            let before = read(self);
            var.assign_add(&x)?;
            self.info.assigns += 1;
            let after = read(self);
            let t = ff::sub(&after.t, &before.t)?;
            let out = self.derive(t, &[&before, &after], 2.0 * VAR_BOUND, 0.0);
            self.push(out, format!("read var; assign_add(var, tanh(v{j})); read var - first read"))?;
        }
        Ok(())
    }
}

// ---- running and comparing -----------------------------------------------------------------

/// How one run (one call) ended.
struct Outcome {
    res: R<Vec<Tensor>>,
    /// The instruction at which the interpretation failed, when it did (while tracing, for
    /// a traced run).
    failed_at: Option<usize>,
    prints: String,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

/// Tolerance of a float element with difference bound `e`.
fn close_enough(dt: DType, got: f64, want: f64, e: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    let (rel, abs) = match dt {
        F64 => (1e-9, 1e-9),
        F32 => (1e-4, 1e-4),
        F16 => (4e-3, 4e-3),
        BF16 => (3e-2, 3e-2),
        _ => (0.0, 0.0),
    };
    (got - want).abs() <= 4.0 * e + rel * want.abs() + abs
}

/// Whether `got` matches `want` (tensor `e` bounds the difference of float elements).
fn same_values(want: &Tensor, got: &Tensor, e: f64) -> Result<(), String> {
    if want.dtype() != got.dtype() || want.shape().dims() != got.shape().dims() {
        return Err(format!(
            "got {}{:?}, want {}{:?}",
            got.dtype(),
            got.shape().dims(),
            want.dtype(),
            want.shape().dims()
        ));
    }
    let dt = want.dtype();
    if !dt.is_float() {
        return same_tensor(want, got);
    }
    let (w, g) = (values(want), values(got));
    for ((idx, &a), &b) in w.indexed_iter().zip(g.iter()) {
        if !close_enough(dt, b, a, e) {
            return Err(format!("at {:?}: got {b:e}, want {a:e} (difference bound e={e:.2e})", idx));
        }
    }
    Ok(())
}

/// Whether two captured print outputs agree: the same text, numbers within tolerance.
fn same_prints(want: &str, got: &str, es: &[f64]) -> Result<(), String> {
    let count = |s: &str| s.matches("Tensor(").count();
    if count(want) != count(got) {
        return Err(format!(
            "{} prints, eager printed {}:\n--- got ---\n{got}\n--- eager ---\n{want}",
            count(got),
            count(want)
        ));
    }
    let e = es.iter().copied().fold(0.0, f64::max);
    let toks = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || "[](),=".contains(c))
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    };
    let (tw, tg) = (toks(want), toks(got));
    let ok = tw.len() == tg.len()
        && tw.iter().zip(&tg).all(|(a, b)| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => close_enough(F32, y, x, e) || (x - y).abs() <= 1e-3 * (1.0 + x.abs()),
            _ => a == b,
        });
    if ok { Ok(()) } else { Err(format!("prints differ:\n--- got ---\n{got}\n--- eager ---\n{want}")) }
}

/// Checks a traced outcome against eager's on the same arguments.
fn compare(want: &Outcome, got: &Outcome, meta: &[(f64, f64)], prints_e: &[f64]) -> Result<(), String> {
    match (&want.res, &got.res) {
        (Ok(w), Ok(g)) => {
            if w.len() != g.len() {
                return Err(format!("{} outputs, eager gave {}", g.len(), w.len()));
            }
            for (k, (a, b)) in w.iter().zip(g).enumerate() {
                let e = meta.get(k).map_or(0.0, |m| m.1);
                same_values(a, b, e).map_err(|m| format!("output {k}: {m}"))?;
            }
            same_prints(&want.prints, &got.prints, prints_e)
        }
        (Err(we), Err(ge)) => {
            let same = std::mem::discriminant(we) == std::mem::discriminant(ge);
            match (want.failed_at, got.failed_at) {
                // Both failed at the same instruction (eagerly, and while tracing).
                (Some(es), Some(ts)) if es == ts && same => Ok(()),
                // Eager mode met a data error first; the trace went on to a later error.
                (Some(es), Some(ts)) if es < ts && matches!(we, Error::IndexOutOfBounds { .. }) => Ok(()),
                // The graph raised a data error when it ran, as eager mode did.
                (Some(_), None) if same && matches!(we, Error::IndexOutOfBounds { .. }) => Ok(()),
                _ => Err(format!(
                    "error mismatch: got {ge} (while tracing at {:?}), eager error {we} (at instruction {:?})",
                    got.failed_at, want.failed_at
                )),
            }
        }
        (Ok(_), Err(e)) => Err(format!("failed, eager succeeded: {e} (while tracing at {:?})", got.failed_at)),
        (Err(e), Ok(_)) => Err(format!("succeeded, eager failed: {e} (at instruction {:?})", want.failed_at)),
    }
}

/// The configurations every program runs in: no passes, each pass alone, all passes.
fn configs() -> Vec<(String, OptimizerOptions)> {
    let mut v = vec![("no passes".to_string(), OptimizerOptions::none())];
    for p in PassKind::ALL {
        v.push((format!("only {}", p.name()), OptimizerOptions::only(p)));
    }
    v.push(("all passes".to_string(), OptimizerOptions::all()));
    v
}

/// Counts over a test run, for the coverage report.
#[derive(Default)]
struct Stats {
    ok: AtomicUsize,
    trace_err: AtomicUsize,
    run_err: AtomicUsize,
    nodes: AtomicUsize,
    prints: AtomicUsize,
    /// Programs in which each pass (alone) changed the graph.
    changed: [AtomicUsize; 6],
    /// Fused nodes in all-passes graphs.
    fused: AtomicUsize,
    /// Cond and while nodes in traced graphs.
    control: AtomicUsize,
}

fn refs(a: &[Tensor]) -> [&Tensor; 4] {
    [&a[0], &a[1], &a[2], &a[3]]
}

fn bits_of(ts: &[Tensor]) -> Vec<(DType, Vec<usize>, Vec<u64>)> {
    ts.iter().map(|t| (t.dtype(), t.shape().dims().to_vec(), bits(t))).collect()
}

/// Runs one program in every configuration.
fn check(prog: &Program, stats: &Stats) -> Result<(), TestCaseError> {
    let prog = Arc::new(prog.clone());
    let pool = Arc::new(Pool { seed: prog.seed, map: Mutex::new(HashMap::new()) });
    let args = [prog.make_args(prog.seed), prog.make_args(prog.seed.wrapping_add(1))];
    let arg_bits = [bits_of(&args[0]), bits_of(&args[1])];

    // Eagerly, twice (the variable carries over), with the resolved program as listing.
    let var = prog.make_var();
    let mut eager = Vec::new();
    let mut infos = Vec::new();
    for (c, a) in args.iter().enumerate() {
        let (r, prints) =
            ff::capture_prints(|| catch_unwind(AssertUnwindSafe(|| interpret(&prog, &pool, var.as_ref(), refs(a)))));
        let (res, info) =
            r.map_err(|p| TestCaseError::fail(format!("eager call {c} panicked: {}", panic_message(&*p))))?;
        let failed_at = FAILED_AT.with(|f| f.get());
        eager.push(Outcome { res, failed_at, prints });
        infos.push(info);
    }
    let listing = infos.iter().map(|i| i.listing.join("\n")).max_by_key(|l| l.len()).unwrap_or_default();
    let fail = |cfg: &str, why: String| TestCaseError::fail(format!("[{cfg}] {why}\nprogram:\n{listing}"));
    let eager_var = var.as_ref().map(|v| v.value());
    let pool_bits = pool.snapshot();

    for (name, opts) in configs() {
        let var = prog.make_var();
        let fo = FunctionOptions { optimizer: Some(opts.clone()), ..Default::default() };
        let (p2, pool2, var2) = (prog.clone(), pool.clone(), var.clone());
        let f = ff::function_with(fo, move |x: &Tensor, y: &Tensor, z: &Tensor, i: &Tensor| -> R<Vec<Tensor>> {
            interpret(&p2, &pool2, var2.as_ref(), [x, y, z, i]).0
        });
        let mut traced_ok = false;
        for (c, a) in args.iter().enumerate() {
            FAILED_AT.with(|f| f.set(None));
            let (res, prints) =
                ff::capture_prints(|| catch_unwind(AssertUnwindSafe(|| f.call((&a[0], &a[1], &a[2], &a[3])))));
            let res = res.map_err(|p| fail(&name, format!("call {c} panicked: {}", panic_message(&*p))))?;
            let failed_at = FAILED_AT.with(|f| f.get());
            let got = Outcome { res, failed_at, prints };
            compare(&eager[c], &got, &infos[c].out_meta, &infos[c].prints)
                .map_err(|e| fail(&name, format!("call {c}: {e}")))?;
            if c == 0 {
                traced_ok =
                    failed_at.is_none() && (got.res.is_ok() || matches!(got.res, Err(Error::IndexOutOfBounds { .. })));
                let kind = match (&got.res, failed_at) {
                    (Ok(_), _) => &stats.ok,
                    (Err(_), Some(_)) => &stats.trace_err,
                    (Err(_), None) => &stats.run_err,
                };
                if name == "all passes" {
                    kind.fetch_add(1, Ordering::Relaxed);
                }
            }
            if bits_of(&args[c]) != arg_bits[c] {
                return Err(fail(&name, format!("call {c} changed its arguments")));
            }
            if !pool.unchanged(&pool_bits) {
                return Err(fail(&name, format!("call {c} changed a captured constant")));
            }
            if failed_at.is_some() {
                break; // tracing failed: no graph to call again
            }
        }
        if f.tracing_count() != 1 {
            return Err(fail(&name, format!("traced {} times", f.tracing_count())));
        }
        if !traced_ok {
            continue;
        }
        let a = &args[0];
        let cf = f.get_concrete_function((&a[0], &a[1], &a[2], &a[3])).map_err(|e| fail(&name, format!("{e}")))?;
        let (g, o) = (cf.graph(), cf.optimized_graph());
        g.verify().map_err(|e| fail(&name, format!("traced graph: {e}")))?;
        o.verify().map_err(|e| fail(&name, format!("optimized graph: {e}\n{o}")))?;
        for op in ["print", "assign_add"] {
            let (n0, n1) = (g.op_counts().get(op).copied(), o.op_counts().get(op).copied());
            if n0 != n1 {
                return Err(fail(&name, format!("{op} nodes: {n0:?} traced, {n1:?} optimized\n{g}\n{o}")));
            }
        }
        let report = cf.pass_report();
        for p in &report.passes {
            if !opts.enabled(p.kind) {
                return Err(fail(&name, format!("report of pass {} that is off", p.pass)));
            }
        }
        for k in PassKind::ALL {
            if opts.enabled(k) && !report.passes.iter().any(|p| p.kind == k) {
                return Err(fail(&name, format!("no report for {}", k.name())));
            }
        }
        for w in report.passes.windows(2) {
            if w[0].nodes_after != w[1].nodes_before {
                return Err(fail(&name, format!("node counts do not chain:\n{report}")));
            }
        }
        if report.passes.first().is_some_and(|p| p.nodes_before != g.node_count())
            || report.passes.last().is_some_and(|p| p.nodes_after != o.node_count())
        {
            return Err(fail(&name, format!("node counts of the report are not the graphs':\n{report}")));
        }
        if opts == OptimizerOptions::none() && g.to_string() != o.to_string() {
            return Err(fail(&name, format!("no passes, yet the graph changed:\n{g}\n{o}")));
        }
        if (cf.planned_peak_bytes().is_some()) != opts.memory {
            return Err(fail(&name, format!("planned peak {:?} with memory={}", cf.planned_peak_bytes(), opts.memory)));
        }
        if let Some(k) = PassKind::ALL.iter().position(|k| opts == OptimizerOptions::only(*k))
            && report.passes.iter().any(|p| !p.changes.is_empty())
        {
            stats.changed[k].fetch_add(1, Ordering::Relaxed);
        }
        if name == "all passes" {
            stats.nodes.fetch_add(g.node_count(), Ordering::Relaxed);
            let counts = g.op_counts();
            let count = |op: &str| counts.get(op).copied().unwrap_or(0);
            stats.prints.fetch_add(count("print"), Ordering::Relaxed);
            stats.control.fetch_add(count("cond") + count("while"), Ordering::Relaxed);
            let fused: usize = o.op_counts().iter().filter(|(k, _)| k.starts_with("fused_")).map(|(_, n)| n).sum();
            stats.fused.fetch_add(fused, Ordering::Relaxed);
        }
        // The variable ends as eager's did (when both calls succeeded).
        if let (Some(ev), Some(v)) = (&eager_var, &var)
            && eager.iter().all(|o| o.res.is_ok())
        {
            same_values(ev, &v.value(), 0.0).map_err(|e| fail(&name, format!("variable: {e}")))?;
        }
    }
    Ok(())
}

/// Runs `cases` programs (`FF_DIFF_CASES` overrides the count; `PROPTEST_RNG_SEED` fixes
/// the random sequence).
fn run_programs(cases: u32) {
    let cases = std::env::var("FF_DIFF_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(cases);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let stats = Stats::default();
    let t = std::time::Instant::now();
    let result = runner.run(&program(), |p| check(&p, &stats));
    if let Err(e) = result {
        panic!("{e}");
    }
    let n = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    let (ok, te, re) = (n(&stats.ok), n(&stats.trace_err), n(&stats.run_err));
    let total = ok + te + re;
    let changed: Vec<String> =
        PassKind::ALL.iter().zip(&stats.changed).map(|(k, c)| format!("{} {}", k.name(), n(c))).collect();
    eprintln!(
        "optimizer_diff: {total} programs in {:.1?}: {ok} ok, {te} failed while tracing, {re} failed while running; \
         {} traced nodes, {} prints, {} cond/while nodes, {} fused nodes; programs each pass (alone) changed: {}",
        t.elapsed(),
        n(&stats.nodes),
        n(&stats.prints),
        n(&stats.control),
        n(&stats.fused),
        changed.join(", ")
    );
    assert!(total >= cases as usize, "{total}");
    assert!(ok * 10 >= total * 7, "too few successful programs: {ok} of {total}");
    assert!(te * 100 >= total, "too few trace-time errors: {te} of {total}");
    assert!(re * 200 >= total, "too few run-time errors: {re} of {total}");
    assert!(n(&stats.prints) * 10 >= total, "too few prints");
    assert!(n(&stats.control) * 10 >= total, "too few cond and while nodes");
    for (k, c) in PassKind::ALL.iter().zip(&stats.changed) {
        assert!(n(c) * 10 >= total, "{} changed too few programs: {}", k.name(), n(c));
    }
}

/// 1,000 random programs, each eagerly and in eight optimizer configurations, twice.
#[test]
fn optimized_programs_equal_eager() {
    run_programs(1000);
}

/// The same over 10,000 programs (`cargo test --test it optimizer_diff -- --ignored`).
#[test]
#[ignore = "long: 10,000 programs"]
fn optimized_programs_equal_eager_10k() {
    run_programs(10_000);
}
