//! Dtype rules: strict mode, weak host scalars, NumPy promotion (thread-local scope only:
//! tests run in parallel), integer wrapping, true and floor division, and casts.

use ferroflow as ff;
use ff::config::{PromotionMode, with_promotion_mode};
use ff::{DType, Error, Tensor};

use crate::common::*;

fn vals(t: &Tensor) -> Vec<f64> {
    values(t).iter().copied().collect()
}

#[test]
fn strict_mode_rejects_two_dtypes() {
    for &a in ALL {
        for &b in ALL {
            if a == b {
                continue;
            }
            let (x, y) = (tensor(a, &[2], &[1.0, 2.0]), tensor(b, &[2], &[1.0, 2.0]));
            for r in [
                ff::add(&x, &y),
                ff::equal(&x, &y),
                ff::maximum(&x, &y),
                ff::matmul(x.reshape(&[1, 2]).unwrap(), y.reshape(&[2, 1]).unwrap()),
            ] {
                let e = r.expect_err(&format!("{a} with {b}"));
                assert!(matches!(e, Error::DTypeMismatch { .. }), "{a} {b}: {e}");
            }
        }
    }
}

#[test]
fn weak_scalars_take_the_tensor_dtype() {
    let x = Tensor::from_vec(vec![1.5f32, -2.0], &[2]).unwrap();
    let y = (&x + 3i32).unwrap();
    assert_eq!(y.dtype(), F32);
    assert_eq!(vals(&y), [4.5, 1.0]);
    let y = (3i64 - &x).unwrap();
    assert_eq!((y.dtype(), vals(&y)), (F32, vec![1.5, 5.0]));
    let d = Tensor::from_vec(vec![0.1f64, 1e300], &[2]).unwrap();
    let y = (&d * 2.0f32).unwrap();
    assert_eq!(y.dtype(), F64);
    assert_eq!(vals(&y), [0.2, 2e300]);
    // f64 literal meeting an f32 tensor: f32, rounded once.
    let y = (&x * 0.1f64).unwrap();
    assert_eq!(y.dtype(), F32);
    assert_eq!(y.to_ndarray::<f32>().unwrap().as_slice().unwrap(), &[1.5f32 * 0.1f32, -2.0f32 * 0.1f32]);
    let h = tensor(F16, &[2], &[1.0, 2.0]);
    assert_eq!((&h / 4.0f64).unwrap().dtype(), F16);
    assert_eq!(vals(&(&h / 4.0f64).unwrap()), [0.25, 0.5]);
    let i = Tensor::from_vec(vec![5i64, -3], &[2]).unwrap();
    assert_eq!((&i * 2i32).unwrap().dtype(), I64);
    assert_eq!(vals(&(&i * 2i32).unwrap()), [10.0, -6.0]);
    // Scalars work through the free functions too (IntoTensor).
    let y = ff::maximum(&x, 0i32).unwrap();
    assert_eq!((y.dtype(), vals(&y)), (F32, vec![1.5, 0.0]));
    let y = ff::less(2.0f64, &x).unwrap();
    assert_eq!((y.dtype(), vals(&y)), (Bool, vec![0.0, 0.0]));
    // A float literal on an integer tensor is an error in strict mode.
    let t = Tensor::from_vec(vec![1i32, 2], &[2]).unwrap();
    assert!(matches!(&t + 1.5f64, Err(Error::DTypeMismatch { .. })));
    assert!(matches!(ff::mul(1.5f32, &t), Err(Error::DTypeMismatch { .. })));
    assert!(matches!(t.div(2.0f64), Err(Error::DTypeMismatch { .. })));
}

#[test]
fn out_of_range_int_literals_wrap() {
    // The literal is converted to the tensor's dtype with wrapping, then added with wrapping.
    let xs = [0u8, 10, 200, 255];
    let t = Tensor::from_vec(xs.to_vec(), &[4]).unwrap();
    let y = (&t + 1000i32).unwrap();
    assert_eq!(y.dtype(), U8);
    let want: Vec<u8> = xs.iter().map(|&x| (x as i32).wrapping_add(1000) as u8).collect();
    assert_eq!(y.to_ndarray::<u8>().unwrap().as_slice().unwrap(), want.as_slice());
    let y = (&t - 1i32).unwrap();
    let want: Vec<u8> = xs.iter().map(|&x| x.wrapping_sub(1)).collect();
    assert_eq!(y.to_ndarray::<u8>().unwrap().as_slice().unwrap(), want.as_slice());
    let i = Tensor::from_vec(vec![1i32, -1], &[2]).unwrap();
    let y = (&i * (1i64 << 33)).unwrap();
    assert_eq!(y.dtype(), I32);
    assert_eq!(y.to_ndarray::<i32>().unwrap().as_slice().unwrap(), &[1i32.wrapping_mul((1i64 << 33) as i32), 0]);
}

