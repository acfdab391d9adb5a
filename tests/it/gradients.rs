//! Gradients: every differentiable primitive (and the common composites) checked against
//! central finite differences in f64, eagerly, traced (the tape inside `ff::function`, all
//! optimizer passes on) and traced with no passes; then each `GradientTape` behaviour
//! (watching, persistence, unconnected sources, dtypes, variables, stop_gradient, errors),
//! gradients in graphs (a traced training step, backward nodes in the graph text, a traced
//! `cond`), a function called under an eager tape, and second order with nested tapes.

use std::sync::Arc;

use ferroflow as ff;
use ff::{DType, FunctionOptions, GradientOptions, GradientTape, OptimizerOptions, Tensor, UnconnectedGradients};

// ---- the finite-difference harness --------------------------------------------------------

type CaseFn = Arc<dyn Fn(&[Tensor]) -> ff::Result<Tensor> + Send + Sync>;

/// Where a case's gradient is computed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum GMode {
    Eager,
    /// The tape inside `ff::function`, every optimizer pass on (the default).
    Traced,
    /// The tape inside `ff::function`, no optimizer pass.
    TracedNoOpt,
}

const GMODES: &[GMode] = &[GMode::Eager, GMode::Traced, GMode::TracedNoOpt];

fn f64s(shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.cast(DType::F64).unwrap().to_ndarray::<f64>().unwrap().into_raw_vec_and_offset().0
}

fn with_vals(t: &Tensor, v: Vec<f64>) -> Tensor {
    Tensor::from_vec(v, t.shape().dims()).unwrap().cast(t.dtype()).unwrap()
}

/// The scalar the checks differentiate: `sum(f(x) * w)` with fixed weights `w`, so that no
/// gradient can hide behind a symmetric sum.
fn loss(f: &CaseFn, xs: &[Tensor]) -> ff::Result<Tensor> {
    let y = f(xs)?;
    let y = if y.dtype() == DType::F64 { y } else { y.cast(DType::F64)? };
    let w = f64s(y.shape().dims(), 99, 0.5, 1.5);
    (&y * &w)?.reduce_sum(None, false)
}

/// Analytic gradients of `loss` with respect to inputs `diff`, in `mode`.
fn analytic(mode: GMode, f: &CaseFn, xs: &[Tensor], diff: &[usize]) -> Vec<Tensor> {
    let diff: Vec<usize> = diff.to_vec();
    let body = {
        let f = f.clone();
        move |xs: &[Tensor]| -> ff::Result<Vec<Tensor>> {
            let tape = GradientTape::new();
            for &i in &diff {
                tape.watch(&xs[i]);
            }
            let l = loss(&f, xs)?;
            let sources: Vec<&Tensor> = diff.iter().map(|&i| &xs[i]).collect();
            let opts = GradientOptions { unconnected: UnconnectedGradients::Zero, ..Default::default() };
            Ok(tape.gradient_with(&[&l], &sources, &opts)?.into_iter().map(|g| g.expect("zero option")).collect())
        }
    };
    match mode {
        GMode::Eager => body(xs).unwrap(),
        GMode::Traced => call_traced(FunctionOptions::default(), Arc::new(body), xs),
        GMode::TracedNoOpt => call_traced(
            FunctionOptions { optimizer: Some(OptimizerOptions::none()), ..Default::default() },
            Arc::new(body),
            xs,
        ),
    }
}

type Body = Arc<dyn Fn(&[Tensor]) -> ff::Result<Vec<Tensor>> + Send + Sync>;

fn call_traced(opts: FunctionOptions, b: Body, xs: &[Tensor]) -> Vec<Tensor> {
    let out = match xs {
        [a] => ff::function_with(opts, move |a: &Tensor| b(std::slice::from_ref(a))).call((a,)),
        [a, c] => ff::function_with(opts, move |a: &Tensor, c: &Tensor| b(&[a.clone(), c.clone()])).call((a, c)),
        [a, c, d] => {
            ff::function_with(opts, move |a: &Tensor, c: &Tensor, d: &Tensor| b(&[a.clone(), c.clone(), d.clone()]))
                .call((a, c, d))
        }
        _ => panic!("add a wrapper for {} inputs", xs.len()),
    };
    out.unwrap()
}

/// Central differences of `loss` with respect to input `i`.
fn numeric(f: &CaseFn, xs: &[Tensor], i: usize, h: f64) -> Vec<f64> {
    let base = vals(&xs[i]);
    (0..base.len())
        .map(|j| {
            let at = |d: f64| {
                let mut v = base.clone();
                v[j] += d;
                let mut ys = xs.to_vec();
                ys[i] = with_vals(&xs[i], v);
                vals(&loss(f, &ys).unwrap())[0]
            };
            (at(h) - at(-h)) / (2.0 * h)
        })
        .collect()
}

struct Case {
    name: &'static str,
    xs: Vec<Tensor>,
    diff: Vec<usize>,
    f: CaseFn,
    /// Relative and absolute tolerance against the finite differences.
    tol: f64,
    /// The finite-difference step.
    h: f64,
}

fn case(
    name: &'static str,
    xs: Vec<Tensor>,
    diff: &[usize],
    f: impl Fn(&[Tensor]) -> ff::Result<Tensor> + Send + Sync + 'static,
) -> Case {
    Case { name, xs, diff: diff.to_vec(), f: Arc::new(f), tol: 1e-6, h: 1e-6 }
}

