//! Data-driven graph-text tests (`check(program, expected_ir)`, rust-analyzer style): each
//! traces a small program on given specs and compares the text IR exactly.

use ferroflow as ff;
use ff::{DType, Tensor, TensorSpec};

/// Traces `body` for tensors of `specs` and asserts the graph text equals `expected`.
fn check<M, F: ff::function::Body<M>>(body: F, specs: impl ff::function::CallArgs, expected: &str) {
    let f = ff::function(body);
    let cf = f.get_concrete_function(specs).unwrap();
    cf.graph().verify().unwrap();
    assert_eq!(cf.graph().to_string(), expected.trim(), "\n--- got ---\n{}\n", cf.graph());
}

fn spec(dims: &[Option<usize>]) -> TensorSpec {
    TensorSpec::new(dims, DType::F32)
}

#[test]
fn ir_a_plus_a() {
    check(
        |a: &Tensor| -> ff::Result<Tensor> { a + a },
        spec(&[Some(3)]),
        "
graph(x:0: f32[3]) {
  %1: f32[3] = add x:0 x:0
  return (%1)
}",
    );
}

#[test]
fn ir_dense_layer_with_unknown_batch() {
    let w = Tensor::from_slice(&[1.0f32; 6], &[3, 2]).unwrap();
    let b = Tensor::from_slice(&[0.5f32; 2], &[2]).unwrap();
    check(
        move |x: &Tensor| -> ff::Result<Tensor> { (x.matmul(&w)? + &b)?.relu() },
        spec(&[None, Some(3)]),
        "
graph(x:0: f32[?, 3]) {
  %1: f32[3, 2] = const <tensor>
  %2: f32[?, 2] = matmul x:0 %1
  %3: f32[2] = const <tensor>
  %4: f32[?, 2] = add %2 %3
  %5: f32[?, 2] = relu %4
  return (%5)
}",
    );
}

/// A host scalar adopts the tensor's dtype while tracing: the graph holds the converted
/// constant, not a cast node.
#[test]
fn ir_attributes_and_weak_scalars() {
    check(
        |x: &Tensor, y: &Tensor| -> ff::Result<Tensor> {
            (x.reduce_sum(Some(&[-1]), true)? * 2i32)?.cast(DType::F64)?.add(&y.cast(DType::F64)?)
        },
        (spec(&[Some(2), Some(4)]), TensorSpec::new(&[Some(2), Some(1)], DType::I32)),
        "
graph(x:0: f32[2, 4], y:0: i32[2, 1]) {
  %2: f32[2, 1] = reduce_sum[axes=[1], keepdims=true] x:0
  %3: f32[] = const 2.
  %4: f32[2, 1] = mul %2 %3
  %5: f64[2, 1] = cast[dtype=f64] %4
  %6: f64[2, 1] = cast[dtype=f64] y:0
  %7: f64[2, 1] = add %5 %6
  return (%7)
}",
    );
}

#[test]
fn ir_host_arguments_are_constants_and_multiple_outputs() {
    check(
        |x: &Tensor, k: i64| -> ff::Result<(Tensor, Tensor)> { Ok(((x * k)?, x.softmax(-1)?)) },
        (spec(&[Some(3)]), 4i64),
        "
graph(x:0: f32[3]) {
  %1: f32[] = const 4.
  %2: f32[3] = mul x:0 %1
  %3: f32[3] = softmax[axis=0] x:0
  return (%2, %3)
}",
    );
}
