//! What the graph optimizer does to two functions: prints each graph as traced, the graph
//! after the passes, and the pass report (per pass: nodes before and after, changes, time),
//! then runs the second function and checks it against eager mode.
//!
//! Run it with `cargo run --release --example opt_peek`.

use ferroflow as ff;
use ff::{DType, Tensor, TensorSpec};

fn main() -> ff::Result<()> {
    // relu(a*b + c) with a broadcast bias: one fused loop.
    let f = ff::function(|a: &Tensor, b: &Tensor, c: &Tensor| -> ff::Result<Tensor> { ((a * b)? + c)?.relu() });
    let s = TensorSpec::new(&[Some(4), Some(8)], DType::F32);
    let cf = f.get_concrete_function((s.clone(), s.clone(), TensorSpec::new(&[Some(8)], DType::F32)))?;
    println!("{}\n{}\n{}", cf.graph(), cf.optimized_graph(), cf.pass_report());

    // A dense layer, a softmax written out of primitives, and a loss with some redundancy:
    // a repeated constant, `* 1 + 0`, a double negation.
    let w = Tensor::from_slice(&[0.5f32; 32], &[8, 4])?;
    let bias = Tensor::from_slice(&[0.1f32; 4], &[4])?;
    let body = move |x: &Tensor| -> ff::Result<Tensor> {
        let h = (x.matmul(&w)? + &bias)?.relu()?;
        let m = h.reduce_max(Some(&[-1]), true)?;
        let e = (&h - &m)?.exp()?;
        let sm = (&e / e.reduce_sum(Some(&[-1]), true)?)?;
        let z = ((&sm * 0.0f32)? + 1.0f32)?; // x * 0 is never folded to 0 (NaN, inf)
        let y = ((&sm * 1.0f32)? + 0.0f32)?.neg()?.neg()?;
        let a = y.square()?.reduce_mean(None, false)?;
        let b = z.reduce_sum(None, false)?;
        &a + &b
    };
    let g = ff::function(body.clone());
    let cf = g.get_concrete_function(TensorSpec::new(&[Some(2), Some(8)], DType::F32))?;
    println!("{}\n{}\n{}", cf.graph(), cf.optimized_graph(), cf.pass_report());

    let x = ff::random::normal(&[2, 8], DType::F32, Some(7))?;
    let (traced, eager) = (g.call(&x)?.to_scalar::<f32>()?, body(&x)?.to_scalar::<f32>()?);
    println!("traced {traced}, eager {eager}");
    if (traced - eager).abs() > 1e-5 * eager.abs().max(1.0) {
        return Err(ff::Error::InvalidArgument {
            op: "opt_peek",
            message: format!("traced {traced} differs from eager {eager}"),
            location: None,
        });
    }
    Ok(())
}