fn check(c: &Case) {
    let fd: Vec<Vec<f64>> = c.diff.iter().map(|&i| numeric(&c.f, &c.xs, i, c.h)).collect();
    let mut eager: Option<Vec<Tensor>> = None;
    for &mode in GMODES {
        let got = analytic(mode, &c.f, &c.xs, &c.diff);
        assert_eq!(got.len(), c.diff.len(), "{}: one gradient per source", c.name);
        for (k, (g, want)) in got.iter().zip(&fd).enumerate() {
            let x = &c.xs[c.diff[k]];
            assert_eq!(g.shape(), x.shape(), "{} {mode:?}: gradient {k} has its source's shape", c.name);
            assert_eq!(g.dtype(), x.dtype(), "{} {mode:?}: gradient {k} has its source's dtype", c.name);
            for (j, (a, n)) in vals(g).iter().zip(want).enumerate() {
                assert!(
                    (a - n).abs() <= c.tol * (1.0 + n.abs()),
                    "{} {mode:?}: d/dx{}[{j}]: analytic {a}, finite differences {n}",
                    c.name,
                    c.diff[k]
                );
            }
        }
        // Traced gradients match eager ones (to rounding: fusion may reorder arithmetic).
        match &eager {
            None => eager = Some(got),
            Some(e) => {
                for (a, b) in e.iter().zip(&got) {
                    for (p, q) in vals(a).iter().zip(vals(b)) {
                        assert!(
                            (p - q).abs() <= 1e-12 * (1.0 + p.abs()),
                            "{} {mode:?}: traced {q} vs eager {p}",
                            c.name
                        );
                    }
                }
            }
        }
    }
}

fn x(shape: &[usize], seed: u64) -> Tensor {
    f64s(shape, seed, -2.0, 2.0)
}
fn pos(shape: &[usize], seed: u64) -> Tensor {
    f64s(shape, seed, 0.5, 2.0)
}
/// Values at least 0.1 away from 0 (kinks of abs and relu).
fn off0(shape: &[usize], seed: u64) -> Tensor {
    let v: Vec<f64> =
        vals(&x(shape, seed)).iter().map(|&a| if a.abs() < 0.1 { a.signum() * 0.1 + a } else { a }).collect();
    Tensor::from_vec(v, shape).unwrap()
}

// ---- finite-difference checks, one test per op family ---------------------------------------

#[test]
fn fd_unary() {
    let s = [2, 3];
    let cases = vec![
        case("neg", vec![x(&s, 1)], &[0], |x| x[0].neg()),
        case("abs", vec![off0(&s, 2)], &[0], |x| x[0].abs()),
        case("square", vec![x(&s, 3)], &[0], |x| x[0].square()),
        case("relu", vec![off0(&s, 4)], &[0], |x| x[0].relu()),
        case("exp", vec![x(&s, 5)], &[0], |x| x[0].exp()),
        case("log", vec![pos(&s, 6)], &[0], |x| x[0].log()),
        case("sqrt", vec![pos(&s, 7)], &[0], |x| x[0].sqrt()),
        case("rsqrt", vec![pos(&s, 8)], &[0], |x| x[0].rsqrt()),
        case("sigmoid", vec![x(&s, 9)], &[0], |x| x[0].sigmoid()),
        case("tanh", vec![x(&s, 10)], &[0], |x| x[0].tanh()),
        case("gelu", vec![Tensor::from_vec(vec![-3.0, -1.0, 0.0, 0.3, 1.0, 2.5], &s).unwrap()], &[0], |x| x[0].gelu()),
        case("sin", vec![x(&s, 12)], &[0], |x| x[0].sin()),
        case("cos", vec![x(&s, 13)], &[0], |x| x[0].cos()),
        // relu's gradient, relu_grad(w, relu(x)), differentiated in `w` (second order: the
        // rule of relu_grad itself); piecewise constant in `x`.
        case("relu_grad (relu's gradient, in its incoming gradient)", vec![off0(&s, 14), x(&s, 15)], &[1], |x| {
            let tape = GradientTape::new();
            tape.watch(&x[0]);
            let weighted = (&x[0].relu()? * &x[1])?.reduce_sum(None, false)?;
            Ok(tape.gradient(&weighted, &[&x[0]])?.remove(0).expect("connected"))
        }),
    ];
    cases.iter().for_each(check);
}

