//! The op table: every op over scalar, 1-D, 2-D, 3-D, 4-D, broadcast and empty shapes and
//! every dtype it accepts, against references computed with ndarray and plain loops in f64
//! (or exact, wrapping integer arithmetic). Every case goes through `common::run` once per
//! entry of `common::MODES`, so a new execution mode runs the whole table: eagerly, and traced
//! inside `ff::function` (where it must also match eager mode bit for bit, errors included).
//! A case's op closure is `move` and captures only owned or `'static` values, as the body of
//! a traced function must.

use ferroflow as ff;
use ff::{DType, Tensor};
use ndarray::{Array3, ArrayD, Axis, IxDyn, Slice, Zip};

use crate::common::*;

type R = ff::Result<Tensor>;

const UNARY_SHAPES: &[&[usize]] = &[&[], &[1], &[7], &[3, 4], &[2, 3, 4], &[2, 1, 3, 2], &[0], &[2, 0, 3]];

const BINARY_SHAPES: &[(&[usize], &[usize])] = &[
    (&[], &[]),
    (&[5], &[5]),
    (&[3, 4], &[3, 4]),
    (&[2, 3, 4], &[2, 3, 4]),
    (&[3, 1], &[1, 4]),
    (&[2, 3, 4], &[4]),
    (&[4], &[2, 3, 4]),
    (&[], &[2, 3]),
    (&[2, 3], &[]),
    (&[2, 1, 4], &[3, 1]),
    (&[4, 1, 2, 1], &[3, 1, 5]),
    (&[1, 1], &[1]),
    (&[0, 3], &[1, 3]),
    (&[1], &[0]),
    (&[2, 0], &[2, 1]),
];

/// The reference of a binary op over broadcast inputs.
fn zip2(a: &ArrayD<f64>, b: &ArrayD<f64>, f: impl Fn(f64, f64) -> f64) -> ArrayD<f64> {
    let s = IxDyn(&broadcast(a.shape(), b.shape()).expect("case shapes broadcast"));
    let (a, b) = (a.broadcast(s.clone()).unwrap(), b.broadcast(s).unwrap());
    Zip::from(&a).and(&b).map_collect(|&x, &y| f(x, y))
}

fn int2(dt: DType, a: f64, b: f64, f: fn(i64, i64) -> i64) -> f64 {
    wrap(dt, f(a as i64, b as i64)) as f64
}

// ---- elementwise, one input -----------------------------------------------------------------

struct Unary {
    name: &'static str,
    dtypes: &'static [DType],
    dom: Domain,
    op: fn(&Tensor) -> R,
    reference: fn(f64, DType) -> f64,
    /// Floor on the absolute tolerance (the op's documented accuracy).
    abs: f64,
}

fn unary_table() -> Vec<Unary> {
    fn u(
        name: &'static str,
        dtypes: &'static [DType],
        dom: Domain,
        op: fn(&Tensor) -> R,
        reference: fn(f64, DType) -> f64,
    ) -> Unary {
        Unary { name, dtypes, dom, op, reference, abs: 0.0 }
    }
    vec![
        u("neg", SIGNED, Domain::Any, |x| ff::neg(x), |v, _| -v),
        u("neg (operator)", SIGNED, Domain::Any, |x| -x, |v, _| -v),
        u("neg (method)", SIGNED, Domain::Any, |x| x.neg(), |v, _| -v),
        u("abs", NUM, Domain::Any, |x| ff::abs(x), |v, _| v.abs()),
        u(
            "square",
            NUM,
            Domain::Any,
            |x| ff::square(x),
            |v, dt| if dt.is_int() { int2(dt, v, v, i64::wrapping_mul) } else { v * v },
        ),
        u("relu", NUM, Domain::Any, |x| x.relu(), |v, _| if v < 0.0 { 0.0 } else { v }),
        u("exp", FLOATS, Domain::Any, |x| ff::exp(x), |v, _| v.exp()),
        u("log", FLOATS, Domain::Pos, |x| ff::log(x), |v, _| v.ln()),
        u("sqrt", FLOATS, Domain::Pos, |x| ff::sqrt(x), |v, _| v.sqrt()),
        u("rsqrt", FLOATS, Domain::Pos, |x| ff::rsqrt(x), |v, _| 1.0 / v.sqrt()),
        u("sigmoid", FLOATS, Domain::Any, |x| ff::sigmoid(x), |v, _| 1.0 / (1.0 + (-v).exp())),
        u("tanh", FLOATS, Domain::Any, |x| ff::tanh(x), |v, _| v.tanh()),
        // The erf behind gelu is documented to ~1.2e-7 (also for f64).
        Unary { abs: 3e-7, ..u("gelu", FLOATS, Domain::Any, |x| ff::gelu(x), gelu_ref) },
        u("sin", FLOATS, Domain::Any, |x| ff::sin(x), |v, _| v.sin()),
        u("cos", FLOATS, Domain::Any, |x| x.cos(), |v, _| v.cos()),
        u("logical_not", BOOL, Domain::Any, |x| ff::logical_not(x), |v, _| (v == 0.0) as u8 as f64),
    ]
}

fn gelu_ref(v: f64, _: DType) -> f64 {
    0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2))
}

#[test]
fn unary_elementwise() {
    for case in unary_table() {
        for &dt in case.dtypes {
            for &shape in UNARY_SHAPES {
                let ctx = format!("{} {dt} {shape:?}", case.name);
                let _case = name_case(&ctx);
                let mut rng = Rng::for_case(&ctx);
                let (x, xv) = input(&mut rng, dt, shape, case.dom);
                let want = xv.mapv(|v| (case.reference)(v, dt));
                for &mode in MODES {
                    let got = ok(&ctx, run(mode, std::slice::from_ref(&x), move |xs| (case.op)(&xs[0])));
                    assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, Tol::of(dt).at_least(case.abs, 0.0));
                }
            }
        }
    }
}

#[test]
fn unary_special_values() {
    let specials =
        [0.0, -0.0, 1.0, -1.0, 0.5, 1e-3, 20.0, -20.0, 100.0, -100.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
    for case in unary_table().into_iter().filter(|c| c.dtypes == FLOATS || c.dtypes == SIGNED || c.dtypes == NUM) {
        for &dt in FLOATS {
            let ctx = format!("{} {dt} special values", case.name);
            let _case = name_case(&ctx);
            let x = tensor(dt, &[specials.len()], &specials);
            let want = exact(dt, &[specials.len()], &specials).mapv(|v| (case.reference)(v, dt));
            for &mode in MODES {
                let got = ok(&ctx, run(mode, std::slice::from_ref(&x), move |xs| (case.op)(&xs[0])));
                assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, Tol::of(dt).at_least(case.abs, 0.0));
            }
        }
    }
}

#[test]
fn unary_rejects_other_dtypes() {
    for case in unary_table() {
        for &dt in ALL.iter().filter(|d| !case.dtypes.contains(d)) {
            let x = tensor(dt, &[2], &[1.0, 0.0]);
            for &mode in MODES {
                let e = run(mode, std::slice::from_ref(&x), move |t| (case.op)(&t[0]))
                    .expect_err(&format!("{} should reject {dt} ({mode:?})", case.name));
                assert!(matches!(e, ff::Error::DTypeMismatch { .. }), "{} {dt} {mode:?}: {e}", case.name);
                let op = case.name.split(' ').next().unwrap();
                assert!(e.to_string().starts_with(op), "{e}");
                assert!(e.location().is_some_and(|l| l.file().ends_with("op_table.rs")), "{mode:?}: {e}");
            }
        }
    }
}

// ---- elementwise, two inputs ----------------------------------------------------------------

#[derive(Clone, Copy)]
enum Out {
    Same,
    Bool,
    /// Integers divide as floats: i32 and i64 to f64, u8 to f32.
    TrueDiv,
}

impl Out {
    fn dtype(self, dt: DType) -> DType {
        match (self, dt) {
            (Out::Same, d) => d,
            (Out::Bool, _) => Bool,
            (Out::TrueDiv, U8) => F32,
            (Out::TrueDiv, I32 | I64) => F64,
            (Out::TrueDiv, d) => d,
        }
    }
}

struct Binary {
    name: &'static str,
    dtypes: &'static [DType],
    lhs: Domain,
    rhs: Domain,
    out: Out,
    op: fn(&Tensor, &Tensor) -> R,
    reference: fn(f64, f64, DType) -> f64,
}

