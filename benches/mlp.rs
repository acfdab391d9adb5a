//! One full training step of an MLP 784-256-10 on a batch of 128 (forward, softmax
//! cross-entropy, backward, SGD update), beside its baselines in one run (read the ratios):
//! - `traced_tape`: the step as one traced function (`GradientTape` inside `ff::function`);
//!   target: at least 1.5x faster than `eager_tape` and 1.6x faster than the ndarray baseline;
//! - `eager_tape`: the same Rust code run eagerly;
//! - `ndarray_baseline`: a hand-written ndarray forward/backward with `dot`, updating the
//!   weights in place (no gradient for the input batch, as in every variant).
//!
//! The step is ~105 MFLOP (two 128x784x256 products, one 128x256x10 and its gradients).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ferroflow as ff;
use ff::{DType, Tensor, Variable};
use ndarray::{Array1, Array2, Axis};

const BATCH: usize = 128;
const IN: usize = 784;
const HIDDEN: usize = 256;
const OUT: usize = 10;
const LR: f32 = 0.01;

/// The batch and labels: inputs in [0, 1), one-hot labels.
fn data() -> (Tensor, Tensor) {
    let x = ff::random::uniform(&[BATCH, IN], DType::F32, Some(7)).unwrap();
    let cls = ff::arange(0i64, BATCH as i64, 1i64).unwrap();
    let cls = (&cls - &(ff::floor_div(&cls, 10i64).unwrap() * 10i64).unwrap()).unwrap();
    let y = ff::one_hot(&cls, OUT).unwrap();
    (x, y)
}

fn init(seed: u64, shape: &[usize]) -> Tensor {
    (ff::random::normal(shape, DType::F32, Some(seed)).unwrap() * 0.05f32).unwrap()
}

/// The same step with the backward pass written out by hand in ferroflow ops (no tape).
fn manual_step(x: &Tensor, y: &Tensor, p: &[Variable; 4]) -> ff::Result<Tensor> {
    let z = (x.matmul(p[0].value())? + p[1].value())?;
    let h = z.relu()?;
    let logits = (h.matmul(p[2].value())? + p[3].value())?;
    let ls = logits.log_softmax(-1)?;
    let loss = ((y * &ls)?.reduce_sum(None, false)? * (-1.0 / BATCH as f32))?;
    let d = ((ls.exp()? - y)? * (1.0 / BATCH as f32))?;
    let dw2 = ff::matmul_with(&h, &d, true, false)?;
    let db2 = d.reduce_sum(Some(&[0]), false)?;
    let dh = ff::matmul_with(&d, p[2].value(), false, true)?;
    let dz = ff::where_(&z.greater(0.0f32)?, &dh, 0.0f32)?;
    let dw1 = ff::matmul_with(x, &dz, true, false)?;
    let db1 = dz.reduce_sum(Some(&[0]), false)?;
    for (v, g) in p.iter().zip([dw1, db1, dw2, db2]) {
        v.assign_sub((g * LR)?)?;
    }
    Ok(loss)
}

/// Forward and backward written out with ferroflow ops, the way a user would with a tape.
#[cfg(any())]
fn tape_step(x: &Tensor, y: &Tensor, p: &[Variable; 4]) -> ff::Result<Tensor> {
    let tape = ff::GradientTape::new();
    let h = (x.matmul(&p[0].value())? + p[1].value())?.relu()?;
    let logits = (h.matmul(&p[2].value())? + p[3].value())?;
    let loss = ff::nn::softmax_cross_entropy_with_logits(y, &logits)?.reduce_mean(None, false)?;
    let grads = tape.gradient(&loss, &[&p[0], &p[1], &p[2], &p[3]])?;
    for (v, g) in p.iter().zip(grads) {
        if let Some(g) = g {
            v.assign_sub((g * LR)?)?;
        }
    }
    Ok(loss)
}

