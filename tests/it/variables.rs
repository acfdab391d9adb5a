//! Variable updates: `assign_add`/`assign_sub` write over the variable's buffer when nothing
//! else holds it (no allocation, as TF's ResourceApply kernels), and never when a tensor read
//! earlier is still alive (tensors are immutable), eagerly and in a traced step, where an
//! update by `lr * a^T · b` runs as one product accumulated into the variable.

use ferroflow as ff;

fn ptr(v: &ff::Variable) -> usize {
    v.value().as_ndarray::<f32>().unwrap().as_ptr() as usize
}

#[test]
fn updates_are_in_place_when_no_read_is_alive() -> ff::Result<()> {
    let v = ff::Variable::new(ff::ones(&[1000], ff::DType::F32)?)?;
    let before = ptr(&v);
    // Checked after each update: a copying update allocates while the old buffer is alive,
    // so its pointer must differ (two in a row could get the first buffer back from the pool).
    v.assign_sub(ff::full(&[1000], 0.25f32)?)?;
    assert_eq!(ptr(&v), before, "assign_sub allocated a new buffer");
    v.assign_add(0.5f32)?;
    assert_eq!(ptr(&v), before, "assign_add allocated a new buffer");
    let want = ndarray::Array1::from_elem(1000, 1.25f32).into_dyn();
    assert_eq!(v.value().to_ndarray::<f32>()?, want);
    Ok(())
}

#[test]
fn a_live_read_keeps_its_values() -> ff::Result<()> {
    let v = ff::Variable::new(ff::ones(&[4], ff::DType::F32)?)?;
    let old = v.value();
    v.assign_sub(ff::full(&[4], 1.0f32)?)?;
    assert_eq!(old.to_ndarray::<f32>()?, ndarray::Array1::from_elem(4, 1.0f32).into_dyn());
    assert_eq!(v.value().to_ndarray::<f32>()?, ndarray::Array1::from_elem(4, 0.0f32).into_dyn());
    Ok(())
}

#[test]
fn a_traced_update_is_in_place_and_matches_eager() -> ff::Result<()> {
    // 8 columns: the thin-product kernel; 40: the wide one (`gemm`).
    for cols in [8, 40] {
        traced_update_is_in_place_and_matches_eager(cols)?;
    }
    Ok(())
}

fn traced_update_is_in_place_and_matches_eager(cols: usize) -> ff::Result<()> {
    let x = ff::random::normal(&[64, 32], ff::DType::F32, Some(3))?;
    let mk = || ff::Variable::new(ff::random::normal(&[32, cols], ff::DType::F32, Some(4)).unwrap()).unwrap();
    let (eager, traced) = (mk(), mk());
    let step = |v: &ff::Variable, x: &ff::Tensor| -> ff::Result<ff::Tensor> {
        let y = x.matmul(v.value())?;
        v.assign_sub((ff::matmul_with(x, &y, true, false)? * 0.01f32)?)?;
        y.reduce_sum(None, false)
    };
    let tv = traced.clone();
    let f = ff::function(move |x: &ff::Tensor| step(&tv, x));
    f.call(&x)?;
    step(&eager, &x)?;
    let before = ptr(&traced);
    for _ in 0..3 {
        let prof = ff::profiler::Profiler::start();
        f.call(&x)?;
        let names: Vec<_> = prof.stop().thread_events().iter().map(|e| e.name).collect();
        // The update and its matmul are one step: the product accumulates into the buffer.
        assert!(names.contains(&"assign_matmul") && !names.contains(&"fused_matmul"), "{names:?}");
        step(&eager, &x)?;
        assert_eq!(ptr(&traced), before, "the traced update allocated a new buffer");
    }
    let (a, b) = (eager.value().to_ndarray::<f32>()?, traced.value().to_ndarray::<f32>()?);
    for (p, q) in a.iter().zip(b.iter()) {
        assert!((p - q).abs() <= 1e-5 * (1.0 + p.abs()), "{p} vs {q}");
    }
    Ok(())
}