fn add_ref(a: f64, b: f64, dt: DType) -> f64 {
    if dt.is_int() { int2(dt, a, b, i64::wrapping_add) } else { a + b }
}
fn sub_ref(a: f64, b: f64, dt: DType) -> f64 {
    if dt.is_int() { int2(dt, a, b, i64::wrapping_sub) } else { a - b }
}
fn mul_ref(a: f64, b: f64, dt: DType) -> f64 {
    if dt.is_int() { int2(dt, a, b, i64::wrapping_mul) } else { a * b }
}
fn div_ref(a: f64, b: f64, _: DType) -> f64 {
    a / b
}
fn floor_div_ref(a: f64, b: f64, dt: DType) -> f64 {
    match dt {
        // Integer floor division; `x // 0` is documented as 0.
        _ if dt.is_int() => {
            if b == 0.0 {
                0.0
            } else {
                (a / b).floor()
            }
        }
        F64 => (a / b).floor(),
        // f32, f16 and bf16 divide in f32, then floor.
        _ => ((a as f32) / (b as f32)).floor() as f64,
    }
}
fn pow_ref(a: f64, b: f64, dt: DType) -> f64 {
    if dt.is_int() { wrap(dt, (a as i64).wrapping_pow(b as u32)) as f64 } else { a.powf(b) }
}

fn binary_table() -> Vec<Binary> {
    use Domain::*;
    fn b(
        name: &'static str,
        dtypes: &'static [DType],
        lhs: Domain,
        rhs: Domain,
        out: Out,
        op: fn(&Tensor, &Tensor) -> R,
        reference: fn(f64, f64, DType) -> f64,
    ) -> Binary {
        Binary { name, dtypes, lhs, rhs, out, op, reference }
    }
    vec![
        b("add", NUM, Any, Any, Out::Same, |x, y| ff::add(x, y), add_ref),
        b("add (operator)", NUM, Any, Any, Out::Same, |x, y| x + y, add_ref),
        b("add (method)", NUM, Any, Any, Out::Same, |x, y| x.add(y), add_ref),
        b("sub", NUM, Any, Any, Out::Same, |x, y| ff::sub(x, y), sub_ref),
        b("sub (operator)", NUM, Any, Any, Out::Same, |x, y| x - y, sub_ref),
        b("mul", NUM, Any, Any, Out::Same, |x, y| ff::mul(x, y), mul_ref),
        b("mul (operator)", NUM, Any, Any, Out::Same, |x, y| x.clone() * y.clone(), mul_ref),
        b("div", NUM, Any, NonZero, Out::TrueDiv, |x, y| ff::div(x, y), div_ref),
        b("div (operator)", NUM, Any, NonZero, Out::TrueDiv, |x, y| x / y, div_ref),
        b("div (method)", NUM, Any, NonZero, Out::TrueDiv, |x, y| x.div(y), div_ref),
        b("floor_div", NUM, Any, Any, Out::Same, |x, y| ff::floor_div(x, y), floor_div_ref),
        b("pow", NUM, PowBase, PowExp, Out::Same, |x, y| ff::pow(x, y), pow_ref),
        b("maximum", NUM, Any, Any, Out::Same, |x, y| ff::maximum(x, y), |a, b, _| a.max(b)),
        b("minimum", NUM, Any, Any, Out::Same, |x, y| x.minimum(y), |a, b, _| a.min(b)),
        b("equal", ALL, Small, Small, Out::Bool, |x, y| ff::equal(x, y), |a, b, _| (a == b) as u8 as f64),
        b("not_equal", ALL, Small, Small, Out::Bool, |x, y| x.not_equal(y), |a, b, _| (a != b) as u8 as f64),
        b("less", NUM, Small, Small, Out::Bool, |x, y| ff::less(x, y), |a, b, _| (a < b) as u8 as f64),
        b("less_equal", NUM, Small, Small, Out::Bool, |x, y| ff::less_equal(x, y), |a, b, _| (a <= b) as u8 as f64),
        b("greater", NUM, Small, Small, Out::Bool, |x, y| x.greater(y), |a, b, _| (a > b) as u8 as f64),
        b(
            "greater_equal",
            NUM,
            Small,
            Small,
            Out::Bool,
            |x, y| ff::greater_equal(x, y),
            |a, b, _| (a >= b) as u8 as f64,
        ),
        b(
            "logical_and",
            BOOL,
            Any,
            Any,
            Out::Bool,
            |x, y| ff::logical_and(x, y),
            |a, b, _| (a != 0.0 && b != 0.0) as u8 as f64,
        ),
        b(
            "logical_or",
            BOOL,
            Any,
            Any,
            Out::Bool,
            |x, y| x.logical_or(y),
            |a, b, _| (a != 0.0 || b != 0.0) as u8 as f64,
        ),
    ]
}

#[test]
fn binary_elementwise() {
    for case in binary_table() {
        for &dt in case.dtypes {
            for &(sa, sb) in BINARY_SHAPES {
                let ctx = format!("{} {dt} {sa:?} {sb:?}", case.name);
                let _case = name_case(&ctx);
                let mut rng = Rng::for_case(&ctx);
                let (a, av) = input(&mut rng, dt, sa, case.lhs);
                let (b, bv) = input(&mut rng, dt, sb, case.rhs);
                let want = zip2(&av, &bv, |x, y| (case.reference)(x, y, dt));
                let out = case.out.dtype(dt);
                for &mode in MODES {
                    let got = ok(&ctx, run(mode, &[a.clone(), b.clone()], move |xs| (case.op)(&xs[0], &xs[1])));
                    assert_close(&format!("{ctx} {mode:?}"), &got, out, &want, Tol::of(out));
                }
            }
        }
    }
}

#[test]
fn binary_rejects_other_dtypes() {
    for case in binary_table() {
        // `div` accepts integers by dividing them as floats; bool is still rejected.
        for &dt in ALL.iter().filter(|d| !case.dtypes.contains(d)) {
            let x = tensor(dt, &[2], &[1.0, 0.0]);
            for &mode in MODES {
                let e = run(mode, &[x.clone(), x.clone()], move |t| (case.op)(&t[0], &t[1]))
                    .expect_err(&format!("{} should reject {dt} ({mode:?})", case.name));
                assert!(matches!(e, ff::Error::DTypeMismatch { .. }), "{} {dt} {mode:?}: {e}", case.name);
                assert!(e.location().is_some_and(|l| l.file().ends_with("op_table.rs")), "{mode:?}: {e}");
            }
        }
    }
}

#[test]
fn where_selects_with_broadcasting() {
    let shapes: &[(&[usize], &[usize], &[usize])] = &[
        (&[], &[], &[]),
        (&[4], &[4], &[4]),
        (&[2, 3], &[2, 3], &[]),
        (&[3, 1], &[1, 4], &[3, 4]),
        (&[2, 1, 3], &[3], &[2, 2, 1]),
        (&[], &[2, 2], &[2, 1]),
        (&[0, 2], &[2], &[1]),
        (&[1], &[0], &[0]),
    ];
    for &dt in ALL {
        for &(sc, sx, sy) in shapes {
            let ctx = format!("where_ {dt} {sc:?} {sx:?} {sy:?}");
            let _case = name_case(&ctx);
            let mut rng = Rng::for_case(&ctx);
            let (c, cv) = input(&mut rng, Bool, sc, Domain::Any);
            let (x, xv) = input(&mut rng, dt, sx, Domain::Any);
            let (y, yv) = input(&mut rng, dt, sy, Domain::Any);
            let s = broadcast(&broadcast(sc, sx).unwrap(), sy).unwrap();
            let s = IxDyn(&s);
            let mut want = ArrayD::zeros(s.clone());
            Zip::from(&mut want)
                .and(&cv.broadcast(s.clone()).unwrap())
                .and(&xv.broadcast(s.clone()).unwrap())
                .and(&yv.broadcast(s.clone()).unwrap())
                .for_each(|w, &c, &x, &y| *w = if c != 0.0 { x } else { y });
            for &mode in MODES {
                let got =
                    ok(&ctx, run(mode, &[c.clone(), x.clone(), y.clone()], move |t| ff::where_(&t[0], &t[1], &t[2])));
                assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, Tol::of(dt));
                let got = ok(&ctx, run(mode, &[c.clone(), x.clone(), y.clone()], move |t| t[1].where_(&t[0], &t[2])));
                assert_close(&format!("{ctx} (method) {mode:?}"), &got, dt, &want, Tol::of(dt));
            }
        }
    }
}