#[test]
fn fd_binary_with_broadcasting() {
    let (a, b, c) = ([2, 3], [3], [2, 1]);
    let cases = vec![
        case("add", vec![x(&a, 1), x(&b, 2)], &[0, 1], |x| &x[0] + &x[1]),
        case("add [2,1]+[3]", vec![x(&c, 1), x(&b, 2)], &[0, 1], |x| &x[0] + &x[1]),
        case("sub", vec![x(&a, 3), x(&c, 4)], &[0, 1], |x| &x[0] - &x[1]),
        case("mul", vec![x(&a, 5), x(&b, 6)], &[0, 1], |x| &x[0] * &x[1]),
        case("mul scalar", vec![x(&a, 5), x(&[], 6)], &[0, 1], |x| &x[0] * &x[1]),
        case("div", vec![x(&a, 7), pos(&c, 8)], &[0, 1], |x| x[0].div(&x[1])),
        case("pow", vec![pos(&a, 9), x(&b, 10)], &[0, 1], |x| x[0].pow(&x[1])),
        case(
            "pow negative base",
            vec![f64s(&a, 9, -2.0, -0.5), Tensor::from_vec(vec![2.0, 3.0, 1.0], &[3]).unwrap()],
            &[0],
            |x| x[0].pow(&x[1]),
        ),
        case("maximum", vec![x(&a, 11), x(&b, 12)], &[0, 1], |x| x[0].maximum(&x[1])),
        case("minimum", vec![x(&a, 13), x(&c, 14)], &[0, 1], |x| x[0].minimum(&x[1])),
        case("floor_div (zero)", vec![x(&a, 15), pos(&b, 16)], &[0, 1], |x| x[0].floor_div(&x[1])),
        case("where_", vec![x(&a, 17), x(&b, 18)], &[0, 1], |x| {
            let c = Tensor::from_vec(vec![true, false, true, false, false, true], &[2, 3])?;
            ff::where_(&c, &x[0], &x[1])
        }),
        case("clip", vec![x(&a, 19)], &[0], |x| x[0].clip(-1.0, 1.0)),
    ];
    cases.iter().for_each(check);
}

#[test]
fn fd_reductions() {
    let s = [2, 3, 4];
    let mut cases = vec![];
    for (axes, keep) in [(None, false), (Some(vec![0isize]), false), (Some(vec![1, 2]), true), (Some(vec![-1]), false)]
    {
        let (a1, a2, a3, a4, a5) = (axes.clone(), axes.clone(), axes.clone(), axes.clone(), axes.clone());
        cases.push(case("reduce_sum", vec![x(&s, 1)], &[0], move |x| x[0].reduce_sum(a1.as_deref(), keep)));
        cases.push(case("reduce_mean", vec![x(&s, 2)], &[0], move |x| x[0].reduce_mean(a2.as_deref(), keep)));
        cases.push(case("reduce_max", vec![x(&s, 3)], &[0], move |x| x[0].reduce_max(a3.as_deref(), keep)));
        cases.push(case("reduce_min", vec![x(&s, 4)], &[0], move |x| x[0].reduce_min(a4.as_deref(), keep)));
        cases.push(case("reduce_prod", vec![x(&s, 5)], &[0], move |x| x[0].reduce_prod(a5.as_deref(), keep)));
    }
    // The product's gradient with one zero and with two zeros in a row (exact, no 0/0).
    let z = Tensor::from_vec(vec![0.0, 2.0, 3.0, 0.0, 0.0, 1.5], &[2, 3]).unwrap();
    cases.push(case("reduce_prod zeros", vec![z], &[0], |x| x[0].reduce_prod(Some(&[1]), false)));
    cases.iter().for_each(check);
}

#[test]
fn fd_shape_ops() {
    let cases = vec![
        case("reshape", vec![x(&[2, 6], 1)], &[0], |x| x[0].reshape(&[3, -1])?.square()),
        case("transpose", vec![x(&[2, 3, 4], 2)], &[0], |x| x[0].transpose(&[2, 0, 1])?.square()),
        case("broadcast_to", vec![x(&[3, 1], 3)], &[0], |x| x[0].broadcast_to(&[2, 3, 4])),
        case("concat", vec![x(&[2, 3], 4), x(&[2, 1], 5)], &[0, 1], |x| ff::concat(&[&x[0], &x[1]], 1)?.square()),
        case("slice", vec![x(&[4, 5], 6)], &[0], |x| x[0].slice(&[1, 2], &[2, -1])?.square()),
        case("gather axis 0, repeats", vec![x(&[4, 3], 7)], &[0], |x| {
            x[0].gather(Tensor::from_vec(vec![2i64, 0, 2, 3], &[2, 2])?, 0)?.square()
        }),
        case("gather axis 1", vec![x(&[2, 4, 3], 8)], &[0], |x| {
            x[0].gather(Tensor::from_vec(vec![3i32, 1, 3], &[3])?, 1)?.square()
        }),
        case("expand_dims + squeeze", vec![x(&[2, 3], 9)], &[0], |x| x[0].expand_dims(1)?.square()?.squeeze(None)),
        case("stack", vec![x(&[2, 3], 10), x(&[2, 3], 11)], &[0, 1], |x| ff::stack(&[&x[0], &x[1]], 1)?.square()),
        case("split", vec![x(&[4, 3], 12)], &[0], |x| {
            let p = x[0].split(&[1, 3], 0)?;
            &p[0].square()? * &p[1].reduce_sum(Some(&[0]), true)?
        }),
        case("cast f64 -> f64 via f32 is not exact", vec![x(&[3], 13)], &[0], |x| x[0].square()?.cast(DType::F64)),
    ];
    cases.iter().for_each(check);
    // Through f32 and back: the gradient passes, at f32 precision.
    let mut c =
        case("cast f64 -> f32 -> f64", vec![x(&[3], 14)], &[0], |x| x[0].cast(DType::F32)?.square()?.cast(DType::F64));
    (c.tol, c.h) = (1e-3, 1e-2);
    check(&c);
}