/// The NumPy promotion table, written out from NumPy's rules (bf16 as JAX places it).
fn numpy_table(a: DType, b: DType) -> DType {
    let rank = |d: DType| ALL.iter().position(|&x| x == d).unwrap();
    let (a, b) = if rank(a) <= rank(b) { (a, b) } else { (b, a) };
    match (a, b) {
        (a, b) if a == b => a,
        (x, Bool) => x,
        // ALL order: F32 F64 F16 BF16 I32 I64 U8 Bool.
        (F32, F64) => F64,
        (F32, F16 | BF16) => F32,
        (F64, _) => F64,
        (F16, BF16) => F32,
        (F32 | F16 | BF16, U8) => a,
        (F32 | F16 | BF16, I32 | I64) => F64,
        (I32, I64) => I64,
        (I32 | I64, U8) => a,
        _ => unreachable!("{a} {b}"),
    }
}

#[test]
fn numpy_promotion_table() {
    for &a in ALL {
        for &b in ALL {
            assert_eq!(ff::numpy_promote(a, b), numpy_table(a, b), "numpy_promote({a}, {b})");
        }
    }
}

#[test]
fn numpy_mode_promotes_in_ops() {
    with_promotion_mode(PromotionMode::Numpy, || {
        for &a in NUM {
            for &b in NUM {
                let (x, y) = (tensor(a, &[3], &[1.0, 2.0, 3.0]), tensor(b, &[2, 1], &[2.0, 4.0]));
                let want = numpy_table(a, b);
                let s = (&x + &y).unwrap_or_else(|e| panic!("{a} + {b}: {e}"));
                assert_eq!(s.dtype(), want, "{a} + {b}");
                assert_eq!(vals(&s), [3.0, 4.0, 5.0, 5.0, 6.0, 7.0], "{a} + {b}");
                let m = ff::maximum(&y, &x).unwrap();
                assert_eq!((m.dtype(), vals(&m)), (want, vec![2.0, 2.0, 3.0, 4.0, 4.0, 4.0]), "maximum {a} {b}");
                let c = ff::less(&x, &y).unwrap();
                assert_eq!((c.dtype(), vals(&c)), (Bool, vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]), "less {a} {b}");
            }
        }
        // Bool meets numbers as 0/1.
        let b = Tensor::from_vec(vec![true, false], &[2]).unwrap();
        let i = Tensor::from_vec(vec![5i32, 5], &[2]).unwrap();
        let s = (&b + &i).unwrap();
        assert_eq!((s.dtype(), vals(&s)), (I32, vec![6.0, 5.0]));
        // A float literal meeting an int tensor promotes instead of failing.
        let s = (&i + 1.5f64).unwrap();
        assert_eq!((s.dtype(), vals(&s)), (F64, vec![6.5, 6.5]));
        // Mixed-dtype where_ and matmul.
        let f = Tensor::from_vec(vec![0.5f32, 0.25], &[2]).unwrap();
        let w = ff::where_(&b, &i, &f).unwrap();
        assert_eq!((w.dtype(), vals(&w)), (F64, vec![5.0, 0.25]));
        let m = ff::matmul(i.reshape(&[1, 2]).unwrap(), f.reshape(&[2, 1]).unwrap()).unwrap();
        assert_eq!((m.dtype(), vals(&m)), (F64, vec![3.75]));
    });
    // The scope is over: strict again on this thread.
    let x = Tensor::from_vec(vec![1i32], &[1]).unwrap();
    let y = Tensor::from_vec(vec![1.0f32], &[1]).unwrap();
    assert!(matches!(&x + &y, Err(Error::DTypeMismatch { .. })));
    assert_eq!(ff::config::promotion_mode(), PromotionMode::Strict);
}

#[test]
fn promotion_scope_is_per_thread_and_restored_after_panic() {
    let r = std::panic::catch_unwind(|| with_promotion_mode(PromotionMode::Numpy, || panic!("inside the scope")));
    assert!(r.is_err());
    assert_eq!(ff::config::promotion_mode(), PromotionMode::Strict);
    with_promotion_mode(PromotionMode::Numpy, || {
        let other = std::thread::spawn(ff::config::promotion_mode).join().unwrap();
        assert_eq!(other, PromotionMode::Strict, "another thread keeps the global mode");
        assert_eq!(ff::config::promotion_mode(), PromotionMode::Numpy);
    });
}

