//! Training end to end: a small classifier trained with a tape, a loss, an optimizer and a
//! dataset must get its loss below a threshold, eagerly and with a traced step; the traced
//! step traces once and matches the eager one step for step.

use ferroflow as ff;
use ff::data::Dataset;
use ff::nn::{Activation, Dense, Layer, Sequential};
use ff::optim::{Adam, Optimizer, Sgd};
use ff::{DType, Tensor};

/// Three Gaussian blobs in 2-D, 3 classes, `n` points: (features [n, 2], labels [n]).
fn blobs(n: usize, seed: u64) -> (Tensor, Tensor) {
    let centres = [(-2.0f32, 0.0f32), (2.0, 0.0), (0.0, 2.5)];
    let noise = ff::random::normal(&[n, 2], DType::F32, Some(seed)).unwrap().to_ndarray::<f32>().unwrap();
    let x = ndarray::Array2::from_shape_fn((n, 2), |(i, j)| {
        let c = centres[i % 3];
        (if j == 0 { c.0 } else { c.1 }) + 0.6 * noise[[i, j]]
    });
    let y: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
    (Tensor::from(x), Tensor::from_vec(y, &[n]).unwrap())
}

fn model(seed: u64) -> Sequential {
    Sequential::new(vec![
        Box::new(Dense::new(2, 16, Some(seed)).unwrap().with_activation(Activation::Relu)),
        Box::new(Dense::new(16, 3, Some(seed + 1)).unwrap()),
    ])
}

fn loss_of(m: &Sequential, x: &Tensor, y: &Tensor) -> ff::Result<Tensor> {
    ff::nn::sparse_softmax_cross_entropy_with_logits(y, &m.call(x)?)?.reduce_mean(None, false)
}

fn train_step(m: &Sequential, opt: &impl Optimizer, x: &Tensor, y: &Tensor) -> ff::Result<Tensor> {
    let tape = ff::GradientTape::new();
    let loss = loss_of(m, x, y)?;
    let vars = m.trainable_variables();
    let grads = tape.gradient(&loss, &vars)?;
    opt.apply_gradients(&grads, &vars)?;
    Ok(loss)
}

fn accuracy(m: &Sequential, x: &Tensor, y: &Tensor) -> f64 {
    let pred = m.call(x).unwrap().argmax(Some(&[-1]), false).unwrap();
    ff::equal(&pred, y).unwrap().cast(DType::F64).unwrap().reduce_mean(None, false).unwrap().to_scalar::<f64>().unwrap()
}

#[test]
fn eager_training_gets_the_loss_below_a_threshold() {
    let (x, y) = blobs(300, 1);
    let m = model(10);
    let opt = Sgd::with_momentum(0.1, 0.9);
    let ds = Dataset::from_tensor_slices((x.clone(), y.clone())).unwrap().shuffle(300, Some(3)).batch(32);
    let initial = loss_of(&m, &x, &y).unwrap().to_scalar::<f32>().unwrap();
    for _ in 0..15 {
        for b in &ds {
            let (bx, by) = b.unwrap();
            train_step(&m, &opt, &bx, &by).unwrap();
        }
    }
    let fin = loss_of(&m, &x, &y).unwrap().to_scalar::<f32>().unwrap();
    assert!(fin < 0.15 && fin < initial / 5.0, "loss {initial} -> {fin}");
    assert!(accuracy(&m, &x, &y) > 0.95);
}

#[test]
fn a_traced_step_trains_like_the_eager_step() {
    let (x, y) = blobs(256, 2);
    let (eager_model, traced_model) = (model(20), model(20));
    let (eager_opt, traced_opt) = (Adam::new(0.02), Adam::new(0.02));
    let step = {
        let (m, opt) = (traced_model.clone(), traced_opt.clone());
        ff::function(move |x: &Tensor, y: &Tensor| train_step(&m, &opt, x, y))
    };
    let ds =
        Dataset::from_tensor_slices((x.clone(), y.clone())).unwrap().shuffle(256, Some(4)).batch_drop_remainder(64);
    let mut losses = Vec::new();
    for _ in 0..20 {
        for b in &ds {
            let (bx, by) = b.unwrap();
            let le = train_step(&eager_model, &eager_opt, &bx, &by).unwrap().to_scalar::<f32>().unwrap();
            let lt = step.call((&bx, &by)).unwrap().to_scalar::<f32>().unwrap();
            // The graph may fuse and reorder float arithmetic: equal up to rounding.
            assert!((le - lt).abs() <= 1e-2 * le.abs().max(1e-2), "step {}: eager {le}, traced {lt}", losses.len());
            losses.push(lt);
        }
    }
    assert_eq!(step.tracing_count(), 1, "one batch shape, one trace");
    let fin = loss_of(&traced_model, &x, &y).unwrap().to_scalar::<f32>().unwrap();
    assert!(fin < 0.15 && fin < losses[0] / 5.0, "loss {} -> {fin}", losses[0]);
    assert!(accuracy(&traced_model, &x, &y) > 0.95);
    assert_eq!(traced_opt.iterations().unwrap().value().to_scalar::<i64>().unwrap(), losses.len() as i64);
}