#[test]
fn clip_bounds_values() {
    let shapes: &[(&[usize], &[usize], &[usize])] =
        &[(&[], &[], &[]), (&[7], &[], &[]), (&[2, 3], &[3], &[2, 1]), (&[2, 3, 4], &[4], &[]), (&[0, 3], &[], &[3])];
    for &dt in NUM {
        for &(sx, sl, sh) in shapes {
            let ctx = format!("clip {dt} {sx:?} {sl:?} {sh:?}");
            let _case = name_case(&ctx);
            let mut rng = Rng::for_case(&ctx);
            let (x, xv) = input(&mut rng, dt, sx, Domain::Any);
            let (lo, lv) = input(&mut rng, dt, sl, Domain::Small);
            let hv0 = values_for(&mut rng, dt, sh.iter().product(), Domain::Pos);
            let (hi, hv) = (tensor(dt, sh, &hv0), exact(dt, sh, &hv0));
            let want = zip2(&zip2(&xv, &lv, f64::max), &hv, f64::min);
            for &mode in MODES {
                let got =
                    ok(&ctx, run(mode, &[x.clone(), lo.clone(), hi.clone()], move |t| ff::clip(&t[0], &t[1], &t[2])));
                assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, Tol::of(dt));
            }
        }
        // Host-scalar bounds take the tensor's dtype.
        let ctx = format!("clip {dt} scalar bounds");
        let _case = name_case(&ctx);
        let mut rng = Rng::for_case(&ctx);
        let (x, xv) = input(&mut rng, dt, &[3, 4], Domain::Any);
        let want = xv.mapv(|v| v.clamp(1.0, 3.0));
        for &mode in MODES {
            let got = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| t[0].clip(1i32, 3i32)));
            assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, Tol::of(dt));
        }
    }
}

// ---- reductions -----------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Red {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
}

type RedFn = fn(&Tensor, Option<&[isize]>, bool) -> R;

fn reductions() -> Vec<(&'static str, Red, RedFn)> {
    vec![
        ("reduce_sum", Red::Sum, |x, a, k| ff::reduce_sum(x, a, k)),
        ("reduce_sum (method)", Red::Sum, |x, a, k| x.reduce_sum(a, k)),
        ("reduce_mean", Red::Mean, |x, a, k| ff::reduce_mean(x, a, k)),
        ("reduce_max", Red::Max, |x, a, k| ff::reduce_max(x, a, k)),
        ("reduce_min", Red::Min, |x, a, k| x.reduce_min(a, k)),
        ("reduce_prod", Red::Prod, |x, a, k| ff::reduce_prod(x, a, k)),
    ]
}

const REDUCE_CASES: &[(&[usize], Option<&[isize]>)] = &[
    (&[], None),
    (&[], Some(&[])),
    (&[7], None),
    (&[7], Some(&[0])),
    (&[7], Some(&[-1])),
    (&[3, 4], None),
    (&[3, 4], Some(&[0])),
    (&[3, 4], Some(&[1])),
    (&[3, 4], Some(&[-2])),
    (&[3, 4], Some(&[1, 0])),
    (&[2, 3, 4], None),
    (&[2, 3, 4], Some(&[])),
    (&[2, 3, 4], Some(&[1])),
    (&[2, 3, 4], Some(&[0, 1])),
    (&[2, 3, 4], Some(&[1, 2])),
    (&[2, 3, 4], Some(&[0, 2])),
    (&[2, 3, 4], Some(&[-1, -3])),
    (&[2, 3, 1, 4], Some(&[0, 2])),
    (&[2, 3, 1, 4], Some(&[1, 3])),
    (&[2, 3, 1, 4], Some(&[0, 3])),
    (&[2, 3, 1, 4], Some(&[-4, -2, -1])),
    (&[0], None),
    (&[0], Some(&[0])),
    (&[2, 0, 3], None),
    (&[2, 0, 3], Some(&[0])),
    (&[2, 0, 3], Some(&[1])),
    (&[2, 0, 3], Some(&[0, 2])),
    (&[0, 2, 3], Some(&[0, 2])),
    (&[2, 3, 0], Some(&[0, 2])),
];

fn norm_axes(axes: Option<&[isize]>, rank: usize) -> Vec<usize> {
    match axes {
        None => (0..rank).collect(),
        Some(a) => a.iter().map(|&x| if x < 0 { (x + rank as isize) as usize } else { x as usize }).collect(),
    }
}

fn reduced_dims(shape: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    (0..shape.len())
        .filter_map(|d| {
            if !axes.contains(&d) {
                Some(shape[d])
            } else if keepdims {
                Some(1)
            } else {
                None
            }
        })
        .collect()
}

/// Reference reduction by a loop over every input element.
fn ref_reduce(x: &ArrayD<f64>, axes: &[usize], keepdims: bool, op: Red, dt: DType) -> ArrayD<f64> {
    let shape = x.shape();
    let kept: Vec<usize> = (0..shape.len()).map(|d| if axes.contains(&d) { 1 } else { shape[d] }).collect();
    let n_out: usize = kept.iter().product();
    let count: usize = axes.iter().map(|&a| shape[a]).product();
    let int = dt.is_int();
    let init_f = match op {
        Red::Sum | Red::Mean => 0.0,
        Red::Prod => 1.0,
        Red::Max => lowest(dt),
        Red::Min => highest(dt),
    };
    let mut acc_f = vec![init_f; n_out];
    let mut acc_i = vec![if op == Red::Prod { 1i64 } else { 0i64 }; n_out];
    for (idx, &v) in x.indexed_iter() {
        let mut o = 0;
        for d in 0..shape.len() {
            o = o * kept[d] + if axes.contains(&d) { 0 } else { idx[d] };
        }
        match op {
            Red::Sum | Red::Mean if int => acc_i[o] = acc_i[o].wrapping_add(v as i64),
            Red::Prod if int => acc_i[o] = acc_i[o].wrapping_mul(v as i64),
            Red::Sum | Red::Mean => acc_f[o] += v,
            Red::Prod => acc_f[o] *= v,
            Red::Max => acc_f[o] = if v.is_nan() || v > acc_f[o] { v } else { acc_f[o] },
            Red::Min => acc_f[o] = if v.is_nan() || v < acc_f[o] { v } else { acc_f[o] },
        }
    }
    let out: Vec<f64> = (0..n_out)
        .map(|o| match op {
            Red::Sum | Red::Prod if int => wrap(dt, acc_i[o]) as f64,
            // Integer means truncate the (wrapped) sum; an empty mean is 0.
            Red::Mean if int => {
                if count == 0 {
                    0.0
                } else {
                    (wrap(dt, acc_i[o]) / count as i64) as f64
                }
            }
            Red::Mean => acc_f[o] / count as f64,
            _ => acc_f[o],
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&reduced_dims(shape, axes, keepdims)), out).unwrap()
}

#[test]
fn reductions_over_axes() {
    for (name, op, f) in reductions() {
        for &dt in NUM {
            for &(shape, axes) in REDUCE_CASES {
                for keepdims in [false, true] {
                    let ctx = format!("{name} {dt} {shape:?} axes={axes:?} keepdims={keepdims}");
                    let _case = name_case(&ctx);
                    let mut rng = Rng::for_case(&ctx);
                    let dom = if op == Red::Prod { Domain::Prod } else { Domain::Any };
                    let (x, xv) = input(&mut rng, dt, shape, dom);
                    let ax = norm_axes(axes, shape.len());
                    let want = ref_reduce(&xv, &ax, keepdims, op, dt);
                    let count = ax.iter().map(|&a| shape[a]).product::<usize>() as f64;
                    let tol = Tol::of(dt).acc(dt, count + 1.0);
                    for &mode in MODES {
                        let got = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| f(&t[0], axes, keepdims)));
                        assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, tol);
                    }
                }
            }
        }
    }
}

fn ref_arg(x: &ArrayD<f64>, axis: Option<usize>, keepdims: bool, max: bool) -> ArrayD<f64> {
    let better = |v: f64, best: f64| if max { v > best } else { v < best };
    match axis {
        None => {
            let mut bi = 0;
            for (i, &v) in x.iter().enumerate() {
                if better(v, x.iter().nth(bi).copied().unwrap()) {
                    bi = i;
                }
            }
            let dims = if keepdims { vec![1; x.ndim()] } else { vec![] };
            ArrayD::from_elem(IxDyn(&dims), bi as f64)
        }
        Some(a) => {
            let out = x.map_axis(Axis(a), |lane| {
                let mut bi = 0;
                for (i, &v) in lane.iter().enumerate() {
                    if better(v, lane[bi]) {
                        bi = i;
                    }
                }
                bi as f64
            });
            if keepdims { out.insert_axis(Axis(a)) } else { out }
        }
    }
}