#[test]
fn integer_overflow_wraps() {
    let t = Tensor::from_vec(vec![i32::MAX, i32::MIN], &[2]).unwrap();
    assert_eq!((&t + 1i32).unwrap().to_ndarray::<i32>().unwrap().as_slice().unwrap(), &[i32::MIN, i32::MIN + 1]);
    assert_eq!((&t - 1i32).unwrap().to_ndarray::<i32>().unwrap().as_slice().unwrap(), &[i32::MAX - 1, i32::MAX]);
    assert_eq!((&t * 2i32).unwrap().to_ndarray::<i32>().unwrap().as_slice().unwrap(), &[i32::MAX.wrapping_mul(2), 0]);
    assert_eq!(t.neg().unwrap().to_ndarray::<i32>().unwrap().as_slice().unwrap(), &[-i32::MAX, i32::MIN]);
    assert_eq!(t.abs().unwrap().to_ndarray::<i32>().unwrap().as_slice().unwrap(), &[i32::MAX, i32::MIN]);
    let l = Tensor::from_vec(vec![i64::MAX], &[1]).unwrap();
    assert_eq!((&l + 1i64).unwrap().to_ndarray::<i64>().unwrap().as_slice().unwrap(), &[i64::MIN]);
    let u = Tensor::from_vec(vec![200u8, 100], &[2]).unwrap();
    let s = u.reduce_sum(None, false).unwrap();
    assert_eq!((s.dtype(), s.to_scalar::<u8>().unwrap()), (U8, 44));
    assert_eq!(u.reduce_prod(None, false).unwrap().to_scalar::<u8>().unwrap(), 200u8.wrapping_mul(100));
    assert_eq!(
        u.square().unwrap().to_ndarray::<u8>().unwrap().as_slice().unwrap(),
        &[200u8.wrapping_mul(200), 100u8.wrapping_mul(100)]
    );
    assert_eq!((&u - 201u8).unwrap().to_ndarray::<u8>().unwrap().as_slice().unwrap(), &[255, 155]);
    let p = ff::pow(
        Tensor::from_vec(vec![2i32, 3, -2], &[3]).unwrap(),
        Tensor::from_vec(vec![31i32, 21, 31], &[3]).unwrap(),
    )
    .unwrap();
    assert_eq!(
        p.to_ndarray::<i32>().unwrap().as_slice().unwrap(),
        &[2i32.wrapping_pow(31), 3i32.wrapping_pow(21), (-2i32).wrapping_pow(31)]
    );
    let m = ff::matmul(
        Tensor::from_vec(vec![16u8, 16], &[1, 2]).unwrap(),
        Tensor::from_vec(vec![16u8, 1], &[2, 1]).unwrap(),
    )
    .unwrap();
    assert_eq!(m.to_ndarray::<u8>().unwrap()[[0, 0]], 16u8.wrapping_mul(16).wrapping_add(16));
}

#[test]
fn true_division_of_integers() {
    let a = Tensor::from_vec(vec![7i32, -7, 1, 0], &[4]).unwrap();
    let b = Tensor::from_vec(vec![2i32, 2, 3, 0], &[4]).unwrap();
    let q = (&a / &b).unwrap();
    assert_eq!(q.dtype(), F64);
    let got = vals(&q);
    assert_eq!(&got[..3], &[3.5, -3.5, 1.0 / 3.0]);
    assert!(got[3].is_nan(), "0 / 0 is NaN as a float division");
    let q = ff::div(Tensor::from_vec(vec![1i64], &[1]).unwrap(), 0i32).unwrap();
    assert_eq!((q.dtype(), vals(&q)), (F64, vec![f64::INFINITY]));
    let u = Tensor::from_vec(vec![7u8, 255], &[2]).unwrap();
    let q = (&u / 2u8).unwrap();
    assert_eq!(q.dtype(), F32);
    assert_eq!(q.to_ndarray::<f32>().unwrap().as_slice().unwrap(), &[3.5, 127.5]);
    let q = u.div(&u).unwrap();
    assert_eq!((q.dtype(), vals(&q)), (F32, vec![1.0, 1.0]));
    // Floats keep their dtype.
    let h = tensor(BF16, &[1], &[1.0]);
    assert_eq!((&h / 4i32).unwrap().dtype(), BF16);
}