#[test]
fn a_merged_update_with_a_live_read_leaves_the_read_alone() -> ff::Result<()> {
    // The step returns the weights it read: the update cannot write over them.
    let a = ff::random::normal(&[6, 4], ff::DType::F64, Some(1))?;
    let b = ff::random::normal(&[6, 3], ff::DType::F64, Some(2))?;
    let v = ff::Variable::new(ff::random::normal(&[4, 3], ff::DType::F64, Some(3))?)?;
    let vc = v.clone();
    let f = ff::function(move |a: &ff::Tensor, b: &ff::Tensor| {
        let w = vc.value();
        vc.assign_sub((ff::matmul_with(a, b, true, false)? * 0.5f64)?)?;
        Ok(w)
    });
    let w0 = v.value().to_ndarray::<f64>()?;
    let read = f.call((&a, &b))?.to_ndarray::<f64>()?;
    assert_eq!(read, w0);
    assert_updated(&v, w0, &a, &b)
}

/// A merged update moves up to run as soon as it may: after its operands and after the
/// earlier reads of its variable (and their users), not after later, unrelated work. In a
/// training step that is each layer's update right after its gradient's operands, while
/// they are in cache. The read still sees the old weights.
#[test]
fn a_merged_update_runs_early_but_after_the_reads_before_it() -> ff::Result<()> {
    let a = ff::random::normal(&[6, 4], ff::DType::F64, Some(1))?;
    let b = ff::random::normal(&[6, 3], ff::DType::F64, Some(2))?;
    let c = ff::random::normal(&[48, 48], ff::DType::F64, Some(5))?;
    let v = ff::Variable::new(ff::random::normal(&[4, 3], ff::DType::F64, Some(3))?)?;
    let w0 = v.value().to_ndarray::<f64>()?;
    let vc = v.clone();
    // Program order: the update's product, a read and its user, unrelated work, the update.
    let f = ff::function(move |a: &ff::Tensor, b: &ff::Tensor, c: &ff::Tensor| {
        let g = ff::matmul_with(a, b, true, false)?;
        let seen = (vc.value() * 2.0f64)?;
        let other = c.matmul(c)?.reduce_sum(None, false)?;
        vc.assign_sub((g * 0.5f64)?)?;
        Ok((seen, other))
    });
    f.call((&a, &b, &c))?;
    v.assign(ff::Tensor::from(w0.clone()))?;
    let prof = ff::profiler::Profiler::start();
    let (seen, _) = f.call((&a, &b, &c))?;
    let names: Vec<_> = prof.stop().thread_events().iter().map(|e| e.name).collect();
    let at = |n: &str| names.iter().position(|m| *m == n);
    let (update, mul, other) = (at("assign_matmul"), at("mul"), at("matmul"));
    assert!(update.is_some() && mul.is_some() && other.is_some(), "{names:?}");
    assert!(
        mul < update && update < other,
        "the update runs after the read's user, before the unrelated product: {names:?}"
    );
    assert_eq!(seen.to_ndarray::<f64>()?, &w0 * 2.0, "the read saw the updated weights");
    assert_updated(&v, w0, &a, &b)
}

/// `v` holds `w0 - 0.5 aᵀ·b` (an ndarray reference).
fn assert_updated(v: &ff::Variable, w0: ndarray::ArrayD<f64>, a: &ff::Tensor, b: &ff::Tensor) -> ff::Result<()> {
    let two_d = |t: ndarray::ArrayD<f64>| t.into_dimensionality::<ndarray::Ix2>().unwrap();
    let (an, bn) = (two_d(a.to_ndarray::<f64>()?), two_d(b.to_ndarray::<f64>()?));
    let want = &two_d(w0) - &(an.t().dot(&bn) * 0.5);
    let got = two_d(v.value().to_ndarray::<f64>()?);
    for (p, q) in want.iter().zip(got.iter()) {
        assert!((p - q).abs() < 1e-12, "{p} vs {q}");
    }
    Ok(())
}
