//! `ff::nn`: initialisers (seeded, with the statistics their formulas promise), `Dense` and
//! `Sequential` against ndarray references, eager and traced, the losses against f64
//! references (including logits that would overflow a naive softmax), and every error.

use ferroflow as ff;
use ff::nn::{Activation, Dense, DenseOptions, Initializer, Layer, Sequential};
use ff::{DType, Error, Tensor};
use ndarray::{Array2, ArrayD, Axis, IxDyn};

fn f64s(t: &Tensor) -> Vec<f64> {
    t.cast(DType::F64).unwrap().to_ndarray::<f64>().unwrap().iter().copied().collect()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

#[test]
fn initialisers_are_seeded_and_have_their_formula_statistics() {
    let shape = [784, 256];
    let (fi, fo) = (784.0f64, 256.0f64);
    for (init, limit, std) in [
        (Initializer::GlorotUniform, Some((6.0 / (fi + fo)).sqrt()), (2.0 / (fi + fo)).sqrt()),
        (Initializer::HeUniform, Some((6.0 / fi).sqrt()), (2.0 / fi).sqrt()),
        (Initializer::GlorotNormal, None, (2.0 / (fi + fo)).sqrt()),
        (Initializer::HeNormal, None, (2.0 / fi).sqrt()),
    ] {
        let a = init.init(&shape, DType::F32, Some(7)).unwrap();
        let b = init.init(&shape, DType::F32, Some(7)).unwrap();
        let c = init.init(&shape, DType::F32, Some(8)).unwrap();
        assert_eq!(f64s(&a), f64s(&b), "{init:?}: same seed, same weights");
        assert_ne!(f64s(&a), f64s(&c), "{init:?}: another seed, other weights");
        let v = f64s(&a);
        let (m, s) = mean_std(&v);
        assert!(m.abs() < 0.01 * std * 10.0, "{init:?}: mean {m}");
        assert!((s / std - 1.0).abs() < 0.02, "{init:?}: std {s}, formula {std}");
        let bound = limit.unwrap_or(2.0 * std / 0.879_625_661_034_239_8);
        assert!(v.iter().all(|x| x.abs() <= bound * (1.0 + 1e-6)), "{init:?}: a value beyond {bound}");
    }
    let z = ff::nn::init::zeros(&[3, 2], DType::F64).unwrap();
    assert_eq!(f64s(&z), vec![0.0; 6]);
    assert_eq!(ff::nn::init::fans(&[3, 3, 16, 32]), (144, 288));
    let e = Initializer::GlorotUniform.init(&[2, 2], DType::I32, Some(1)).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
}

#[test]
fn truncated_normal_stays_within_two_and_is_a_prefix() {
    let long = f64s(&ff::random::truncated_normal(&[50_000], DType::F64, Some(3)).unwrap());
    let short = f64s(&ff::random::truncated_normal(&[100], DType::F64, Some(3)).unwrap());
    assert_eq!(&long[..100], &short[..]);
    assert!(long.iter().all(|x| x.abs() <= 2.0));
    let (m, s) = mean_std(&long);
    assert!(m.abs() < 0.02 && (s - 0.8796).abs() < 0.01, "mean {m} std {s}");
}

/// `act(x @ w + b)` in ndarray, f64.
fn dense_ref(x: &Array2<f64>, w: &Array2<f64>, b: &[f64], relu: bool) -> Array2<f64> {
    let mut y = x.dot(w);
    for mut row in y.axis_iter_mut(Axis(0)) {
        for (v, bb) in row.iter_mut().zip(b) {
            *v += bb;
            if relu && *v < 0.0 {
                *v = 0.0;
            }
        }
    }
    y
}

fn as2(t: &Tensor) -> Array2<f64> {
    t.cast(DType::F64).unwrap().to_ndarray::<f64>().unwrap().into_dimensionality().unwrap()
}

#[test]
fn dense_matches_ndarray_eager_and_traced() {
    let layer = Dense::with_options(
        5,
        3,
        DenseOptions { bias_initializer: Initializer::Constant(0.25), seed: Some(11), ..Default::default() },
    )
    .unwrap()
    .with_activation(Activation::Relu);
    let x = ff::random::normal(&[4, 5], DType::F32, Some(2)).unwrap();
    let w = as2(&layer.kernel().value());
    let b = f64s(&layer.bias().unwrap().value());
    let want = dense_ref(&as2(&x), &w, &b, true);
    let got = as2(&layer.call(&x).unwrap());
    for (g, r) in got.iter().zip(want.iter()) {
        assert!((g - r).abs() < 1e-5, "{g} vs {r}");
    }
    let l2 = layer.clone();
    let f = ff::function(move |x: &Tensor| l2.call(x));
    let traced = as2(&f.call((&x,)).unwrap());
    assert_eq!(traced, got, "traced Dense equals eager");
    // Leading dims: [2, 4, 5] -> [2, 4, 3], each [4, 5] slice like the 2-D call.
    let x3 = ff::stack(&[x.clone(), x.clone()], 0).unwrap();
    let y3 = layer.call(&x3).unwrap();
    assert_eq!(y3.shape().dims(), &[2, 4, 3]);
    let y3a: ArrayD<f32> = y3.to_ndarray().unwrap();
    assert_eq!(y3a.index_axis(Axis(0), 1).mapv(|v| v as f64), got.into_dyn());
    assert_eq!(layer.trainable_variables().len(), 2);
}

#[test]
fn dense_errors() {
    let layer = Dense::new(5, 3, Some(1)).unwrap();
    let e = layer.call(&ff::zeros(&[4, 6], DType::F32).unwrap()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "Dense::call", .. }), "{e}");
    let e = layer.call(&ff::zeros(&[5], DType::F32).unwrap()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }) && e.to_string().contains("expand_dims"), "{e}");
    let e = layer.call(&ff::zeros(&[2, 5], DType::F64).unwrap()).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    let e = Dense::new(0, 3, None).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
}