#[test]
fn arg_reductions() {
    let cases: &[(&[usize], Option<&[isize]>)] = &[
        (&[], None),
        (&[7], None),
        (&[7], Some(&[0])),
        (&[7], Some(&[-1])),
        (&[3, 4], None),
        (&[3, 4], Some(&[0])),
        (&[3, 4], Some(&[1])),
        (&[3, 4], Some(&[-1])),
        (&[2, 3, 4], None),
        (&[2, 3, 4], Some(&[0])),
        (&[2, 3, 4], Some(&[1])),
        (&[2, 3, 4], Some(&[-1])),
        (&[3, 1], Some(&[1])),
        (&[2, 0, 3], Some(&[0])),
    ];
    let ops: [(&str, bool, RedFn); 3] = [
        ("argmax", true, |x, a, k| ff::argmax(x, a, k)),
        ("argmin", false, |x, a, k| ff::argmin(x, a, k)),
        ("argmax (method)", true, |x, a, k| x.argmax(a, k)),
    ];
    for (name, max, f) in ops {
        for &dt in NUM {
            for &(shape, axes) in cases {
                for keepdims in [false, true] {
                    let ctx = format!("{name} {dt} {shape:?} axes={axes:?} keepdims={keepdims}");
                    let _case = name_case(&ctx);
                    let mut rng = Rng::for_case(&ctx);
                    // Small integers: ties are common, and the first index must win.
                    let (x, xv) = input(&mut rng, dt, shape, Domain::Small);
                    let axis = axes.map(|a| norm_axes(Some(a), shape.len())[0]);
                    let want = ref_arg(&xv, axis, keepdims, max);
                    for &mode in MODES {
                        let got = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| f(&t[0], axes, keepdims)));
                        assert_close(&format!("{ctx} {mode:?}"), &got, I64, &want, Tol::of(I64));
                    }
                }
            }
        }
    }
}

#[test]
fn nan_propagates() {
    let v = [1.0, f64::NAN, 3.0, -2.0, 5.0, 0.0];
    for &dt in FLOATS {
        let ctx = format!("nan {dt}");
        let _case = name_case(&ctx);
        let x = tensor(dt, &[2, 3], &v);
        let y = tensor(dt, &[2, 3], &[0.0; 6]);
        let nan_at = |t: &Tensor| values(t).iter().map(|v| v.is_nan()).collect::<Vec<_>>();
        for &mode in MODES {
            let r = ok(&ctx, run(mode, &[x.clone(), y.clone()], move |t| ff::maximum(&t[0], &t[1])));
            assert_eq!(nan_at(&r), [false, true, false, false, false, false], "{ctx} maximum");
            let r = ok(&ctx, run(mode, &[x.clone(), y.clone()], move |t| ff::minimum(&t[1], &t[0])));
            assert_eq!(nan_at(&r), [false, true, false, false, false, false], "{ctx} minimum");
            let r = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| ff::relu(&t[0])));
            assert_eq!(nan_at(&r), [false, true, false, false, false, false], "{ctx} relu");
            let r = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| ff::reduce_max(&t[0], Some(&[1]), false)));
            assert_eq!(nan_at(&r), [true, false], "{ctx} reduce_max");
            let r = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| ff::reduce_min(&t[0], Some(&[0]), false)));
            assert_eq!(nan_at(&r), [false, true, false], "{ctx} reduce_min");
            // NumPy: NaN counts as the extreme for both argmax and argmin.
            let r = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| ff::argmax(&t[0], None, false)));
            assert_eq!(values(&r).iter().copied().collect::<Vec<_>>(), [1.0], "{ctx} argmax");
            let r = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| ff::argmin(&t[0], Some(&[0]), false)));
            assert_eq!(values(&r).iter().copied().collect::<Vec<_>>(), [1.0, 0.0, 1.0], "{ctx} argmin");
        }
    }
}

// ---- shape ops ------------------------------------------------------------------------------

/// Runs a shape op over every dtype with values drawn for `shape`, comparing with `reference`.
fn each_dtype(
    ctx: &str,
    shape: &[usize],
    op: impl Fn(&[Tensor]) -> R + Clone + Send + Sync + 'static,
    reference: impl Fn(&ArrayD<f64>) -> ArrayD<f64>,
) {
    for &dt in ALL {
        let ctx = format!("{ctx} {dt}");
        let _case = name_case(&ctx);
        let mut rng = Rng::for_case(&ctx);
        let (x, xv) = input(&mut rng, dt, shape, Domain::Any);
        let want = reference(&xv);
        for &mode in MODES {
            let got = ok(&ctx, run(mode, std::slice::from_ref(&x), op.clone()));
            assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, Tol::of(dt));
        }
    }
}

fn row_major(x: &ArrayD<f64>, dims: &[usize]) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(dims), x.iter().copied().collect()).unwrap()
}

#[test]
fn reshape_infers_minus_one() {
    let cases: &[(&[usize], &[isize], &[usize])] = &[
        (&[2, 3, 4], &[6, -1], &[6, 4]),
        (&[2, 3, 4], &[-1], &[24]),
        (&[2, 3, 4], &[4, 3, 2], &[4, 3, 2]),
        (&[2, 3, 4], &[2, -1, 2], &[2, 6, 2]),
        (&[2, 3, 4], &[1, 24, 1], &[1, 24, 1]),
        (&[], &[1, 1], &[1, 1]),
        (&[], &[-1], &[1]),
        (&[1, 1], &[], &[]),
        (&[6], &[3, 2], &[3, 2]),
        (&[0, 3], &[3, 0], &[3, 0]),
        (&[0, 3], &[-1], &[0]),
        (&[0, 3], &[-1, 3], &[0, 3]),
    ];
    for &(from, to, dims) in cases {
        let ctx = format!("reshape {from:?} -> {to:?}");
        let _case = name_case(&ctx);
        each_dtype(&ctx, from, move |t| ff::reshape(&t[0], to), move |x| row_major(x, dims));
        each_dtype(&format!("{ctx} (method)"), from, move |t| t[0].reshape(to), move |x| row_major(x, dims));
    }
}

#[test]
fn transpose_permutes() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[], &[]),
        (&[5], &[0]),
        (&[3, 4], &[1, 0]),
        (&[3, 4], &[0, 1]),
        (&[2, 3, 4], &[2, 0, 1]),
        (&[2, 3, 4], &[1, 2, 0]),
        (&[2, 3, 4], &[0, 2, 1]),
        (&[2, 3, 1, 4], &[3, 1, 0, 2]),
        (&[2, 0, 3], &[2, 1, 0]),
    ];
    for &(shape, perm) in cases {
        let ctx = format!("transpose {shape:?} {perm:?}");
        let _case = name_case(&ctx);
        let reference = |x: &ArrayD<f64>| x.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned();
        each_dtype(&ctx, shape, move |t| ff::transpose(&t[0], perm), reference);
        each_dtype(&format!("{ctx} (method)"), shape, move |t| t[0].transpose(perm), reference);
    }
}

#[test]
fn expand_dims_every_position() {
    for &shape in &[&[][..], &[4], &[2, 3], &[2, 0, 3]] {
        let r = shape.len() as isize;
        for axis in -r - 1..=r {
            let ctx = format!("expand_dims {shape:?} {axis}");
            let _case = name_case(&ctx);
            let a = if axis < 0 { axis + r + 1 } else { axis } as usize;
            let reference = |x: &ArrayD<f64>| x.clone().insert_axis(Axis(a));
            each_dtype(&ctx, shape, move |t| ff::expand_dims(&t[0], axis), reference);
            each_dtype(&format!("{ctx} (method)"), shape, move |t| t[0].expand_dims(axis), reference);
        }
    }
}

