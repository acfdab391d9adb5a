//! Every user error: its variant (`matches!`), that the message names the op, and that the
//! location is the line of this file that made the call (`check_err`).

use ferroflow as ff;
use ff::{DType, Error, Tensor};

use crate::common::*;

fn f32s(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| i as f32).collect(), shape).unwrap()
}

fn i32s(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n as i32).collect(), shape).unwrap()
}

/// The error of a call that must fail.
#[track_caller]
fn err<T: std::fmt::Debug>(r: ff::Result<T>) -> Error {
    r.expect_err("the call should fail")
}

#[test]
fn broadcasting_mismatch() {
    let (a, b) = (f32s(&[2, 3]), f32s(&[4, 3]));
    let e = err(&a + &b);
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "add");
    assert!(e.to_string().contains("[2, 3]") && e.to_string().contains("[4, 3]"), "{e}");
    let e = err(ff::mul(&a, &b));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "mul");
    let e = err(a.maximum(f32s(&[2])));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "maximum");
    let e = err(ff::where_(ff::less(&a, 1.0f32).unwrap(), &a, f32s(&[3, 3])));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "where_");
    let e = err(a.broadcast_to(&[3, 3]));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "broadcast_to");
    let e = err(ff::broadcast_to(&a, &[3]));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "broadcast_to");
    // An error on the left of a chain passes through with its own location.
    let e = err((&a + &b) * &a);
    assert!(matches!(e, Error::ShapeMismatch { op: "add", .. }), "{e}");
    check_err(&e, "add");
}

#[test]
fn matmul_shapes() {
    let e = err(ff::matmul(f32s(&[2, 3]), f32s(&[4, 5])));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "matmul");
    // With transpose_b, b = [3, 2] contributes k = 2 against a's 3.
    let e = err(ff::matmul_with(f32s(&[2, 3]), f32s(&[3, 2]), false, true));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "matmul");
    let e = err(f32s(&[3]).matmul(f32s(&[3, 2])));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "matmul");
    assert!(e.to_string().contains("rank"), "{e}");
    let e = err(ff::matmul(f32s(&[2, 2]), Tensor::scalar(1.0f32)));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "matmul");
    // Batch dims that do not broadcast.
    let e = err(ff::matmul(f32s(&[2, 2, 3]), f32s(&[3, 3, 4])));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "matmul");
    let e = err(ff::matmul(f32s(&[2, 2]), i32s(&[2, 2])));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "matmul");
    let b = Tensor::from_vec(vec![true; 4], &[2, 2]).unwrap();
    let e = err(ff::matmul(&b, &b));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "matmul");
}

#[test]
fn strict_dtype_mismatch() {
    let (a, b) = (f32s(&[3]), i32s(&[3]));
    let e = err(&a + &b);
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "add");
    assert!(e.to_string().contains("f32") && e.to_string().contains("i32"), "{e}");
    let e = err(ff::equal(&a, a.cast(DType::F64).unwrap()));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "equal");
    let e = err(ff::where_(ff::greater(&a, 0.0f32).unwrap(), &a, &b));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "where_");
    let e = err(ff::where_(&a, &a, &a));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "the condition must be bool: {e}");
    check_err(&e, "where_");
    let e = err(ff::concat(&[a.clone(), b.clone()], 0));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "concat");
    let e = err(a.clip(&b, &b));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "clip");
}

#[test]
fn float_literal_on_int_tensor() {
    let t = i32s(&[3]);
    let e = err(&t + 1.5f64);
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "add");
    assert!(e.to_string().contains("float literal"), "{e}");
    let e = err(2.0f32 * &t);
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "mul");
    let e = err(t.less(0.5f32));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "less");
}

#[test]
fn bool_into_arithmetic() {
    let b = Tensor::from_vec(vec![true, false], &[2]).unwrap();
    let e = err(&b + &b);
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "add");
    let e = err(ff::reduce_sum(&b, None, false));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "reduce_sum");
    let e = err(b.argmax(None, false));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "argmax");
    let e = err(ff::neg(&b));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "neg");
    let e = err(ff::logical_and(f32s(&[2]), f32s(&[2])));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "logical_and");
    let e = err(ff::image::rgb_to_grayscale(Tensor::from_vec(vec![true; 3], &[3]).unwrap()));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "rgb_to_grayscale");
}

#[test]
fn float_only_ops_on_ints() {
    let t = i32s(&[3]);
    let e = err(ff::exp(&t));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "exp");
    assert!(e.to_string().contains("cast"), "the message should name the fix: {e}");
    let e = err(t.sqrt());
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "sqrt");
    let e = err(ff::softmax(&t, -1));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "softmax");
    let e = err(t.log_softmax(0));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "log_softmax");
    let e = err(ff::neg(Tensor::from_vec(vec![1u8], &[1]).unwrap()));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "neg");
}