#[test]
fn fd_matmul_and_softmax() {
    let cases = vec![
        case("matmul", vec![x(&[2, 3], 1), x(&[3, 4], 2)], &[0, 1], |x| x[0].matmul(&x[1])),
        case("matmul ta", vec![x(&[3, 2], 3), x(&[3, 4], 4)], &[0, 1], |x| ff::matmul_with(&x[0], &x[1], true, false)),
        case("matmul tb", vec![x(&[2, 3], 5), x(&[4, 3], 6)], &[0, 1], |x| ff::matmul_with(&x[0], &x[1], false, true)),
        case("matmul ta tb", vec![x(&[3, 2], 7), x(&[4, 3], 8)], &[0, 1], |x| {
            ff::matmul_with(&x[0], &x[1], true, true)
        }),
        case("matmul batched, broadcast", vec![x(&[2, 2, 3], 9), x(&[3, 4], 10)], &[0, 1], |x| x[0].matmul(&x[1])),
        case("softmax -1", vec![x(&[2, 4], 11)], &[0], |x| x[0].softmax(-1)),
        case("softmax 0", vec![x(&[3, 2], 12)], &[0], |x| x[0].softmax(0)),
        case("log_softmax -1", vec![x(&[2, 4], 13)], &[0], |x| x[0].log_softmax(-1)),
        case("log_softmax 0", vec![x(&[3, 2], 14)], &[0], |x| x[0].log_softmax(0)),
        case("dense layer", vec![x(&[4, 3], 15), x(&[3, 2], 16), x(&[2], 17)], &[1, 2], |x| {
            (&x[0].matmul(&x[1])? + &x[2])?.relu()
        }),
        case("softmax cross-entropy", vec![x(&[4, 5], 18)], &[0], |x| {
            let labels = ff::one_hot(Tensor::from_vec(vec![1i64, 0, 4, 2], &[4])?, 5)?.cast(DType::F64)?;
            (&labels * &x[0].log_softmax(-1)?)?.reduce_sum(Some(&[-1]), false)?.neg()
        }),
        case("mse", vec![x(&[3, 2], 19), x(&[3, 2], 20)], &[0, 1], |x| {
            (&x[0] - &x[1])?.square()?.reduce_mean(None, false)
        }),
    ];
    cases.iter().for_each(check);
}

#[test]
fn fd_sparse() {
    let idx = || Tensor::from_vec(vec![0i64, 1, 1, 0, 2, 1, 2, 3], &[4, 2]).unwrap();
    let cases = [
        case("sparse::to_dense values and default", vec![x(&[4], 1), x(&[], 2)], &[0, 1], move |x| {
            let sp = ff::SparseTensor::new(idx(), &x[0], [3, 4])?;
            ff::sparse::to_dense(&sp, &x[1])
        }),
        case("sparse::matmul values and dense", vec![x(&[4], 3), x(&[4, 2], 4)], &[0, 1], move |x| {
            let sp = ff::SparseTensor::new(idx(), &x[0], [3, 4])?;
            ff::sparse::matmul(&sp, &x[1])
        }),
    ];
    cases.iter().for_each(check);
}

// ---- tape behaviours ----------------------------------------------------------------------

fn scalar(v: f32) -> Tensor {
    Tensor::scalar(v)
}
fn val(t: &Option<Tensor>) -> f32 {
    t.as_ref().expect("a gradient").to_scalar::<f32>().unwrap()
}

#[test]
fn unwatched_and_unconnected_sources_get_none_or_zero() {
    let (x, y) = (scalar(3.0), scalar(4.0));
    let tape = GradientTape::persistent();
    tape.watch(&x);
    let z = x.square().unwrap();
    let g = tape.gradient(&z, &[&x, &y]).unwrap();
    assert_eq!(val(&g[0]), 6.0);
    assert!(g[1].is_none(), "y is not watched and not connected");
    let opts = GradientOptions { unconnected: UnconnectedGradients::Zero, ..Default::default() };
    let g = tape.gradient_with(&[&z], &[&y], &opts).unwrap();
    assert_eq!(val(&g[0]), 0.0);
    // An unwatched constant is not recorded at all.
    let t2 = GradientTape::new();
    let w = y.square().unwrap();
    assert!(t2.gradient(&w, &[&y]).unwrap()[0].is_none());
}

#[test]
fn non_persistent_tape_allows_one_gradient_call() {
    let x = scalar(2.0);
    let tape = GradientTape::new();
    tape.watch(&x);
    let y = (&x * &x).unwrap();
    assert_eq!(val(&tape.gradient(&y, &[&x]).unwrap()[0]), 4.0);
    let e = tape.gradient(&y, &[&x]).unwrap_err();
    assert!(matches!(e, ff::Error::TapeExhausted { .. }), "{e}");
    assert_eq!(e.location().map(|l| l.file()), Some(file!()));
    assert!(e.to_string().contains("non-persistent GradientTape can only be used to compute one set of gradients"));
    // A persistent one allows many.
    let tape = GradientTape::persistent();
    tape.watch(&x);
    let y = x.exp().unwrap();
    let z = x.sin().unwrap();
    assert_eq!(val(&tape.gradient(&y, &[&x]).unwrap()[0]), 2f32.exp());
    assert_eq!(val(&tape.gradient(&z, &[&x]).unwrap()[0]), 2f32.cos());
}

