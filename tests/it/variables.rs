//! Variable updates: `assign_add`/`assign_sub` write over the variable's buffer when nothing
//! else holds it (no allocation, as TF's ResourceApply kernels), and never when a tensor read
//! earlier is still alive (tensors are immutable), eagerly and in a traced step.

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
    let x = ff::random::normal(&[64, 32], ff::DType::F32, Some(3))?;
    let mk = || ff::Variable::new(ff::random::normal(&[32, 8], ff::DType::F32, Some(4)).unwrap()).unwrap();
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
        f.call(&x)?;
        step(&eager, &x)?;
        assert_eq!(ptr(&traced), before, "the traced update allocated a new buffer");
    }
    let (a, b) = (eager.value().to_ndarray::<f32>()?, traced.value().to_ndarray::<f32>()?);
    for (p, q) in a.iter().zip(b.iter()) {
        assert!((p - q).abs() <= 1e-5 * (1.0 + p.abs()), "{p} vs {q}");
    }
    Ok(())
}
