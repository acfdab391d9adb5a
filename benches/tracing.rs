//! Traced-function speed, each beside its baseline in the same run: tracing a 1,000-op
//! function (target under 5 ms), and a cached call of a traced 10-op function on 1-element
//! tensors against the same 10 ops run eagerly (target: at least 2x faster).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ferroflow as ff;
use ff::Tensor;

fn chain(x: &Tensor, y: &Tensor, n: usize) -> ff::Result<Tensor> {
    let mut t = x.clone();
    for i in 0..n {
        t = if i % 2 == 0 { (&t + y)? } else { (&t * y)? };
    }
    Ok(t)
}

fn tracing(c: &mut Criterion) {
    let mut g = c.benchmark_group("trace_1000_ops");
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[4]).unwrap();
    g.bench_function("trace_and_compile", |b| {
        b.iter(|| {
            let f = ff::function(|x: &Tensor, y: &Tensor| chain(x, y, 1000));
            black_box(f.get_concrete_function((&x, &x)).unwrap())
        })
    });
    g.bench_function("eager_baseline_same_ops", |b| b.iter(|| black_box(chain(&x, &x, 1000).unwrap())));
    g.finish();
}

fn cached_call(c: &mut Criterion) {
    let mut g = c.benchmark_group("call_10_ops_1elem");
    let x = Tensor::from_slice(&[1.0f32], &[1]).unwrap();
    let y = Tensor::from_slice(&[0.5f32], &[1]).unwrap();
    let f = ff::function(|x: &Tensor, y: &Tensor| chain(x, y, 10));
    f.call((&x, &y)).unwrap();
    g.bench_function("traced_cached", |b| b.iter(|| black_box(f.call((black_box(&x), black_box(&y))).unwrap())));
    g.bench_function("eager_baseline", |b| b.iter(|| black_box(chain(black_box(&x), black_box(&y), 10).unwrap())));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = tracing, cached_call }
criterion_main!(benches);