#[test]
fn integer_sources_get_none() {
    let i = Tensor::scalar(3i32);
    let tape = GradientTape::new();
    tape.watch(&i); // logs a warning, watches nothing
    let y = (&i * &i).unwrap();
    assert!(tape.gradient(&y, &[&i]).unwrap()[0].is_none());
}

#[test]
fn non_scalar_target_is_summed_and_output_gradients_weight_it() {
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let tape = GradientTape::persistent();
    tape.watch(&x);
    let y = x.square().unwrap();
    let g = tape.gradient(&y, &[&x]).unwrap();
    assert_eq!(vals(g[0].as_ref().unwrap()), vec![2.0, 4.0, 6.0]);
    let w = Tensor::from_slice(&[1.0f32, 0.0, -1.0], &[3]).unwrap();
    let opts = GradientOptions { output_gradients: Some(vec![w]), ..Default::default() };
    let g = tape.gradient_with(&[&y], &[&x], &opts).unwrap();
    assert_eq!(vals(g[0].as_ref().unwrap()), vec![2.0, 0.0, -6.0]);
    // Output gradients that do not fit their target are errors.
    let bad = GradientOptions {
        output_gradients: Some(vec![Tensor::from_slice(&[1.0f32], &[1]).unwrap()]),
        ..Default::default()
    };
    assert!(matches!(tape.gradient_with(&[&y], &[&x], &bad).unwrap_err(), ff::Error::ShapeMismatch { .. }));
    let bad = GradientOptions {
        output_gradients: Some(vec![Tensor::from_slice(&[1.0f64, 1.0, 1.0], &[3]).unwrap()]),
        ..Default::default()
    };
    assert!(matches!(tape.gradient_with(&[&y], &[&x], &bad).unwrap_err(), ff::Error::DTypeMismatch { .. }));
    let bad = GradientOptions { output_gradients: Some(vec![]), ..Default::default() };
    assert!(matches!(tape.gradient_with(&[&y], &[&x], &bad).unwrap_err(), ff::Error::InvalidArgument { .. }));
}

#[test]
fn variables_are_watched_when_trainable_and_read_twice_sums() {
    let w = ff::Variable::new(scalar(3.0)).unwrap();
    let frozen = ff::Variable::non_trainable(scalar(5.0)).unwrap();
    let tape = GradientTape::persistent();
    // y = w * w + frozen * w: two reads of w (+ a third), one of frozen.
    let y = (&(&w.value() * &w.value()).unwrap() + &(&frozen.value() * &w.value()).unwrap()).unwrap();
    let g = tape.gradient(&y, &[&w, &frozen]).unwrap();
    assert_eq!(val(&g[0]), 2.0 * 3.0 + 5.0);
    assert!(g[1].is_none(), "a non-trainable variable is not watched");
    assert_eq!(tape.watched_variables().len(), 1);
    // Watched explicitly, it is.
    let tape = GradientTape::new();
    tape.watch(&frozen);
    let y = (&frozen.value() * &w.value()).unwrap();
    let g = tape.gradient(&y, &[&w, &frozen]).unwrap();
    assert_eq!((val(&g[0]), val(&g[1])), (5.0, 3.0));
    // watch_accessed_variables: false watches nothing by itself.
    let tape = GradientTape::with_options(ff::TapeOptions { persistent: false, watch_accessed_variables: false });
    let y = w.value().square().unwrap();
    assert!(tape.gradient(&y, &[&w]).unwrap()[0].is_none());
}

#[test]
fn two_variables_holding_one_tensor_stay_apart() {
    let t = scalar(2.0);
    let (a, b) = (ff::Variable::new(&t).unwrap(), ff::Variable::new(&t).unwrap());
    let tape = GradientTape::new();
    let y = (&a.value() * &b.value().square().unwrap()).unwrap(); // a b^2
    let g = tape.gradient(&y, &[&a, &b]).unwrap();
    assert_eq!((val(&g[0]), val(&g[1])), (4.0, 8.0));
}

#[test]
fn stop_gradient_blocks_the_path() {
    let x = scalar(3.0);
    let tape = GradientTape::new();
    tape.watch(&x);
    let y = (&x * &ff::stop_gradient(&x).unwrap()).unwrap(); // d/dx [x * const(x)] = x
    assert_eq!(val(&tape.gradient(&y, &[&x]).unwrap()[0]), 3.0);
}

#[test]
fn gradients_only_where_asked() {
    // A tape sees only ops connected to what it watches; the rest is not even recorded.
    let x = Tensor::from_slice(&[1.0f32, 2.0], &[1, 2]).unwrap();
    let w = ff::Variable::new(Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25], &[2, 2]).unwrap()).unwrap();
    let tape = GradientTape::new();
    let y = x.matmul(w.value()).unwrap().reduce_sum(None, false).unwrap();
    let g = tape.gradient(&y, &[&x as &dyn ff::GradSource, &w]);
    let g = g.unwrap();
    assert!(g[0].is_none(), "the batch is not watched");
    assert_eq!(vals(g[1].as_ref().unwrap()), vec![1.0, 1.0, 2.0, 2.0]);
}