fn params() -> [Variable; 4] {
    [
        Variable::new(init(1, &[IN, HIDDEN])).unwrap(),
        Variable::new(ff::zeros(&[HIDDEN], DType::F32).unwrap()).unwrap(),
        Variable::new(init(2, &[HIDDEN, OUT])).unwrap(),
        Variable::new(ff::zeros(&[OUT], DType::F32).unwrap()).unwrap(),
    ]
}

/// The hand-written ndarray step: forward, stable softmax cross-entropy, backward, SGD.
struct NdMlp {
    w1: Array2<f32>,
    b1: Array1<f32>,
    w2: Array2<f32>,
    b2: Array1<f32>,
}

impl NdMlp {
    fn step(&mut self, x: &Array2<f32>, y: &Array2<f32>) -> f32 {
        let mut h = x.dot(&self.w1) + &self.b1;
        h.mapv_inplace(|v| v.max(0.0));
        let logits = h.dot(&self.w2) + &self.b2;
        // Softmax cross-entropy, stable; dlogits = (softmax - y) / batch.
        let mut d = logits.clone();
        let mut loss = 0.0f32;
        for (mut row, yr) in d.outer_iter_mut().zip(y.outer_iter()) {
            let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            row.mapv_inplace(|v| (v - m).exp());
            let s = row.sum();
            loss += yr.iter().zip(row.iter()).map(|(&t, &e)| -t * (e / s).ln()).sum::<f32>();
            row.zip_mut_with(&yr, |v, &t| *v = (*v / s - t) / BATCH as f32);
        }
        let dw2 = h.t().dot(&d);
        let db2 = d.sum_axis(Axis(0));
        let mut dh = d.dot(&self.w2.t());
        dh.zip_mut_with(&h, |g, &a| {
            if a <= 0.0 {
                *g = 0.0
            }
        });
        let dw1 = x.t().dot(&dh);
        let db1 = dh.sum_axis(Axis(0));
        self.w1.scaled_add(-LR, &dw1);
        self.b1.scaled_add(-LR, &db1);
        self.w2.scaled_add(-LR, &dw2);
        self.b2.scaled_add(-LR, &db2);
        loss / BATCH as f32
    }
}

fn mlp_step(c: &mut Criterion) {
    let (x, y) = data();
    let mut g = c.benchmark_group("mlp_784_256_10_batch128_train_step");
    g.throughput(criterion::Throughput::Elements(BATCH as u64));

    let p = params();
    let manual = {
        let p = p.clone();
        ff::function(move |x: &Tensor, y: &Tensor| manual_step(x, y, &p))
    };
    manual.call((&x, &y)).unwrap();
    g.bench_function("traced_manual", |b| b.iter(|| black_box(manual.call((&x, &y)).unwrap())));
    g.bench_function("eager_manual", |b| b.iter(|| black_box(manual_step(&x, &y, &p).unwrap())));
    #[cfg(any())]
    let traced = {
        let p = p.clone();
        ff::function(move |x: &Tensor, y: &Tensor| tape_step(x, y, &p))
    };
    #[cfg(any())]
    traced.call((&x, &y)).unwrap();
    #[cfg(any())]
    g.bench_function("traced_tape", |b| b.iter(|| black_box(traced.call((&x, &y)).unwrap())));

    #[cfg(any())]
    g.bench_function("eager_tape", |b| b.iter(|| black_box(tape_step(&x, &y, &p).unwrap())));

    let mut nd = NdMlp {
        w1: init(1, &[IN, HIDDEN]).to_ndarray::<f32>().unwrap().into_dimensionality().unwrap(),
        b1: Array1::zeros(HIDDEN),
        w2: init(2, &[HIDDEN, OUT]).to_ndarray::<f32>().unwrap().into_dimensionality().unwrap(),
        b2: Array1::zeros(OUT),
    };
    let (xa, ya) = (
        x.to_ndarray::<f32>().unwrap().into_dimensionality().unwrap(),
        y.to_ndarray::<f32>().unwrap().into_dimensionality().unwrap(),
    );
    g.bench_function("ndarray_baseline", |b| b.iter(|| black_box(nd.step(&xa, &ya))));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(1))
}

criterion_group! { name = benches; config = config(); targets = mlp_step }
criterion_main!(benches);