#[test]
fn sequential_composes_and_names_its_variables() {
    let model = Sequential::new(vec![
        Box::new(Dense::new(4, 8, Some(1)).unwrap().with_activation(Activation::Tanh)),
        Box::new(Dense::new(8, 2, Some(2)).unwrap()),
    ])
    .with(Activation::Softmax);
    let names: Vec<String> = model.named_variables().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0/kernel", "0/bias", "1/kernel", "1/bias"]);
    let x = ff::random::uniform(&[3, 4], DType::F32, Some(5)).unwrap();
    let l = model.layers();
    let manual = l[2].call(&l[1].call(&l[0].call(&x).unwrap()).unwrap()).unwrap();
    let got = model.call(&x).unwrap();
    assert_eq!(f64s(&got), f64s(&manual));
    // Rows of a softmax sum to one.
    for row in as2(&got).rows() {
        assert!((row.sum() - 1.0).abs() < 1e-6);
    }
    let nested = Sequential::default().with(model.clone());
    assert_eq!(nested.named_variables()[0].0, "0/0/kernel");
    assert!(format!("{model:?}").contains("1/kernel: [8, 2] f32"));
}

/// `-sum(labels * log_softmax(logits))` per row, in f64 with the max subtracted.
fn ce_ref(labels: &[Vec<f64>], logits: &[Vec<f64>]) -> Vec<f64> {
    labels
        .iter()
        .zip(logits)
        .map(|(l, z)| {
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            -l.iter().zip(z).map(|(a, b)| a * (b - lse)).sum::<f64>()
        })
        .collect()
}

#[test]
fn cross_entropies_match_a_stable_reference() {
    let logits = vec![vec![1.0, 2.0, 3.0], vec![1000.0, -1000.0, 0.0], vec![-50.0, -50.5, -49.0]];
    let labels = vec![vec![0.0, 0.0, 1.0], vec![0.0, 1.0, 0.0], vec![0.2, 0.3, 0.5]];
    let t = |v: &Vec<Vec<f64>>| Tensor::from(Array2::from_shape_fn((3, 3), |(i, j)| v[i][j]));
    let want = ce_ref(&labels, &logits);
    let got = f64s(&ff::nn::softmax_cross_entropy_with_logits(t(&labels), t(&logits)).unwrap());
    for (g, w) in got.iter().zip(&want) {
        assert!(g.is_finite() && (g - w).abs() <= 1e-9 * w.abs().max(1.0), "{g} vs {w}");
    }
    assert!((got[1] - 2000.0).abs() < 1e-9, "a logit gap of 2000 gives loss 2000, not inf");
    // Sparse labels give the same as their one-hot form.
    let sparse =
        ff::nn::sparse_softmax_cross_entropy_with_logits(Tensor::from_slice(&[2i64, 1, 0], &[3]).unwrap(), t(&logits))
            .unwrap();
    let hot = vec![vec![0.0, 0.0, 1.0], vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0]];
    let want = ce_ref(&hot, &logits);
    for (g, w) in f64s(&sparse).iter().zip(&want) {
        assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{g} vs {w}");
    }
    // f32 logits of 100 (exp overflows f32 at 89).
    let z = Tensor::from_slice(&[100.0f32, 0.0], &[1, 2]).unwrap();
    let y = Tensor::from_slice(&[0.0f32, 1.0], &[1, 2]).unwrap();
    let l = f64s(&ff::nn::softmax_cross_entropy_with_logits(&y, &z).unwrap());
    assert!((l[0] - 100.0).abs() < 1e-4, "{l:?}");
}

#[test]
fn mse_is_the_mean_over_the_last_axis() {
    let a = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64 * 0.3);
    let b = Array2::from_shape_fn((3, 4), |(i, j)| ((i + j) % 3) as f64);
    let want: Vec<f64> = (&a - &b).mapv(|d| d * d).mean_axis(Axis(1)).unwrap().to_vec();
    let got = f64s(&ff::nn::mse(Tensor::from(a), Tensor::from(b)).unwrap());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12);
    }
}

#[test]
fn loss_errors_are_variants() {
    let z = ff::zeros(&[2, 3], DType::F32).unwrap();
    let e = ff::nn::softmax_cross_entropy_with_logits(ff::zeros(&[2, 4], DType::F32).unwrap(), &z).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "softmax_cross_entropy_with_logits", .. }), "{e}");
    let e = ff::nn::softmax_cross_entropy_with_logits(ff::zeros(&[2, 3], DType::F64).unwrap(), &z).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    let e = ff::nn::sparse_softmax_cross_entropy_with_logits(ff::zeros(&[2], DType::F32).unwrap(), &z).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    let e = ff::nn::sparse_softmax_cross_entropy_with_logits(Tensor::from_slice(&[0i64, 3], &[2]).unwrap(), &z)
        .unwrap_err();
    assert!(matches!(e, Error::IndexOutOfBounds { .. }), "{e}");
    let e =
        ff::nn::sparse_softmax_cross_entropy_with_logits(Tensor::from_slice(&[0i64], &[1]).unwrap(), &z).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    let _ = IxDyn(&[1]);
}