#[test]
fn squeeze_size_one_axes() {
    // (input shape, axes, output shape)
    type Squeeze<'a> = (&'a [usize], Option<&'a [isize]>, &'a [usize]);
    let cases: &[Squeeze] = &[
        (&[1, 3, 1, 2], None, &[3, 2]),
        (&[1, 3, 1, 2], Some(&[0]), &[3, 1, 2]),
        (&[1, 3, 1, 2], Some(&[-2]), &[1, 3, 2]),
        (&[1, 3, 1, 2], Some(&[0, 2]), &[3, 2]),
        (&[1], None, &[]),
        (&[1, 1], Some(&[1]), &[1]),
        (&[], None, &[]),
        (&[3, 4], None, &[3, 4]),
        (&[1, 0, 1], None, &[0]),
    ];
    for &(shape, axes, dims) in cases {
        let ctx = format!("squeeze {shape:?} {axes:?}");
        let _case = name_case(&ctx);
        each_dtype(&ctx, shape, move |t| ff::squeeze(&t[0], axes), move |x| row_major(x, dims));
        each_dtype(&format!("{ctx} (method)"), shape, move |t| t[0].squeeze(axes), move |x| row_major(x, dims));
    }
}

#[test]
fn broadcast_to_repeats() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[], &[]),
        (&[], &[2, 3]),
        (&[3], &[2, 3]),
        (&[3, 1], &[3, 4]),
        (&[2, 1, 3], &[4, 2, 5, 3]),
        (&[1, 1], &[2, 2]),
        (&[2, 3], &[2, 3]),
        (&[1, 3], &[0, 3]),
        (&[1], &[0]),
    ];
    for &(from, to) in cases {
        let ctx = format!("broadcast_to {from:?} -> {to:?}");
        let _case = name_case(&ctx);
        let reference = |x: &ArrayD<f64>| x.broadcast(IxDyn(to)).unwrap().to_owned();
        each_dtype(&ctx, from, move |t| ff::broadcast_to(&t[0], to), reference);
        each_dtype(&format!("{ctx} (method)"), from, move |t| t[0].broadcast_to(to), reference);
    }
}

/// Several inputs of one dtype: the tensors and their values.
fn inputs(ctx: &str, dt: DType, shapes: &[&[usize]]) -> (Vec<Tensor>, Vec<ArrayD<f64>>) {
    let mut rng = Rng::for_case(ctx);
    shapes.iter().map(|s| input(&mut rng, dt, s, Domain::Any)).unzip()
}

#[test]
fn concat_joins() {
    let cases: &[(&[&[usize]], isize)] = &[
        (&[&[3], &[2]], 0),
        (&[&[3]], 0),
        (&[&[2, 3], &[1, 3], &[4, 3]], 0),
        (&[&[2, 3], &[2, 1]], 1),
        (&[&[2, 3], &[2, 1]], -1),
        (&[&[2, 3, 4], &[2, 2, 4]], 1),
        (&[&[2, 3, 4], &[2, 3, 1], &[2, 3, 2]], -1),
        (&[&[2, 3, 4], &[1, 3, 4]], -3),
        (&[&[2, 0], &[2, 3]], 1),
        (&[&[0, 3], &[0, 3]], 0),
        (&[&[0, 3], &[0, 3]], 1),
    ];
    for &(shapes, axis) in cases {
        for &dt in ALL {
            let ctx = format!("concat {shapes:?} axis={axis} {dt}");
            let _case = name_case(&ctx);
            let (ts, vs) = inputs(&ctx, dt, shapes);
            let a = if axis < 0 { axis + shapes[0].len() as isize } else { axis } as usize;
            let views: Vec<_> = vs.iter().map(|v| v.view()).collect();
            let want = ndarray::concatenate(Axis(a), &views).unwrap();
            for &mode in MODES {
                let got = ok(&ctx, run(mode, &ts, move |t| ff::concat(t, axis)));
                assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, Tol::of(dt));
            }
        }
    }
}

#[test]
fn stack_adds_an_axis() {
    let cases: &[(&[usize], usize)] = &[(&[], 3), (&[4], 2), (&[2, 3], 3), (&[2, 0], 2), (&[2, 3], 1)];
    for &(shape, n) in cases {
        let r = shape.len() as isize;
        for axis in -r - 1..=r {
            for &dt in ALL {
                let ctx = format!("stack {n}x{shape:?} axis={axis} {dt}");
                let _case = name_case(&ctx);
                let shapes = vec![shape; n];
                let (ts, vs) = inputs(&ctx, dt, &shapes);
                let a = if axis < 0 { axis + r + 1 } else { axis } as usize;
                let views: Vec<_> = vs.iter().map(|v| v.view()).collect();
                let want = ndarray::stack(Axis(a), &views).unwrap();
                for &mode in MODES {
                    let got = ok(&ctx, run(mode, &ts, move |t| ff::stack(t, axis)));
                    assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, Tol::of(dt));
                }
            }
        }
    }
}

#[test]
fn split_into_parts_and_sizes() {
    let cases: &[(&[usize], ff::SplitSpec, isize)] = &[
        (&[6], ff::SplitSpec::Parts(3), 0),
        (&[6], ff::SplitSpec::Parts(1), -1),
        (&[6], ff::SplitSpec::Sizes(vec![1, 0, 5]), 0),
        (&[4, 6], ff::SplitSpec::Parts(2), 0),
        (&[4, 6], ff::SplitSpec::Parts(3), 1),
        (&[4, 6], ff::SplitSpec::Sizes(vec![4, 2]), -1),
        (&[2, 6, 3], ff::SplitSpec::Sizes(vec![1, 2, 3]), 1),
        (&[2, 6, 3], ff::SplitSpec::Parts(3), -1),
        (&[0, 4], ff::SplitSpec::Parts(2), 1),
        (&[3, 0], ff::SplitSpec::Parts(3), 0),
    ];
    for (shape, spec, axis) in cases {
        for &dt in ALL {
            let ctx = format!("split {shape:?} {spec:?} axis={axis} {dt}");
            let _case = name_case(&ctx);
            let mut rng = Rng::for_case(&ctx);
            let (x, xv) = input(&mut rng, dt, shape, Domain::Any);
            let a = if *axis < 0 { axis + shape.len() as isize } else { *axis } as usize;
            let sizes = match spec {
                ff::SplitSpec::Parts(n) => vec![shape[a] / n; *n],
                ff::SplitSpec::Sizes(s) => s.clone(),
            };
            let mut at = 0;
            let want: Vec<ArrayD<f64>> = sizes
                .iter()
                .map(|&s| {
                    at += s;
                    xv.slice_axis(Axis(a), Slice::from(at - s..at)).to_owned()
                })
                .collect();
            let (spec, axis) = (spec.clone(), *axis);
            for &mode in MODES {
                let s = spec.clone();
                let got =
                    ok(&ctx, run_many(mode, std::slice::from_ref(&x), move |t| ff::split(&t[0], s.clone(), axis)));
                assert_eq!(got.len(), want.len(), "{ctx}: number of parts");
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_close(&format!("{ctx} part {i} {mode:?}"), g, dt, w, Tol::of(dt));
                }
                let s = spec.clone();
                let got = ok(&ctx, run_many(mode, std::slice::from_ref(&x), move |t| t[0].split(s.clone(), axis)));
                assert_eq!(got.len(), want.len(), "{ctx} (method)");
            }
        }
    }
}

#[test]
fn slice_blocks() {
    let cases: &[(&[usize], &[usize], &[isize])] = &[
        (&[], &[], &[]),
        (&[7], &[2], &[3]),
        (&[7], &[0], &[-1]),
        (&[7], &[7], &[0]),
        (&[7], &[3], &[-1]),
        (&[4, 5], &[1, 2], &[2, 3]),
        (&[4, 5], &[0, 4], &[-1, 1]),
        (&[4, 5], &[3, 0], &[1, -1]),
        (&[2, 3, 4], &[1, 1, 1], &[1, 2, 3]),
        (&[2, 3, 4], &[0, 0, 0], &[-1, -1, -1]),
        (&[2, 3, 4], &[0, 2, 1], &[2, 0, 2]),
        (&[2, 0, 3], &[1, 0, 1], &[1, -1, 2]),
    ];
    for &(shape, begin, size) in cases {
        let ctx = format!("slice {shape:?} begin={begin:?} size={size:?}");
        let _case = name_case(&ctx);
        let reference = |x: &ArrayD<f64>| {
            x.slice_each_axis(|ax| {
                let (b, d) = (begin[ax.axis.index()], ax.len);
                let s = size[ax.axis.index()];
                let e = if s < 0 { d } else { b + s as usize };
                Slice::from(b..e)
            })
            .to_owned()
        };
        each_dtype(&ctx, shape, move |t| ff::slice(&t[0], begin, size), reference);
        each_dtype(&format!("{ctx} (method)"), shape, move |t| t[0].slice(begin, size), reference);
    }
}

