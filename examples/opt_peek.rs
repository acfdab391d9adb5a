use ferroflow as ff;
use ff::{DType, Tensor, TensorSpec};
fn main() -> ff::Result<()> {
    let f = ff::function(|a: &Tensor, b: &Tensor, c: &Tensor| -> ff::Result<Tensor> { ((a * b)? + c)?.relu() });
    let s = TensorSpec::new(&[Some(4), Some(8)], DType::F32);
    let cf = f.get_concrete_function((s.clone(), s.clone(), TensorSpec::new(&[Some(8)], DType::F32)))?;
    println!("{}\n{}\n{}", cf.graph(), cf.optimized_graph(), cf.pass_report());
    let w = Tensor::from_slice(&[0.5f32; 32], &[8, 4])?;
    let bias = Tensor::from_slice(&[0.1f32; 4], &[4])?;
    let g = ff::function(move |x: &Tensor| -> ff::Result<Tensor> {
        let h = (x.matmul(&w)? + &bias)?.relu()?;
        let m = h.reduce_max(Some(&[-1]), true)?;
        let e = (&h - &m)?.exp()?;
        let sm = (&e / e.reduce_sum(Some(&[-1]), true)?)?;
        let z = ((&sm * 0.0f32)? + 1.0f32)?; // no fold of x*0
        let y = ((&sm * 1.0f32)? + 0.0f32)?.neg()?.neg()?;
        let a = y.square()?.reduce_mean(None, false)?;
        let b = z.reduce_sum(None, false)?;
        &a + &b
    });
    let cf = g.get_concrete_function(TensorSpec::new(&[Some(2), Some(8)], DType::F32))?;
    println!("{}\n{}\n{}", cf.graph(), cf.optimized_graph(), cf.pass_report());
    let x = Tensor::from_slice(&[0.3f32; 16], &[2, 8])?;
    println!("{}", g.call(&x)?);
    Ok(())
}