#[test]
fn no_gradient_is_a_typed_error() {
    let idx = Tensor::from_vec(vec![0i64, 1, 0, 1], &[2, 2]).unwrap();
    let v = Tensor::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    let tape = GradientTape::new();
    tape.watch(&v);
    let sp = ff::SparseTensor::new_with(&idx, &v, [2, 2], ff::SparseOptions { validate: false }).unwrap();
    let c = ff::sparse::coalesce(&sp).unwrap();
    let e = tape.gradient(c.values(), &[&v]).unwrap_err();
    assert!(matches!(e, ff::Error::NoGradient { op: "sparse::segment_sum", .. }), "{e}");
    assert_eq!(e.location().map(|l| l.file()), Some(file!()), "the error points at the gradient call");
}

// ---- control flow, gradients in graphs, function calls, second order ----------------------

#[test]
fn fd_through_cond() {
    // Eagerly the branch just runs; traced, the predicate is symbolic and a `cond` node holds
    // both branches, whose gradient is a `cond` of the branches' gradients.
    let cases = [
        case("cond then", vec![pos(&[3], 1), x(&[3], 2)], &[0, 1], |x| {
            let p = x[0].reduce_sum(None, false)?.greater(0.0)?;
            ff::cond(&p, || &x[0].square()? * &x[1], || x[1].sin())
        }),
        case("cond else", vec![f64s(&[3], 3, -2.0, -0.5), x(&[3], 4)], &[0, 1], |x| {
            let p = x[0].reduce_sum(None, false)?.greater(0.0)?;
            ff::cond(&p, || &x[0].square()? * &x[1], || &x[1].sin()? * &x[0])
        }),
        case("cond, two outputs", vec![pos(&[2], 5)], &[0], |x| {
            let p = x[0].reduce_sum(None, false)?.greater(0.0)?;
            let (a, b) = ff::cond(&p, || Ok((x[0].exp()?, x[0].square()?)), || Ok((x[0].clone(), x[0].clone())))?;
            &a * &b
        }),
    ];
    cases.iter().for_each(check);
}