#[test]
fn gather_picks_along_an_axis() {
    let cases: &[(&[usize], isize, &[usize])] = &[
        (&[5], 0, &[]),
        (&[5], 0, &[3]),
        (&[5], -1, &[7]),
        (&[5], 0, &[0]),
        (&[4, 3], 0, &[2]),
        (&[4, 3], 1, &[2, 2]),
        (&[4, 3], -2, &[5]),
        (&[2, 3, 4], 1, &[3]),
        (&[2, 3, 4], 2, &[2, 3]),
        (&[2, 3, 4], 0, &[]),
        (&[2, 0, 4], 2, &[3]),
        (&[2, 3], 1, &[0, 2]),
    ];
    for &(shape, axis, ishape) in cases {
        for &idt in INT_INDEX {
            for &dt in ALL {
                let ctx = format!("gather {shape:?} axis={axis} idx={ishape:?} {idt} {dt}");
                let _case = name_case(&ctx);
                let mut rng = Rng::for_case(&ctx);
                let (x, xv) = input(&mut rng, dt, shape, Domain::Any);
                let a = if axis < 0 { axis + shape.len() as isize } else { axis } as usize;
                let n: usize = ishape.iter().product();
                let idx: Vec<f64> = (0..n).map(|_| rng.int(0, shape[a] as i64 - 1) as f64).collect();
                let it = tensor(idt, ishape, &idx);
                let flat: Vec<usize> = idx.iter().map(|&i| i as usize).collect();
                let picked = xv.select(Axis(a), &flat);
                let mut dims = shape[..a].to_vec();
                dims.extend_from_slice(ishape);
                dims.extend_from_slice(&shape[a + 1..]);
                let want = row_major(&picked.as_standard_layout().into_owned(), &dims);
                for &mode in MODES {
                    let got = ok(&ctx, run(mode, &[x.clone(), it.clone()], move |t| ff::gather(&t[0], &t[1], axis)));
                    assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, Tol::of(dt));
                    let got = ok(&ctx, run(mode, &[x.clone(), it.clone()], move |t| t[0].gather(&t[1], axis)));
                    assert_close(&format!("{ctx} (method) {mode:?}"), &got, dt, &want, Tol::of(dt));
                }
            }
        }
    }
}

#[test]
fn one_hot_encodes() {
    let cases: &[(&[usize], usize)] = &[(&[], 4), (&[5], 3), (&[2, 3], 5), (&[0], 3), (&[4], 1), (&[0], 0)];
    for &(shape, depth) in cases {
        for &dt in &[I32, I64, U8] {
            let ctx = format!("one_hot {shape:?} depth={depth} {dt}");
            let _case = name_case(&ctx);
            let mut rng = Rng::for_case(&ctx);
            let n: usize = shape.iter().product();
            if depth == 0 && n > 0 {
                continue; // no valid index
            }
            let idx: Vec<f64> = (0..n).map(|_| rng.int(0, depth as i64 - 1) as f64).collect();
            let it = tensor(dt, shape, &idx);
            let mut dims = shape.to_vec();
            dims.push(depth);
            let want = ArrayD::from_shape_fn(IxDyn(&dims), |ix| {
                let i = (0..shape.len()).fold(0, |acc, d| acc * shape[d] + ix[d]);
                (idx[i] as usize == ix[shape.len()]) as u8 as f64
            });
            for &mode in MODES {
                let got = ok(&ctx, run(mode, std::slice::from_ref(&it), move |t| ff::one_hot(&t[0], depth)));
                assert_close(&format!("{ctx} {mode:?}"), &got, F32, &want, Tol::of(F32));
                let got = ok(&ctx, run(mode, std::slice::from_ref(&it), move |t| t[0].one_hot(depth)));
                assert_close(&format!("{ctx} (method) {mode:?}"), &got, F32, &want, Tol::of(F32));
            }
        }
    }
}

// ---- matmul ---------------------------------------------------------------------------------

/// `[batch..., r, c]` (transposed on the last two dims when `t`) as `[prod(batch), r, c]`.
fn as_batches(x: &ArrayD<f64>, t: bool) -> (Vec<usize>, Array3<f64>) {
    let r = x.ndim();
    let mut v = x.view();
    if t {
        v.swap_axes(r - 2, r - 1);
    }
    let batch = x.shape()[..r - 2].to_vec();
    let (p, q) = (v.shape()[r - 2], v.shape()[r - 1]);
    let nb = batch.iter().product();
    let a3 = v.as_standard_layout().into_owned().into_shape_with_order((nb, p, q)).unwrap();
    (batch, a3)
}

/// Linear index into `dims` (right-aligned, broadcast dims of size 1 read index 0) of the
/// multi-index `ix` of the broadcast batch shape.
fn batch_index(ix: &[usize], dims: &[usize]) -> usize {
    let off = ix.len() - dims.len();
    dims.iter().enumerate().fold(0, |acc, (d, &n)| acc * n + if n == 1 { 0 } else { ix[d + off] })
}

fn ref_matmul(a: &ArrayD<f64>, b: &ArrayD<f64>, ta: bool, tb: bool, dt: DType) -> ArrayD<f64> {
    let (ba, a3) = as_batches(a, ta);
    let (bb, b3) = as_batches(b, tb);
    let batch = broadcast(&ba, &bb).unwrap();
    let (m, k, n) = (a3.shape()[1], a3.shape()[2], b3.shape()[2]);
    let mut dims = batch.clone();
    dims.extend([m, n]);
    let mut out = Vec::with_capacity(dims.iter().product());
    let nb: usize = batch.iter().product();
    for o in 0..nb {
        let mut ix = vec![0; batch.len()];
        let mut rem = o;
        for d in (0..batch.len()).rev() {
            ix[d] = rem % batch[d];
            rem /= batch[d];
        }
        let (ma, mb) = (a3.index_axis(Axis(0), batch_index(&ix, &ba)), b3.index_axis(Axis(0), batch_index(&ix, &bb)));
        for i in 0..m {
            for j in 0..n {
                if dt.is_int() {
                    let s =
                        (0..k).fold(0i64, |s, p| s.wrapping_add((ma[[i, p]] as i64).wrapping_mul(mb[[p, j]] as i64)));
                    out.push(wrap(dt, s) as f64);
                } else {
                    out.push((0..k).map(|p| ma[[i, p]] * mb[[p, j]]).sum());
                }
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&dims), out).unwrap()
}

/// `(a, b)` shapes as stored; `ta` / `tb` transpose their last two dims.
const MATMUL_CASES: &[(&[usize], &[usize], bool, bool)] = &[
    (&[2, 3], &[3, 4], false, false),
    (&[1, 1], &[1, 1], false, false),
    (&[3, 2], &[3, 4], true, false),
    (&[2, 3], &[4, 3], false, true),
    (&[3, 2], &[4, 3], true, true),
    (&[2, 3, 4], &[2, 4, 5], false, false),
    (&[2, 4, 3], &[2, 5, 4], true, true),
    (&[2, 1, 3, 4], &[5, 4, 2], false, false),
    (&[3, 4], &[2, 4, 5], false, false),
    (&[2, 3, 4], &[4, 5], false, false),
    (&[2, 3, 4], &[1, 5, 4], false, true),
    (&[0, 3], &[3, 4], false, false),
    (&[2, 0], &[0, 3], false, false),
    (&[2, 3], &[3, 0], false, false),
    (&[0, 2, 3], &[3, 2], false, false),
    (&[9, 17], &[17, 33], false, false),
];

#[test]
fn matmul_batched_and_transposed() {
    for &(sa, sb, ta, tb) in MATMUL_CASES {
        for &dt in NUM {
            let ctx = format!("matmul {sa:?} {sb:?} ta={ta} tb={tb} {dt}");
            let _case = name_case(&ctx);
            let mut rng = Rng::for_case(&ctx);
            let (a, av) = input(&mut rng, dt, sa, Domain::Any);
            let (b, bv) = input(&mut rng, dt, sb, Domain::Any);
            let want = ref_matmul(&av, &bv, ta, tb, dt);
            let k = if ta { sa[sa.len() - 2] } else { sa[sa.len() - 1] };
            let tol = Tol::of(dt).acc(dt, k as f64 * 10.0 + 1.0);
            for &mode in MODES {
                let got = ok(&ctx, run(mode, &[a.clone(), b.clone()], move |t| ff::matmul_with(&t[0], &t[1], ta, tb)));
                assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, tol);
                if !ta && !tb {
                    let got = ok(&ctx, run(mode, &[a.clone(), b.clone()], move |t| ff::matmul(&t[0], &t[1])));
                    assert_close(&format!("{ctx} (matmul) {mode:?}"), &got, dt, &want, tol);
                    let got = ok(&ctx, run(mode, &[a.clone(), b.clone()], move |t| t[0].matmul(&t[1])));
                    assert_close(&format!("{ctx} (method) {mode:?}"), &got, dt, &want, tol);
                }
            }
        }
    }
}