#[test]
fn reshape_errors() {
    let t = f32s(&[2, 3]);
    let e = err(t.reshape(&[4]));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "reshape");
    let e = err(ff::reshape(&t, &[4, -1]));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "reshape");
    let e = err(t.reshape(&[-1, -1]));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "reshape");
    let e = err(t.reshape(&[-2, 3]));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "reshape");
}

#[test]
fn transpose_bad_perm() {
    let t = f32s(&[2, 3, 4]);
    for perm in [&[0, 0, 1][..], &[0, 1], &[0, 1, 3], &[2, 1, 0, 3]] {
        let e = err(t.transpose(perm));
        assert!(matches!(e, Error::InvalidArgument { .. }), "{perm:?}: {e}");
        check_err(&e, "transpose");
    }
    let e = err(ff::transpose(&t, &[1, 0]));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "transpose");
}

#[test]
fn squeeze_non_one_axis() {
    let t = f32s(&[1, 3, 1]);
    let e = err(t.squeeze(Some(&[1])));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "squeeze");
    let e = err(ff::squeeze(&t, Some(&[3])));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "squeeze");
}

#[test]
fn axis_out_of_range() {
    let t = f32s(&[2, 3]);
    for axes in [&[2isize][..], &[-3], &[0, 5]] {
        let e = err(t.reduce_sum(Some(axes), false));
        assert!(matches!(e, Error::AxisOutOfRange { rank: 2, .. }), "{axes:?}: {e}");
        check_err(&e, "reduce_sum");
    }
    let e = err(ff::reduce_mean(&t, Some(&[2]), true));
    assert!(matches!(e, Error::AxisOutOfRange { axis: 2, .. }), "{e}");
    check_err(&e, "reduce_mean");
    let e = err(ff::reduce_max(Tensor::scalar(1.0f32), Some(&[0]), false));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "reduce_max");
    let e = err(ff::reduce_prod(&t, Some(&[1, -1]), false));
    assert!(matches!(e, Error::InvalidArgument { .. }), "an axis listed twice: {e}");
    check_err(&e, "reduce_prod");
    let e = err(ff::argmin(&t, Some(&[-3]), false));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "argmin");
    let e = err(t.softmax(2));
    assert!(matches!(e, Error::AxisOutOfRange { axis: 2, rank: 2, .. }), "{e}");
    check_err(&e, "softmax");
    let e = err(ff::log_softmax(&t, -3));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "log_softmax");
    let e = err(ff::concat(&[t.clone(), t.clone()], 2));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "concat");
    let e = err(ff::concat(&[Tensor::scalar(1.0f32), Tensor::scalar(2.0f32)], 0));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "scalars have no axis to join: {e}");
    check_err(&e, "concat");
    let e = err(t.expand_dims(3));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "expand_dims");
    let e = err(ff::expand_dims(&t, -4));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "expand_dims");
    let e = err(ff::stack(&[t.clone(), t.clone()], 3));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "stack");
    let e = err(ff::stack(&[t.clone(), t.clone()], -4));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "stack");
    let e = err(t.split(2, 2));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "split");
    let e = err(t.gather(i32s(&[1]), 2));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "gather");
}

#[test]
fn argmax_takes_one_axis() {
    let t = f32s(&[2, 3]);
    let e = err(t.argmax(Some(&[0, 1]), false));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "argmax");
    let e = err(ff::argmin(&t, Some(&[]), false));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "argmin");
    let e = err(ff::argmax(f32s(&[2, 0]), Some(&[1]), false));
    assert!(matches!(e, Error::InvalidArgument { .. }), "an empty axis has no argmax: {e}");
    check_err(&e, "argmax");
}

#[test]
fn gather_and_one_hot_indices() {
    let t = f32s(&[4, 3]);
    let e = err(t.gather(i32s(&[5]), 0));
    assert!(matches!(e, Error::IndexOutOfBounds { index: 4, bound: 4, .. }), "{e}");
    check_err(&e, "gather");
    let neg = Tensor::from_vec(vec![0i64, -1], &[2]).unwrap();
    let e = err(ff::gather(&t, &neg, 1));
    assert!(matches!(e, Error::IndexOutOfBounds { index: -1, bound: 3, .. }), "{e}");
    check_err(&e, "gather");
    let e = err(ff::gather(&t, f32s(&[2]), 0));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "gather");
    let e = err(ff::one_hot(i32s(&[4]), 3));
    assert!(matches!(e, Error::IndexOutOfBounds { index: 3, bound: 3, .. }), "{e}");
    check_err(&e, "one_hot");
    let e = err(neg.one_hot(2));
    assert!(matches!(e, Error::IndexOutOfBounds { index: -1, .. }), "{e}");
    check_err(&e, "one_hot");
    let e = err(ff::one_hot(f32s(&[2]), 3));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "one_hot");
}

#[test]
fn slice_out_of_bounds() {
    let t = f32s(&[4, 5]);
    let e = err(t.slice(&[2, 0], &[3, -1]));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "slice");
    assert!(e.to_string().contains("[4, 5]"), "{e}");
    let e = err(ff::slice(&t, &[5, 0], &[-1, -1]));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "slice");
    let e = err(t.slice(&[0], &[1]));
    assert!(matches!(e, Error::InvalidArgument { .. }), "wrong number of entries: {e}");
    check_err(&e, "slice");
    let e = err(t.slice(&[0, 0], &[-2, 1]));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "slice");
}

