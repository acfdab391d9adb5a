use ferroflow as ff;
use ff::{DType, Tensor, TensorSpec};

#[test]
fn scratch_explore() {
    let c = Tensor::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let idx = Tensor::from_slice(&[0i64, 7], &[2]).unwrap();
    let f = ff::function(move |x: &Tensor| -> ff::Result<Vec<Tensor>> {
        let k = c.exp()?;
        ff::print(&c)?;
        let a = (x + &k)?;
        let g = ff::gather(x, &idx, 0);
        let b = (&a + 0.0f32)?;
        let big = ff::broadcast_to(2.0f32, &[1 << 20]).unwrap();
        Ok(vec![b, big.reshape(&[-1])?, g.unwrap_or(a)])
    });
    let cf = f.get_concrete_function(TensorSpec::new(&[Some(3)], DType::F32)).unwrap();
    println!("{}\n{}\n{}", cf.graph(), cf.optimized_graph(), cf.pass_report());
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let (r, out) = ff::capture_prints(|| f.call(&x));
    println!("{:?}\nprints: {out:?}", r.map(|v| v.len()));
}