// ---- softmax --------------------------------------------------------------------------------

fn ref_softmax(x: &ArrayD<f64>, axis: usize, log: bool) -> ArrayD<f64> {
    if x.ndim() == 0 {
        return x.mapv(|_| if log { 0.0 } else { 1.0 });
    }
    let mut out = x.clone();
    for mut lane in out.lanes_mut(Axis(axis)) {
        let m = lane.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = lane.iter().map(|&v| (v - m).exp()).sum();
        lane.mapv_inplace(|v| if log { v - m - s.ln() } else { (v - m).exp() / s });
    }
    out
}

#[test]
fn softmax_every_axis() {
    let shapes: &[&[usize]] = &[&[], &[5], &[3, 4], &[2, 3, 4], &[2, 1, 3, 2], &[2, 0, 3]];
    for &shape in shapes {
        let r = shape.len().max(1) as isize;
        for axis in -r..r {
            for log in [false, true] {
                for &dt in FLOATS {
                    let name = if log { "log_softmax" } else { "softmax" };
                    let ctx = format!("{name} {shape:?} axis={axis} {dt}");
                    let _case = name_case(&ctx);
                    let mut rng = Rng::for_case(&ctx);
                    let (x, xv) = input(&mut rng, dt, shape, Domain::Any);
                    let a = if axis < 0 { axis + r } else { axis } as usize;
                    let want = ref_softmax(&xv, a, log);
                    let tol = Tol::of(dt).acc(dt, 4.0);
                    for &mode in MODES {
                        let got = if log {
                            ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| ff::log_softmax(&t[0], axis)))
                        } else {
                            ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| ff::softmax(&t[0], axis)))
                        };
                        assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, tol);
                        let got = if log {
                            ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| t[0].log_softmax(axis)))
                        } else {
                            ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| t[0].softmax(axis)))
                        };
                        assert_close(&format!("{ctx} (method) {mode:?}"), &got, dt, &want, tol);
                    }
                }
            }
        }
    }
}

// ---- cast -----------------------------------------------------------------------------------

/// Values worth casting from each dtype: fractions, negatives, values past the range of the
/// narrower types, and for floats the infinities and NaN.
fn cast_sources(dt: DType) -> Vec<f64> {
    match dt {
        Bool => vec![0.0, 1.0, 1.0, 0.0],
        U8 => vec![0.0, 1.0, 127.0, 128.0, 200.0, 255.0],
        I32 => vec![
            0.0,
            1.0,
            -1.0,
            127.0,
            128.0,
            255.0,
            256.0,
            300.0,
            -300.0,
            65504.0,
            100_000.0,
            16_777_217.0,
            2147483647.0,
            -2147483648.0,
        ],
        I64 => vec![
            0.0,
            1.0,
            -1.0,
            255.0,
            256.0,
            -257.0,
            (1i64 << 40) as f64 + 7.0,
            -(1i64 << 40) as f64,
            2147483648.0,
            (1i64 << 53) as f64,
            (1i64 << 62) as f64,
            i64::MIN as f64,
        ],
        _ => vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.7,
            -2.7,
            100.9,
            -100.9,
            255.5,
            256.0,
            300.0,
            -1.0,
            65504.0,
            1e10,
            -1e10,
            3e9,
            1e-3,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ],
    }
}

/// TensorFlow-style cast of an exact value of `from` into `to`: to bool is `!= 0` (NaN is
/// true); float to int truncates toward zero and saturates, NaN is 0; int to int wraps; to a
/// float rounds to nearest.
fn ref_cast(v: f64, from: DType, to: DType) -> f64 {
    match to {
        Bool => (v != 0.0) as u8 as f64,
        F32 | F64 | F16 | BF16 => round_to(to, v),
        _ if from.is_float() => {
            if v.is_nan() {
                0.0
            } else {
                v.trunc().clamp(lowest(to), highest(to))
            }
        }
        _ => wrap(to, v as i64) as f64,
    }
}

#[test]
fn cast_every_pair() {
    for &from in ALL {
        let src = cast_sources(from);
        let xv = exact(from, &[src.len()], &src);
        let x = tensor(from, &[src.len()], &src);
        for &to in ALL {
            let ctx = format!("cast {from} -> {to}");
            let _case = name_case(&ctx);
            let want = xv.mapv(|v| ref_cast(v, from, to));
            let exact_tol = Tol { abs: 0.0, rel: 0.0 };
            for &mode in MODES {
                let got = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| ff::cast(&t[0], to)));
                assert_close(&format!("{ctx} {mode:?}"), &got, to, &want, exact_tol);
                let got = ok(&ctx, run(mode, &[x.reshape(&[2, -1]).unwrap()], move |t| t[0].cast(to)));
                assert_close(
                    &format!("{ctx} (method, 2-D) {mode:?}"),
                    &got,
                    to,
                    &row_major(&want, &[2, src.len() / 2]),
                    exact_tol,
                );
            }
        }
    }
}

// ---- image ----------------------------------------------------------------------------------

#[test]
fn rgb_to_grayscale_weights_channels() {
    const W: [f64; 3] = [0.2989, 0.5870, 0.1140];
    let shapes: &[&[usize]] = &[&[3], &[4, 3], &[2, 2, 3], &[2, 1, 2, 3], &[0, 3]];
    for &dt in &[F32, F64, F16, BF16, U8, I32, I64] {
        let max = match dt {
            U8 => Some(255.0),
            I32 => Some(i32::MAX as f64),
            I64 => Some(i64::MAX as f64),
            _ => None,
        };
        for &shape in shapes {
            let ctx = format!("rgb_to_grayscale {shape:?} {dt}");
            let _case = name_case(&ctx);
            let mut rng = Rng::for_case(&ctx);
            let n: usize = shape.iter().product();
            let v: Vec<f64> = (0..n)
                .map(|_| if let Some(m) = max { rng.range(0.0, m).floor() } else { rng.range(0.0, 1.0) })
                .collect();
            let (x, xv) = (tensor(dt, shape, &v), exact(dt, shape, &v));
            let gray = xv.map_axis(Axis(shape.len() - 1), |px| {
                let scaled = |c: usize| px[c] / max.unwrap_or(1.0);
                let g = W[0] * scaled(0) + W[1] * scaled(1) + W[2] * scaled(2);
                match max {
                    // Back to integers as convert_image_dtype does: times max + 0.5, truncated.
                    Some(m) => (g * (m + 0.5)).trunc(),
                    None => g,
                }
            });
            let want = gray.insert_axis(Axis(shape.len() - 1));
            // Computed in f32 (as TensorFlow does), so every dtype gets f32 accuracy; integer
            // results may land one step off at a truncation boundary.
            let tol = match dt {
                F64 => Tol::of(F32),
                U8 => Tol { abs: 1.0, rel: 0.0 },
                I32 | I64 => Tol { abs: 1.0, rel: 1e-6 },
                _ => Tol::of(dt),
            };
            for &mode in MODES {
                let got = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| ff::image::rgb_to_grayscale(&t[0])));
                assert_close(&format!("{ctx} {mode:?}"), &got, dt, &want, tol);
            }
        }
    }
}

// ---- sizes that take the multi-threaded kernel paths ------------------------------------------

