//! `ff::optim`: Sgd (plain, momentum, Nesterov) and Adam against the update rules computed
//! by hand in f64 over several steps, eagerly and inside a traced step (slot variables
//! created on the first trace), `None` gradients skipped, and every error.

use ferroflow as ff;
use ff::optim::{Adam, Optimizer, Sgd};
use ff::{DType, Error, Tensor, Variable};

fn f64s(t: &Tensor) -> Vec<f64> {
    t.cast(DType::F64).unwrap().to_ndarray::<f64>().unwrap().iter().copied().collect()
}

const W0: [f64; 4] = [0.5, -1.5, 2.0, 0.0];

/// The gradient at step `t` (0-based): varies in sign and size across steps.
fn grad(t: usize) -> Vec<f64> {
    W0.iter().enumerate().map(|(i, w)| (w + 1.0) * ((t + i) as f64 * 0.7).sin() + 0.1 * t as f64).collect()
}

enum Rule {
    Sgd { lr: f64, m: f64, nesterov: bool },
    Adam { lr: f64, b1: f64, b2: f64, eps: f64 },
}

/// The weights after `steps` updates, by the TensorFlow formulas, in f64.
fn reference(rule: &Rule, steps: usize) -> Vec<f64> {
    let mut w = W0.to_vec();
    let (mut s1, mut s2) = (vec![0.0; 4], vec![0.0; 4]);
    for t in 0..steps {
        let g = grad(t);
        for i in 0..4 {
            match *rule {
                Rule::Sgd { lr, m, nesterov } => {
                    if m == 0.0 {
                        w[i] -= lr * g[i];
                    } else {
                        s1[i] = m * s1[i] - lr * g[i];
                        w[i] += if nesterov { m * s1[i] - lr * g[i] } else { s1[i] };
                    }
                }
                Rule::Adam { lr, b1, b2, eps } => {
                    let k = (t + 1) as i32;
                    let alpha = lr * (1.0 - b2.powi(k)).sqrt() / (1.0 - b1.powi(k));
                    s1[i] += (g[i] - s1[i]) * (1.0 - b1);
                    s2[i] += (g[i] * g[i] - s2[i]) * (1.0 - b2);
                    w[i] -= alpha * s1[i] / (s2[i].sqrt() + eps);
                }
            }
        }
    }
    w
}

fn run_eager(opt: &impl Optimizer, dtype: DType, steps: usize) -> Vec<f64> {
    let w = Variable::new(Tensor::from_slice(&W0, &[4]).unwrap().cast(dtype).unwrap()).unwrap();
    for t in 0..steps {
        let g = Tensor::from_slice(&grad(t), &[4]).unwrap().cast(dtype).unwrap();
        opt.apply_gradients(&[Some(g)], &[&w]).unwrap();
    }
    assert_eq!(opt.iterations().unwrap().value().to_scalar::<i64>().unwrap(), steps as i64);
    f64s(&w.value())
}

fn close(got: &[f64], want: &[f64], rel: f64) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= rel * w.abs().max(1.0), "got {got:?}, want {want:?}");
    }
}

#[test]
fn sgd_plain_momentum_and_nesterov_follow_the_formulas() {
    let make: [(fn() -> Sgd, Rule); 3] = [
        (|| Sgd::new(0.1), Rule::Sgd { lr: 0.1, m: 0.0, nesterov: false }),
        (|| Sgd::with_momentum(0.05, 0.9), Rule::Sgd { lr: 0.05, m: 0.9, nesterov: false }),
        (|| Sgd::with_momentum(0.05, 0.9).nesterov(true), Rule::Sgd { lr: 0.05, m: 0.9, nesterov: true }),
    ];
    for (opt, rule) in make {
        let want = reference(&rule, 6);
        close(&run_eager(&opt(), DType::F64, 6), &want, 1e-12);
        close(&run_eager(&opt(), DType::F32, 6), &want, 1e-5);
    }
}