#[test]
fn split_uneven() {
    let t = f32s(&[6, 2]);
    let e = err(t.split(4, 0));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "split");
    let e = err(ff::split(&t, &[2, 3], 0));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "split");
    let e = err(t.split(0, 1));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "split");
}

#[test]
fn concat_mismatch() {
    let e = err(ff::concat(&[f32s(&[2, 3]), f32s(&[3])], 0));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "rank: {e}");
    check_err(&e, "concat");
    let e = err(ff::concat(&[f32s(&[2, 3]), f32s(&[2, 4])], 0));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "dims: {e}");
    check_err(&e, "concat");
    let e = err(ff::concat::<Tensor>(&[], 0));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "concat");
    let e = err(ff::stack(&[f32s(&[2]), f32s(&[3])], 0));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "stack");
    let e = err(ff::stack(&[f32s(&[2]), i32s(&[2])], 1));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "stack");
    let e = err(ff::stack::<Tensor>(&[], 0));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "stack");
}

#[test]
fn conversions_to_rust() {
    let t = f32s(&[2]);
    let e = err(t.to_scalar::<f32>());
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "to_scalar");
    let e = err(Tensor::scalar(1i32).to_scalar::<i64>());
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "to_scalar");
    let e = err(t.as_ndarray::<f64>());
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "as_ndarray");
    assert!(e.to_string().contains("f64") && e.to_string().contains("f32"), "{e}");
    let e = err(t.to_ndarray::<i32>());
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "to_ndarray");
    let e = err(t.clone().into_ndarray::<bool>());
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "into_ndarray");
    let e = err(ndarray::ArrayD::<u8>::try_from(t.clone()));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    // The tensor is intact after the failed conversions.
    assert_eq!(t.to_ndarray::<f32>().unwrap().as_slice().unwrap(), &[0.0, 1.0]);
}

#[test]
fn constructors() {
    let e = err(Tensor::from_vec(vec![1.0f32; 5], &[2, 3]));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "Tensor::from_vec");
    let e = err(Tensor::from_slice(&[1i64; 7], &[2, 3]));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "Tensor::from_slice");
    let e = err(Tensor::from_vec(vec![0u8; 0], &[usize::MAX, 2]));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "Tensor::from_vec");
    let e = err(ff::zeros(&[usize::MAX, 2], DType::F32));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "zeros");
    let e = err(ff::full(&[usize::MAX, 3], 1.0f32));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "full");
    let e = err(ff::arange(0i32, 5, 0));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "arange");
    let e = err(ff::arange(0.0f32, 5.0, -1.0));
    assert!(matches!(e, Error::InvalidArgument { .. }), "delta away from limit: {e}");
    check_err(&e, "arange");
    let e = err(ff::arange(0.0f64, f64::INFINITY, 1.0));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "arange");
    let e = err(ff::linspace(0i32, 10, 5));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "linspace");
    let e = err(ff::random::normal(&[3], DType::I32, Some(1)));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "random::normal");
    let e = err(ff::random::uniform(&[3], DType::Bool, None));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "random::uniform");
    let e = err(ff::random::normal(&[usize::MAX, 2], DType::F32, Some(1)));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "random::normal");
}

#[test]
fn rgb_to_grayscale_needs_three_channels() {
    let e = err(ff::image::rgb_to_grayscale(f32s(&[2, 2, 4])));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "rgb_to_grayscale");
    assert!(e.to_string().contains("[2, 2, 4]"), "the message should show the shape: {e}");
    let e = err(ff::image::rgb_to_grayscale(Tensor::scalar(1.0f32)));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "rgb_to_grayscale");
}

#[test]
fn device_parse() {
    for s in ["", "/", "/TPU:0", "/CPU:1", "/GPU:x", "/GPU:-1", "gpu:", "/device:XPU:0", "cpu0"] {
        let e = err(ff::Device::parse(s));
        assert!(matches!(e, Error::InvalidArgument { .. }), "{s:?}: {e}");
        check_err(&e, "Device::parse");
        assert!(e.to_string().contains(&format!("{s:?}")), "the message should quote the input: {e}");
        let e = err(s.parse::<ff::Device>());
        assert!(matches!(e, Error::InvalidArgument { .. }), "{s:?}: {e}");
    }
    // The accepted spellings, for contrast.
    assert_eq!(ff::Device::parse("/GPU:0").unwrap(), ff::Device::Gpu(0));
    assert_eq!(ff::Device::parse("/device:CPU:0").unwrap(), ff::Device::Cpu);
    assert_eq!(ff::Device::parse("/job:localhost/replica:0/task:0/device:GPU:3").unwrap(), ff::Device::Gpu(3));
    assert_eq!(ff::Device::Gpu(1).to_string(), "/device:GPU:1");
}
