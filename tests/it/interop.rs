//! ndarray interop, named by cost: moves and views share the buffer (pointer equality),
//! copies do not, and writing to a copy never changes a tensor; `convert_to_tensor` from any
//! layout; `TryFrom`; `to_scalar`; `Display`.

use ferroflow as ff;
use ff::{DType, Tensor};
use half::f16;
use ndarray::{Array, Array2, ArrayD, IxDyn, array, s};

fn ptr<T>(a: *const T) -> *const u8 {
    a as *const u8
}

#[test]
fn from_array_moves_the_buffer() {
    let a = Array::from_shape_vec((3, 4), (0..12).map(|i| i as f32).collect()).unwrap();
    let p = ptr(a.as_ptr());
    let t = Tensor::from(a);
    assert_eq!(t.data_ptr(), p, "Tensor::from(Array) should move, not copy");
    assert_eq!(t.shape().dims(), &[3, 4]);
    assert_eq!(t.dtype(), DType::F32);
    let d = ArrayD::from_shape_vec(IxDyn(&[2, 2, 2]), (0..8i64).collect()).unwrap();
    let p = ptr(d.as_ptr());
    let t = Tensor::from(d);
    assert_eq!(t.data_ptr(), p);
    assert_eq!(t.dtype(), DType::I64);
}

#[test]
fn from_array_of_any_layout_keeps_logical_order() {
    let a: Array2<i32> = array![[1, 2, 3], [4, 5, 6]];
    // Transposed (column-major) owned array: copied into row-major order.
    let t = Tensor::from(a.clone().reversed_axes());
    assert_eq!(t.shape().dims(), &[3, 2]);
    assert_eq!(t.to_ndarray::<i32>().unwrap(), a.t().into_dyn());
    // A sliced owned array (an offset into its allocation).
    let t = Tensor::from(a.clone().slice_move(s![1.., 1..]));
    assert_eq!(t.to_ndarray::<i32>().unwrap(), array![[5, 6]].into_dyn());
    // Negative strides.
    let t = Tensor::from(a.clone().slice_move(s![..;-1, ..;-2]));
    assert_eq!(t.to_ndarray::<i32>().unwrap(), array![[6, 4], [3, 1]].into_dyn());
}