#[test]
fn adam_follows_the_formula_with_bias_correction() {
    let rule = Rule::Adam { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-7 };
    let want = reference(&rule, 8);
    close(&run_eager(&Adam::new(0.01), DType::F64, 8), &want, 1e-12);
    close(&run_eager(&Adam::new(0.01), DType::F32, 8), &want, 1e-5);
    let rule = Rule::Adam { lr: 0.1, b1: 0.5, b2: 0.9, eps: 1e-3 };
    close(&run_eager(&Adam::with_params(0.1, 0.5, 0.9, 1e-3), DType::F64, 5), &reference(&rule, 5), 1e-12);
    // The first step moves each weight with a gradient by about lr (the bias-corrected
    // m / sqrt(v) is ±1), and the one with a zero gradient not at all.
    let w1 = run_eager(&Adam::new(0.01), DType::F64, 1);
    for ((a, b), g) in w1.iter().zip(W0).zip(grad(0)) {
        let want = if g == 0.0 { 0.0 } else { 0.01 };
        assert!(((a - b).abs() - want).abs() < 1e-6, "{a} {b} {g}");
    }
}

#[test]
fn a_traced_step_updates_like_the_eager_one() {
    for (name, steps) in [("sgd-momentum", 5usize), ("adam", 5)] {
        let w = Variable::new(Tensor::from_slice(&W0, &[4]).unwrap()).unwrap();
        let (w2, name2) = (w.clone(), name.to_string());
        let sgd = Sgd::with_momentum(0.05, 0.9);
        let adam = Adam::new(0.01);
        let (sgd2, adam2) = (sgd.clone(), adam.clone());
        let step = ff::function(move |g: &Tensor| {
            if name2 == "adam" {
                adam2.apply_gradients(&[Some(g.clone())], &[&w2])?;
            } else {
                sgd2.apply_gradients(&[Some(g.clone())], &[&w2])?;
            }
            Ok(w2.value())
        });
        for t in 0..steps {
            step.call((&Tensor::from_slice(&grad(t), &[4]).unwrap(),)).unwrap();
        }
        assert_eq!(step.tracing_count(), 1);
        let rule = if name == "adam" {
            Rule::Adam { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-7 }
        } else {
            Rule::Sgd { lr: 0.05, m: 0.9, nesterov: false }
        };
        close(&f64s(&w.value()), &reference(&rule, steps), 1e-12);
        let it = if name == "adam" { adam.iterations() } else { sgd.iterations() };
        assert_eq!(it.unwrap().value().to_scalar::<i64>().unwrap(), steps as i64, "{name}");
    }
}

#[test]
fn none_gradients_are_skipped() {
    let a = Variable::new(Tensor::from_slice(&[1.0f32, 2.0], &[2]).unwrap()).unwrap();
    let b = Variable::new(Tensor::from_slice(&[3.0f32], &[1]).unwrap()).unwrap();
    let g = Tensor::from_slice(&[1.0f32], &[1]).unwrap();
    Sgd::new(0.5).apply_gradients(&[None, Some(g)], &[&a, &b]).unwrap();
    assert_eq!(f64s(&a.value()), vec![1.0, 2.0]);
    assert_eq!(f64s(&b.value()), vec![2.5]);
    // A list of owned variables (as Layer::trainable_variables returns) works too.
    let vars = vec![a.clone(), b.clone()];
    Adam::new(0.1).apply_gradients(&[None, None], &vars).unwrap();
    assert_eq!(f64s(&b.value()), vec![2.5]);
}

#[test]
fn optimizer_errors_are_variants() {
    let w = Variable::new(Tensor::from_slice(&[1.0f32, 2.0], &[2]).unwrap()).unwrap();
    let g = Tensor::from_slice(&[1.0f32, 1.0], &[2]).unwrap();
    let e = Sgd::new(0.1).apply_gradients(&[Some(g.clone()), None], &[&w]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { op: "Sgd::apply_gradients", .. }), "{e}");
    let e = Sgd::new(0.1).apply_gradients(&[Some(Tensor::from_slice(&[1.0f32], &[1]).unwrap())], &[&w]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    let e = Adam::new(0.1).apply_gradients(&[Some(g.cast(DType::F64).unwrap())], &[&w]).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    let e = Sgd::new(-0.1).apply_gradients(&[Some(g.clone())], &[&w]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("learning_rate"), "{e}");
    let e = Adam::with_params(0.1, 1.0, 0.999, 1e-7).apply_gradients(&[Some(g.clone())], &[&w]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("beta1"), "{e}");
    let iv = Variable::new(Tensor::from_slice(&[1i32], &[1]).unwrap()).unwrap();
    let e = Sgd::new(0.1).apply_gradients(&[Some(Tensor::from_slice(&[1i32], &[1]).unwrap())], &[&iv]).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    assert_eq!(f64s(&w.value()), vec![1.0, 2.0], "failed steps change nothing");
}