#[test]
fn large_inputs_take_the_parallel_paths() {
    for &dt in &[F32, F64, I32] {
        let ctx = format!("large {dt}");
        let _case = name_case(&ctx);
        let mut rng = Rng::for_case(&ctx);
        let (a, av) = input(&mut rng, dt, &[256, 300], Domain::Any);
        let (b, bv) = input(&mut rng, dt, &[256, 300], Domain::Any);
        let (col, colv) = input(&mut rng, dt, &[256, 1], Domain::Any);
        let tol = Tol::of(dt);
        for &mode in MODES {
            let c = |s: &str| format!("{ctx} {s} {mode:?}");
            let got = ok(&ctx, run(mode, &[a.clone(), b.clone()], move |t| &t[0] + &t[1]));
            assert_close(&c("add"), &got, dt, &zip2(&av, &bv, |x, y| add_ref(x, y, dt)), tol);
            let got = ok(&ctx, run(mode, &[a.clone(), col.clone()], move |t| &t[0] * &t[1]));
            assert_close(&c("mul broadcast"), &got, dt, &zip2(&av, &colv, |x, y| mul_ref(x, y, dt)), tol);
            let got = ok(&ctx, run(mode, &[col.clone(), a.clone()], move |t| ff::sub(&t[0], &t[1])));
            assert_close(&c("sub broadcast"), &got, dt, &zip2(&colv, &av, |x, y| sub_ref(x, y, dt)), tol);
            let got = ok(&ctx, run(mode, std::slice::from_ref(&a), move |t| t[0].abs()));
            assert_close(&c("abs"), &got, dt, &av.mapv(f64::abs), tol);
            let got = ok(
                &ctx,
                run(mode, &[a.clone(), b.clone()], move |t| ff::where_(&ff::greater(&t[0], &t[1])?, &t[0], &t[1])),
            );
            assert_close(&c("where_"), &got, dt, &zip2(&av, &bv, f64::max), tol);
            let got = ok(&ctx, run(mode, std::slice::from_ref(&a), move |t| t[0].transpose(&[1, 0])));
            assert_close(&c("transpose"), &got, dt, &av.t().as_standard_layout().into_owned().into_dyn(), tol);
            let got = ok(&ctx, run(mode, std::slice::from_ref(&col), move |t| t[0].broadcast_to(&[256, 300])));
            assert_close(&c("broadcast_to"), &got, dt, &colv.broadcast(IxDyn(&[256, 300])).unwrap().to_owned(), tol);
            let got = ok(&ctx, run(mode, &[a.clone(), b.clone()], move |t| ff::concat(t, 1)));
            assert_close(&c("concat"), &got, dt, &ndarray::concatenate(Axis(1), &[av.view(), bv.view()]).unwrap(), tol);
            let got = ok(&ctx, run(mode, std::slice::from_ref(&a), move |t| t[0].cast(F64)));
            assert_close(&c("cast"), &got, F64, &av, Tol::of(F64));
            for (axes, keep) in [(Some(&[0isize][..]), false), (Some(&[1][..]), true), (None, false)] {
                let ax = norm_axes(axes, 2);
                let count = ax.iter().map(|&i| av.shape()[i]).product::<usize>() as f64;
                for op in [Red::Sum, Red::Max, Red::Mean] {
                    let f: RedFn = match op {
                        Red::Sum => |x, a, k| ff::reduce_sum(x, a, k),
                        Red::Max => |x, a, k| ff::reduce_max(x, a, k),
                        _ => |x, a, k| ff::reduce_mean(x, a, k),
                    };
                    let got = ok(&ctx, run(mode, std::slice::from_ref(&a), move |t| f(&t[0], axes, keep)));
                    let want = ref_reduce(&av, &ax, keep, op, dt);
                    assert_close(&c(&format!("{op:?} {axes:?}")), &got, dt, &want, tol.acc(dt, count));
                }
            }
        }
        // One outer block with a long inner run, and non-adjacent axes of a large tensor.
        let (w, wv) = input(&mut rng, dt, &[3, 70_000], Domain::Any);
        let (v, vv) = input(&mut rng, dt, &[40, 30, 50], Domain::Any);
        for &mode in MODES {
            let got = ok(&ctx, run(mode, std::slice::from_ref(&w), move |t| t[0].reduce_sum(Some(&[0]), false)));
            assert_close(
                &format!("{ctx} sum [3, 70000] axis 0"),
                &got,
                dt,
                &ref_reduce(&wv, &[0], false, Red::Sum, dt),
                tol.acc(dt, 4.0),
            );
            let got = ok(&ctx, run(mode, std::slice::from_ref(&v), move |t| t[0].reduce_max(Some(&[0, 2]), true)));
            assert_close(
                &format!("{ctx} max [40, 30, 50] axes 0, 2"),
                &got,
                dt,
                &ref_reduce(&vv, &[0, 2], true, Red::Max, dt),
                tol,
            );
            let got = ok(&ctx, run(mode, std::slice::from_ref(&v), move |t| t[0].reduce_sum(Some(&[0, 2]), false)));
            assert_close(
                &format!("{ctx} sum [40, 30, 50] axes 0, 2"),
                &got,
                dt,
                &ref_reduce(&vv, &[0, 2], false, Red::Sum, dt),
                tol.acc(dt, 2000.0),
            );
            let idx: Vec<f64> = (0..2_000).map(|i| ((i * 7919) % 256) as f64).collect();
            let it = tensor(I64, &[2_000], &idx);
            let got = ok(&ctx, run(mode, &[a.clone(), it.clone()], move |t| ff::gather(&t[0], &t[1], 0)));
            let flat: Vec<usize> = idx.iter().map(|&i| i as usize).collect();
            assert_close(&format!("{ctx} gather"), &got, dt, &av.select(Axis(0), &flat), tol);
        }
    }
    // Float-only kernels: softmax rows across threads, matmul split by rows and by batch.
    for &dt in &[F32, F64] {
        let ctx = format!("large {dt}");
        let _case = name_case(&ctx);
        let mut rng = Rng::for_case(&ctx);
        let (x, xv) = input(&mut rng, dt, &[64, 1024], Domain::Any);
        let (p, pv) = input(&mut rng, dt, &[300, 256], Domain::Any);
        let (q, qv) = input(&mut rng, dt, &[256, 200], Domain::Any);
        let (bp, bpv) = input(&mut rng, dt, &[4, 64, 64], Domain::Any);
        let (bq, bqv) = input(&mut rng, dt, &[4, 64, 64], Domain::Any);
        for &mode in MODES {
            for axis in [-1, 0] {
                let a = if axis < 0 { 1 } else { 0 };
                let got = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| t[0].softmax(axis)));
                assert_close(
                    &format!("{ctx} softmax {axis}"),
                    &got,
                    dt,
                    &ref_softmax(&xv, a, false),
                    Tol::of(dt).acc(dt, 4.0),
                );
                let got = ok(&ctx, run(mode, std::slice::from_ref(&x), move |t| t[0].log_softmax(axis)));
                assert_close(
                    &format!("{ctx} log_softmax {axis}"),
                    &got,
                    dt,
                    &ref_softmax(&xv, a, true),
                    Tol::of(dt).acc(dt, 4.0),
                );
            }
            let tol = Tol::of(dt).acc(dt, 2560.0);
            let got = ok(&ctx, run(mode, &[p.clone(), q.clone()], move |t| ff::matmul(&t[0], &t[1])));
            assert_close(&format!("{ctx} matmul"), &got, dt, &ref_matmul(&pv, &qv, false, false, dt), tol);
            let qt = q.transpose(&[1, 0]).unwrap();
            let qtv = qv.t().as_standard_layout().into_owned();
            let got =
                ok(&ctx, run(mode, &[p.clone(), qt.clone()], move |t| ff::matmul_with(&t[0], &t[1], false, true)));
            assert_close(&format!("{ctx} matmul tb"), &got, dt, &ref_matmul(&pv, &qtv, false, true, dt), tol);
            let got =
                ok(&ctx, run(mode, &[bp.clone(), bq.clone()], move |t| ff::matmul_with(&t[0], &t[1], true, false)));
            assert_close(
                &format!("{ctx} batched matmul ta"),
                &got,
                dt,
                &ref_matmul(&bpv, &bqv, true, false, dt),
                Tol::of(dt).acc(dt, 640.0),
            );
        }
    }
}

#[test]
fn a_mode_that_differs_names_its_case() {
    // A body that returns another constant each time it runs: the traced call records the
    // first, the eager one returns the second, and `run` must say which case that was.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let x = Tensor::scalar(1.0f32);
    let _case = name_case("counter f32 []");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let calls = calls.clone();
        run(Mode::Traced, std::slice::from_ref(&x), move |xs| {
            let k = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) as f32;
            &xs[0] + k
        })
    }));
    let e = r.expect_err("traced and eager differ");
    let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.starts_with("counter f32 []: traced differs from eager"), "{msg}");
}