#[test]
fn cond_reading_a_variable_differentiates_in_a_graph() {
    let w = ff::Variable::new(Tensor::from_slice(&[1.5f64, -0.5], &[2]).unwrap()).unwrap();
    let w2 = w.clone();
    let f = ff::function(move |x: &Tensor| -> ff::Result<Vec<Tensor>> {
        let tape = GradientTape::new();
        let p = x.reduce_sum(None, false)?.greater(0.0)?;
        let y = ff::cond(&p, || (&w2.value() * x)?.exp(), || x.square())?;
        let l = y.reduce_sum(None, false)?;
        Ok(tape.gradient(&l, &[&w2])?.into_iter().map(|g| g.expect("connected")).collect())
    });
    let xv = Tensor::from_slice(&[0.5f64, 1.0], &[2]).unwrap();
    let g = f.call((&xv,)).unwrap();
    // d/dw sum(exp(w x)) = x exp(w x).
    let want: Vec<f64> = [(1.5f64, 0.5f64), (-0.5, 1.0)].iter().map(|(w, x)| x * (w * x).exp()).collect();
    for (a, b) in vals(&g[0]).iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

#[test]
fn traced_while_loop_gradient_is_a_typed_error_and_eager_loops_just_run() {
    let body = |x: &Tensor| -> ff::Result<Option<Tensor>> {
        let tape = GradientTape::new();
        tape.watch(x);
        let out = ff::while_loop(
            |v| v[1].less(3i64),
            |v| Ok(vec![(&v[0] * &v[0])?, (&v[1] + 1i64)?]),
            vec![x.clone(), Tensor::scalar(0i64)],
        )?;
        Ok(tape.gradient(&out[0], &[x])?.remove(0))
    };
    // Eagerly: x^8, so 8 x^7.
    let x = Tensor::scalar(1.5f64);
    let g = body(&x).unwrap().unwrap();
    assert!((vals(&g)[0] - 8.0 * 1.5f64.powi(7)).abs() < 1e-9);
    let f = ff::function(move |x: &Tensor| body(x).map(|g| g.expect("connected")));
    let e = f.call((&x,)).unwrap_err();
    assert!(matches!(e, ff::Error::NoGradient { op: "while_loop", .. }), "{e}");
}

/// A small regression model, trained one step at a time: forward, loss, gradient, update.
fn train_step(w: &ff::Variable, b: &ff::Variable, x: &Tensor, y: &Tensor) -> ff::Result<Tensor> {
    let tape = GradientTape::new();
    let h = (&x.matmul(w.value())? + &b.value())?.tanh()?;
    let loss = (&h - y)?.square()?.reduce_mean(None, false)?;
    let g = tape.gradient(&loss, &[w, b])?;
    let (gw, gb) = (g[0].clone().expect("w is connected"), g[1].clone().expect("b is connected"));
    let (uw, ub): (Tensor, Tensor) = ((&gw * 0.5)?, (&gb * 0.5)?);
    w.assign_sub(&uw)?;
    b.assign_sub(&ub)?;
    Ok(loss)
}

#[test]
fn traced_training_step_matches_eager_and_holds_the_backward_pass() {
    let (x, y) = (f64s(&[8, 3], 1, -1.0, 1.0), f64s(&[8, 2], 2, -0.5, 0.5));
    let w0 = f64s(&[3, 2], 3, -0.5, 0.5);
    let b0 = Tensor::from_vec(vec![0.0f64, 0.0], &[2]).unwrap();
    let (we, be) = (ff::Variable::new(&w0).unwrap(), ff::Variable::new(&b0).unwrap());
    let (wt, bt) = (ff::Variable::new(&w0).unwrap(), ff::Variable::new(&b0).unwrap());
    let (wt2, bt2) = (wt.clone(), bt.clone());
    let step = ff::function(move |x: &Tensor, y: &Tensor| train_step(&wt2, &bt2, x, y));
    let mut losses = vec![];
    for _ in 0..5 {
        let le = vals(&train_step(&we, &be, &x, &y).unwrap())[0];
        let lt = vals(&step.call((&x, &y)).unwrap())[0];
        assert!((le - lt).abs() <= 1e-12 * le.abs(), "loss eager {le} vs traced {lt}");
        losses.push(le);
    }
    assert_eq!(step.tracing_count(), 1);
    assert!(losses[4] < losses[0], "the loss falls: {losses:?}");
    for (a, b) in [(&we, &wt), (&be, &bt)] {
        for (p, q) in vals(&a.value()).iter().zip(vals(&b.value())) {
            assert!((p - q).abs() <= 1e-12, "{p} vs {q}");
        }
    }
    // The traced graph holds the backward pass: the forward matmul and the gradient's one
    // for w (none for x, which nobody asked about), tanh's derivative, the updates.
    let cf = step.get_concrete_function((&x, &y)).unwrap();
    let ops = cf.graph().op_counts();
    assert_eq!(ops.get("matmul"), Some(&2), "{}", cf.graph());
    assert_eq!(ops.get("assign_sub"), Some(&2));
    assert_eq!(ops.get("read_variable"), Some(&2));
    assert!(ops.get("reduce_sum").is_some_and(|&n| n >= 1), "the bias gradient sums the batch");
}

#[test]
fn function_called_under_an_eager_tape_is_differentiable() {
    let v = ff::Variable::new(Tensor::from_slice(&[0.5f64, 2.0], &[2]).unwrap()).unwrap();
    let v2 = v.clone();
    let f = ff::function(move |x: &Tensor, y: &Tensor| -> ff::Result<(Tensor, Tensor)> {
        let a = (&x.sin()? * &v2.value())?;
        Ok(((&a * y)?, y.clone()))
    });
    let (x, y) = (f64s(&[2], 1, -1.0, 1.0), f64s(&[2], 2, -1.0, 1.0));
    for round in 0..2 {
        let tape = GradientTape::new();
        tape.watch(&x);
        tape.watch(&y);
        let (out, same_y) = f.call((&x, &y)).unwrap();
        let l = (&out.reduce_sum(None, false).unwrap() + &same_y.reduce_sum(None, false).unwrap()).unwrap();
        let g = tape.gradient(&l, &[&x as &dyn ff::GradSource, &y, &v]).unwrap();
        let (xs, ys, vs) = (vals(&x), vals(&y), vals(&v.value()));
        for i in 0..2 {
            let gx = xs[i].cos() * vs[i] * ys[i];
            let gy = xs[i].sin() * vs[i] + 1.0; // the returned y counts once
            let gv = xs[i].sin() * ys[i];
            for (k, want) in [gx, gy, gv].into_iter().enumerate() {
                let got = vals(g[k].as_ref().expect("connected"))[i];
                assert!((got - want).abs() < 1e-12, "round {round} source {k}[{i}]: {got} vs {want}");
            }
        }
    }
    assert_eq!(f.tracing_count(), 1);
}

#[test]
fn nested_tapes_give_second_derivatives() {
    let x = Tensor::scalar(1.5f64);
    let outer = GradientTape::new();
    outer.watch(&x);
    let inner = GradientTape::new();
    inner.watch(&x);
    let y = (&(&x * &x).unwrap() * &x).unwrap(); // x^3
    let dy = inner.gradient(&y, &[&x]).unwrap().remove(0).unwrap(); // 3x^2
    let d2y = outer.gradient(&dy, &[&x]).unwrap().remove(0).unwrap(); // 6x
    assert!((vals(&dy)[0] - 3.0 * 1.5 * 1.5).abs() < 1e-12);
    assert!((vals(&d2y)[0] - 9.0).abs() < 1e-12);
}

/// Timing of one MLP training step (784-256-10, batch 128, f32), eager and traced. Not a
/// benchmark (see `benches/`): run with `--ignored --nocapture` for a quick look.
#[test]
#[ignore]
fn mlp_step_timing() {
    let x = f64s(&[128, 784], 1, 0.0, 1.0).cast(DType::F32).unwrap();
    let labels =
        ff::one_hot(Tensor::from_vec((0..128).map(|i| i % 10).collect::<Vec<i64>>(), &[128]).unwrap(), 10).unwrap();
    let mk = |s, shape: &[usize], a: f64| ff::Variable::new(f64s(shape, s, -a, a).cast(DType::F32).unwrap()).unwrap();
    let vars = [mk(2, &[784, 256], 0.08), mk(3, &[256], 0.0), mk(4, &[256, 10], 0.15), mk(5, &[10], 0.0)];
    let step = |v: &[ff::Variable], x: &Tensor, y: &Tensor| -> ff::Result<Tensor> {
        let tape = GradientTape::new();
        let h = (&x.matmul(v[0].value())? + &v[1].value())?.relu()?;
        let logits = (&h.matmul(v[2].value())? + &v[3].value())?;
        let loss = (y * &logits.log_softmax(-1)?)?.reduce_sum(Some(&[-1]), false)?.reduce_mean(None, false)?.neg()?;
        let g = tape.gradient(&loss, v)?;
        for (var, g) in v.iter().zip(g) {
            let u: Tensor = (&g.expect("connected") * 0.1f32)?;
            var.assign_sub(&u)?;
        }
        Ok(loss)
    };
    let v2 = vars.clone();
    let traced = ff::function(move |x: &Tensor, y: &Tensor| step(&v2, x, y));
    let time = |f: &dyn Fn() -> f32| {
        for _ in 0..5 {
            f();
        }
        let t = std::time::Instant::now();
        let n = 50;
        for _ in 0..n {
            f();
        }
        t.elapsed().as_secs_f64() * 1e3 / n as f64
    };
    let e = time(&|| vals(&step(&vars, &x, &labels).unwrap())[0] as f32);
    let t = time(&|| vals(&traced.call((&x, &labels)).unwrap())[0] as f32);
    let cf = traced.get_concrete_function((&x, &labels)).unwrap();
    println!("{}", cf.optimized_graph());
    println!("mlp step: eager {e:.3} ms, traced {t:.3} ms, ratio {:.2}", e / t);
}

#[test]
fn traced_variable_read_twice_sums_and_f32_matches_f64() {
    let w64 = f64s(&[3, 2], 7, -1.0, 1.0);
    let x64 = f64s(&[4, 3], 8, -1.0, 1.0);
    let body = |w: &ff::Variable, x: &Tensor| -> ff::Result<Tensor> {
        let tape = GradientTape::new();
        let h = x.matmul(w.value())?.sigmoid()?;
        let l = (&h * &x.matmul(w.value())?)?.reduce_sum(None, false)?; // w read twice
        Ok(tape.gradient(&l, &[w])?.remove(0).expect("connected"))
    };
    let want = body(&ff::Variable::new(&w64).unwrap(), &x64).unwrap();
    for dt in [DType::F64, DType::F32] {
        let w = ff::Variable::new(w64.cast(dt).unwrap()).unwrap();
        let w2 = w.clone();
        let f = ff::function(move |x: &Tensor| body(&w2, x));
        let got = f.call((&x64.cast(dt).unwrap(),)).unwrap();
        assert_eq!(got.dtype(), dt);
        let tol = if dt == DType::F64 { 1e-12 } else { 1e-5 };
        for (a, b) in vals(&got).iter().zip(vals(&want)) {
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{dt}: {a} vs {b}");
        }
    }
}

#[test]
fn unknown_batch_dim_training_step() {
    // An input_signature with an unknown batch dim: the gradient of the mean and of the
    // broadcast bias cannot use static shapes, and still match eager.
    let w0 = f64s(&[3, 2], 3, -0.5, 0.5);
    let b0 = Tensor::from_vec(vec![0.1f64, -0.1], &[2]).unwrap();
    let (we, be) = (ff::Variable::new(&w0).unwrap(), ff::Variable::new(&b0).unwrap());
    let (wt, bt) = (ff::Variable::new(&w0).unwrap(), ff::Variable::new(&b0).unwrap());
    let sig =
        vec![ff::TensorSpec::new(&[None, Some(3)], DType::F64), ff::TensorSpec::new(&[None, Some(2)], DType::F64)];
    let opts = FunctionOptions { input_signature: Some(sig), ..Default::default() };
    let step = ff::function_with(opts, move |x: &Tensor, y: &Tensor| train_step(&wt, &bt, x, y));
    for n in [5usize, 8, 3] {
        let (x, y) = (f64s(&[n, 3], n as u64, -1.0, 1.0), f64s(&[n, 2], 10 + n as u64, -0.5, 0.5));
        let le = vals(&train_step(&we, &be, &x, &y).unwrap())[0];
        let lt = vals(&step.call((&x, &y)).unwrap())[0];
        assert!((le - lt).abs() <= 1e-12 * le.abs(), "batch {n}: loss eager {le} vs traced {lt}");
    }
    assert_eq!(step.tracing_count(), 1);
}

#[test]
fn half_precision_gradients_follow_f64() {
    // f16 and bf16 run the same rules; their gradients match f64 to their precision.
    let x64 = f64s(&[2, 3], 21, -1.0, 1.0);
    let w64 = f64s(&[3, 2], 22, -1.0, 1.0);
    let grads = |dt: DType| -> Vec<Vec<f64>> {
        let (x, w) = (x64.cast(dt).unwrap(), w64.cast(dt).unwrap());
        let tape = GradientTape::new();
        tape.watch(&x);
        tape.watch(&w);
        let y = x.matmul(&w).unwrap().tanh().unwrap().softmax(-1).unwrap().reduce_max(Some(&[0]), false).unwrap();
        let g = tape.gradient(&y, &[&x, &w]).unwrap();
        g.iter().map(|g| vals(g.as_ref().expect("connected"))).collect()
    };
    let want = grads(DType::F64);
    for (dt, tol) in [(DType::F16, 1e-2), (DType::BF16, 5e-2), (DType::F32, 1e-5)] {
        for (a, b) in grads(dt).iter().flatten().zip(want.iter().flatten()) {
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{dt}: {a} vs {b}");
        }
    }
}