#[test]
fn floor_division_rounds_toward_minus_infinity() {
    let cases =
        [(7i64, 2i64), (-7, 2), (7, -2), (-7, -2), (6, 3), (-6, 3), (0, 5), (5, 0), (-5, 0), (0, 0), (1, 7), (-1, 7)];
    let floor = |a: i64, b: i64| if b == 0 { 0 } else { (a as f64 / b as f64).floor() as i64 };
    for &dt in &[I32, I64] {
        let a = tensor(dt, &[cases.len()], &cases.map(|c| c.0 as f64));
        let b = tensor(dt, &[cases.len()], &cases.map(|c| c.1 as f64));
        let q = ff::floor_div(&a, &b).unwrap();
        assert_eq!(q.dtype(), dt);
        let want: Vec<f64> = cases.iter().map(|&(a, b)| floor(a, b) as f64).collect();
        assert_eq!(vals(&q), want, "{dt}");
    }
    let i = Tensor::from_vec(vec![i32::MIN], &[1]).unwrap();
    assert_eq!(i.floor_div(-1i32).unwrap().to_ndarray::<i32>().unwrap()[0], i32::MIN, "wraps like i32::MIN / -1");
    let u = Tensor::from_vec(vec![7u8, 200, 5], &[3]).unwrap();
    assert_eq!(
        u.floor_div(Tensor::from_vec(vec![2u8, 7, 0], &[3]).unwrap())
            .unwrap()
            .to_ndarray::<u8>()
            .unwrap()
            .as_slice()
            .unwrap(),
        &[3, 28, 0]
    );
    let f = Tensor::from_vec(vec![-7.0f32, 7.0, -0.5, 1.0], &[4]).unwrap();
    let q = ff::floor_div(&f, Tensor::from_vec(vec![2.0f32, -2.0, 3.0, 0.0], &[4]).unwrap()).unwrap();
    assert_eq!(vals(&q), [-4.0, -4.0, -1.0, f64::INFINITY]);
}

#[test]
fn casts() {
    let f = Tensor::from_vec(
        vec![3.7f32, -3.7, 0.5, -0.5, 1e20, -1e20, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 255.9, 256.0],
        &[11],
    )
    .unwrap();
    let i = f.cast(I32).unwrap();
    assert_eq!(
        i.to_ndarray::<i32>().unwrap().as_slice().unwrap(),
        &[3, -3, 0, 0, i32::MAX, i32::MIN, 0, i32::MAX, i32::MIN, 255, 256]
    );
    let u = f.cast(U8).unwrap();
    assert_eq!(u.to_ndarray::<u8>().unwrap().as_slice().unwrap(), &[3, 0, 0, 0, 255, 0, 0, 255, 0, 255, 255]);
    let l = f.cast(I64).unwrap();
    assert_eq!(
        l.to_ndarray::<i64>().unwrap().as_slice().unwrap(),
        &[3, -3, 0, 0, i64::MAX, i64::MIN, 0, i64::MAX, i64::MIN, 255, 256]
    );
    let b = f.cast(Bool).unwrap();
    assert_eq!(
        b.to_ndarray::<bool>().unwrap().as_slice().unwrap(),
        &[true, true, true, true, true, true, true, true, true, true, true]
    );
    let z = Tensor::from_vec(vec![0.0f64, -0.0, 1e-300], &[3]).unwrap().cast(Bool).unwrap();
    assert_eq!(z.to_ndarray::<bool>().unwrap().as_slice().unwrap(), &[false, false, true]);
    let n = Tensor::from_vec(vec![0i64, -5, 1 << 40], &[3]).unwrap();
    assert_eq!(n.cast(Bool).unwrap().to_ndarray::<bool>().unwrap().as_slice().unwrap(), &[false, true, true]);
    assert_eq!(n.cast(I32).unwrap().to_ndarray::<i32>().unwrap().as_slice().unwrap(), &[0, -5, 0]);
    assert_eq!(n.cast(U8).unwrap().to_ndarray::<u8>().unwrap().as_slice().unwrap(), &[0, 251, 0]);
    let t = Tensor::from_vec(vec![true, false], &[2]).unwrap();
    for &dt in NUM {
        assert_eq!(vals(&t.cast(dt).unwrap()), [1.0, 0.0], "bool -> {dt}");
    }
    // Casting to the same dtype is free (the same buffer).
    assert_eq!(f.cast(F32).unwrap().data_ptr(), f.data_ptr());
}