#[test]
fn as_ndarray_is_a_view() {
    let t = Tensor::from(Array::from_shape_vec((2, 3), vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap());
    let v1 = t.as_ndarray::<f64>().unwrap();
    let v2 = t.as_ndarray::<f64>().unwrap();
    assert_eq!(ptr(v1.as_ptr()), t.data_ptr());
    assert_eq!(ptr(v2.as_ptr()), t.data_ptr());
    assert_eq!(v1.shape(), &[2, 3]);
    assert_eq!(v1[[1, 2]], 6.0);
    // A large tensor: still O(1) (the same buffer, no copy).
    let big = ff::zeros(&[1 << 20], DType::F32).unwrap();
    assert_eq!(ptr(big.as_ndarray::<f32>().unwrap().as_ptr()), big.data_ptr());
}

#[test]
fn into_ndarray_moves_when_unique() {
    let t = Tensor::from_vec((0..6).map(|i| i as f32).collect(), &[2, 3]).unwrap();
    let p = t.data_ptr();
    let a = t.into_ndarray::<f32>().unwrap();
    assert_eq!(ptr(a.as_ptr()), p, "a unique tensor should give its buffer away");
    assert_eq!(a, Array::from_shape_vec((2, 3), (0..6).map(|i| i as f32).collect()).unwrap().into_dyn());
}

#[test]
fn into_ndarray_copies_when_shared() {
    let t = Tensor::from_vec(vec![1u8, 2, 3, 4], &[4]).unwrap();
    let keep = t.clone();
    let p = t.data_ptr();
    let mut a = t.into_ndarray::<u8>().unwrap();
    assert_ne!(ptr(a.as_ptr()), p, "a shared buffer must be copied");
    a[0] = 99;
    assert_eq!(keep.to_ndarray::<u8>().unwrap().as_slice().unwrap(), &[1, 2, 3, 4]);
    assert_eq!(keep.data_ptr(), p);
    // A reshape shares the buffer too, so the original must be copied as well.
    let t = Tensor::from_vec(vec![1i32, 2, 3, 4], &[2, 2]).unwrap();
    let r = t.reshape(&[-1]).unwrap();
    let p = t.data_ptr();
    let mut a = t.into_ndarray::<i32>().unwrap();
    assert_ne!(ptr(a.as_ptr()), p);
    a[[0, 0]] = -1;
    assert_eq!(r.to_ndarray::<i32>().unwrap().as_slice().unwrap(), &[1, 2, 3, 4]);
}

#[test]
fn into_ndarray_of_a_reshape_moves_when_it_is_the_last_handle() {
    let t = Tensor::from_vec((0..12).map(|i| i as f64).collect(), &[3, 4]).unwrap();
    let p = t.data_ptr();
    let r = t.reshape(&[2, -1]).unwrap();
    drop(t);
    let a = r.into_ndarray::<f64>().unwrap();
    assert_eq!(a.shape(), &[2, 6]);
    assert_eq!(a[[1, 0]], 6.0);
    assert_eq!(ptr(a.as_ptr()), p, "the only handle to a buffer should move it, reshaped or not");
}

#[test]
fn to_ndarray_copies() {
    let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
    let mut a = t.to_ndarray::<f32>().unwrap();
    assert_ne!(ptr(a.as_ptr()), t.data_ptr());
    a[0] = 100.0;
    a.fill(-5.0);
    assert_eq!(t.as_ndarray::<f32>().unwrap().as_slice().unwrap(), &[1.0, 2.0, 3.0]);
    assert_eq!(t.to_ndarray::<f32>().unwrap().as_slice().unwrap(), &[1.0, 2.0, 3.0]);
}

#[test]
fn reshape_shares_the_buffer() {
    let t = Tensor::from_vec((0..24).collect::<Vec<i32>>(), &[2, 3, 4]).unwrap();
    let r = t.reshape(&[6, -1]).unwrap();
    assert_eq!(r.data_ptr(), t.data_ptr());
    assert_eq!(r.shape().dims(), &[6, 4]);
    let rr = r.reshape(&[24]).unwrap();
    assert_eq!(rr.data_ptr(), t.data_ptr());
    let e = rr.expand_dims(0).unwrap().squeeze(None).unwrap();
    assert_eq!(e.data_ptr(), t.data_ptr());
    assert_eq!(ptr(rr.as_ndarray::<i32>().unwrap().as_ptr()), t.data_ptr());
    assert_eq!(rr.as_ndarray::<i32>().unwrap().as_slice().unwrap(), (0..24).collect::<Vec<_>>().as_slice());
    // Ops that compute (transpose) make a new buffer.
    assert_ne!(t.transpose(&[2, 1, 0]).unwrap().data_ptr(), t.data_ptr());
}

#[test]
fn convert_to_tensor_from_views() {
    let a: Array2<f64> = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    // Negative strides.
    let v = a.slice(s![..;-1, ..;-1]);
    let t = ff::convert_to_tensor(v).unwrap();
    assert_eq!(t.to_ndarray::<f64>().unwrap(), array![[6.0, 5.0, 4.0], [3.0, 2.0, 1.0]].into_dyn());
    let t = ff::convert_to_tensor(v).unwrap();
    assert_eq!(t.shape().dims(), &[2, 3]);
    // Transposed.
    let t = ff::convert_to_tensor(a.t()).unwrap();
    assert_eq!(t.to_ndarray::<f64>().unwrap(), a.t().to_owned().into_dyn());
    // A strided slice.
    let t = ff::convert_to_tensor(a.slice(s![.., 0..;2])).unwrap();
    assert_eq!(t.to_ndarray::<f64>().unwrap(), array![[1.0, 3.0], [4.0, 6.0]].into_dyn());
    // Copies: never the array's own buffer.
    let t = ff::convert_to_tensor(&a).unwrap();
    assert_ne!(t.data_ptr(), ptr(a.as_ptr()));
    assert_eq!(t.dtype(), DType::F64);
    // An owned array moves.
    let p = ptr(a.as_ptr());
    let t = ff::convert_to_tensor(a).unwrap();
    assert_eq!(t.data_ptr(), p);
}

#[test]
fn convert_to_tensor_from_rust_values() {
    let t = ff::convert_to_tensor(vec![1i64, 2, 3]).unwrap();
    assert_eq!((t.dtype(), t.shape().dims()), (DType::I64, &[3][..]));
    let v = vec![1.5f32, 2.5];
    let t = ff::convert_to_tensor(&v).unwrap();
    assert_eq!(t.to_ndarray::<f32>().unwrap().as_slice().unwrap(), &[1.5, 2.5]);
    let t = ff::convert_to_tensor(&v[..1]).unwrap();
    assert_eq!(t.shape().dims(), &[1]);
    let t = ff::convert_to_tensor([true, false, true]).unwrap();
    assert_eq!((t.dtype(), t.num_elements()), (DType::Bool, 3));
    let t = ff::convert_to_tensor([7u8, 8]).unwrap();
    assert_eq!(t.to_ndarray::<u8>().unwrap().as_slice().unwrap(), &[7, 8]);
    let t = ff::convert_to_tensor(Vec::<f32>::new()).unwrap();
    assert_eq!(t.shape().dims(), &[0]);
    // Scalars keep their Rust type: an f64 literal stays f64, and the result is not weak.
    for (t, dt) in [
        (ff::convert_to_tensor(2.5f64).unwrap(), DType::F64),
        (ff::convert_to_tensor(2.5f32).unwrap(), DType::F32),
        (ff::convert_to_tensor(3i32).unwrap(), DType::I32),
        (ff::convert_to_tensor(3i64).unwrap(), DType::I64),
        (ff::convert_to_tensor(f16::from_f32(0.5)).unwrap(), DType::F16),
    ] {
        assert_eq!(t.dtype(), dt);
        assert_eq!(t.rank(), 0);
        assert!(!t.is_weak(), "convert_to_tensor gives a strong tensor");
    }
    assert_eq!(ff::convert_to_tensor(2.5f64).unwrap().to_scalar::<f64>().unwrap(), 2.5);
    // A converted f64 scalar is strong: meeting an f32 tensor is a dtype mismatch.
    let x = Tensor::from_vec(vec![1.0f32], &[1]).unwrap();
    assert!(matches!(&x + ff::convert_to_tensor(2.0f64).unwrap(), Err(ff::Error::DTypeMismatch { .. })));
    // Ops take arrays directly.
    let y = ff::add(&x, array![10.0f32]).unwrap();
    assert_eq!(y.to_ndarray::<f32>().unwrap().as_slice().unwrap(), &[11.0]);
    let m = ff::matmul(&array![[1.0f32, 2.0]], Tensor::from_vec(vec![3.0f32, 4.0], &[2, 1]).unwrap()).unwrap();
    assert_eq!(m.to_ndarray::<f32>().unwrap().as_slice().unwrap(), &[11.0]);
}

#[test]
fn try_from_tensor_for_arrayd() {
    let t = Tensor::from_vec(vec![1i32, 2, 3, 4], &[2, 2]).unwrap();
    let p = t.data_ptr();
    let a = ArrayD::<i32>::try_from(t).unwrap();
    assert_eq!(a, array![[1, 2], [3, 4]].into_dyn());
    assert_eq!(ptr(a.as_ptr()), p);
    let t = Tensor::scalar(1.0f32);
    let a: ff::Result<ArrayD<f32>> = t.try_into();
    assert_eq!(a.unwrap().shape(), &[] as &[usize]);
    assert!(matches!(ArrayD::<f64>::try_from(Tensor::scalar(1.0f32)), Err(ff::Error::DTypeMismatch { .. })));
}

#[test]
fn to_scalar_reads_rank_zero() {
    assert_eq!(Tensor::scalar(2.5f32).to_scalar::<f32>().unwrap(), 2.5);
    assert_eq!(Tensor::scalar(-7i64).to_scalar::<i64>().unwrap(), -7);
    assert!(Tensor::scalar(true).to_scalar::<bool>().unwrap());
    let r = Tensor::from_vec(vec![9u8], &[1, 1]).unwrap().reshape(&[]).unwrap();
    assert_eq!(r.to_scalar::<u8>().unwrap(), 9);
    let s = ff::reduce_sum(Tensor::from_vec(vec![1.0f64, 2.0, 3.5], &[3]).unwrap(), None, false).unwrap();
    assert_eq!(s.to_scalar::<f64>().unwrap(), 6.5);
    assert!(Tensor::from_vec(vec![1.0f32], &[1]).unwrap().to_scalar::<f32>().is_err());
}

#[test]
fn display_shows_values_shape_dtype_device() {
    let t = Tensor::from_vec(vec![1.5f32, -2.0, 3.25, 4.0], &[2, 2]).unwrap();
    let s = t.to_string();
    for part in ["1.5", "-2", "3.25", "4", "shape=[2, 2]", "dtype=f32", "device=/device:CPU:0"] {
        assert!(s.contains(part), "{part:?} missing from {s}");
    }
    assert!(!s.contains("..."), "{s}");
    assert_eq!(format!("{t:?}"), s);
    let s = Tensor::scalar(7i64).to_string();
    assert!(s.contains('7') && s.contains("shape=[]") && s.contains("dtype=i64"), "{s}");
    let s = Tensor::from_vec(vec![true, false], &[2]).unwrap().to_string();
    assert!(s.contains("true") && s.contains("false") && s.contains("dtype=bool"), "{s}");
    let s = Tensor::from_vec(vec![f16::from_f32(0.5)], &[1]).unwrap().to_string();
    assert!(s.contains("0.5") && s.contains("dtype=f16"), "{s}");
    // Large tensors are elided.
    let big = Tensor::from_vec((0..10_000).map(|i| i as f32).collect(), &[100, 100]).unwrap();
    let s = big.to_string();
    assert!(s.contains("..."), "{s}");
    assert!(s.len() < 2_000, "{} characters", s.len());
    assert!(s.contains("9999") && s.contains("shape=[100, 100]"), "{s}");
    let s = ff::zeros(&[0, 3], DType::U8).unwrap().to_string();
    assert!(s.contains("shape=[0, 3]") && s.contains("dtype=u8"), "{s}");
}
