//! Tensors made from nothing: `zeros ones full arange linspace eye`, against plain loops.

use ferroflow as ff;
use ff::{DType, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};

use crate::common::*;

fn check(ctx: &str, t: &Tensor, dt: DType, dims: &[usize], want: &[f64]) {
    let want = ArrayD::from_shape_vec(IxDyn(dims), want.to_vec()).unwrap();
    assert_close(&ctx, t, dt, &want, Tol::of(dt));
}

#[test]
fn zeros_and_ones() {
    for &dt in ALL {
        for dims in [&[][..], &[0], &[4], &[2, 3], &[2, 0, 3], &[1, 2, 1, 2]] {
            let n: usize = dims.iter().product();
            check(&format!("zeros {dt} {dims:?}"), &ff::zeros(dims, dt).unwrap(), dt, dims, &vec![0.0; n]);
            check(&format!("ones {dt} {dims:?}"), &ff::ones(dims, dt).unwrap(), dt, dims, &vec![1.0; n]);
        }
    }
}

#[test]
fn full_takes_the_value_dtype() {
    check("full i64", &ff::full(&[2, 2], 7i64).unwrap(), I64, &[2, 2], &[7.0; 4]);
    check("full f32", &ff::full(&[3], -2.5f32).unwrap(), F32, &[3], &[-2.5; 3]);
    check("full f64", &ff::full(&[], 0.1f64).unwrap(), F64, &[], &[0.1]);
    check("full bool", &ff::full(&[1, 2], true).unwrap(), Bool, &[1, 2], &[1.0; 2]);
    check("full u8", &ff::full(&[0, 2], 200u8).unwrap(), U8, &[0, 2], &[]);
    check("full f16", &ff::full(&[2], f16::from_f32(1.5)).unwrap(), F16, &[2], &[1.5; 2]);
    check("full bf16", &ff::full(&[2], bf16::from_f32(-3.0)).unwrap(), BF16, &[2], &[-3.0; 2]);
    check("full i32", &ff::full(&[2], i32::MIN).unwrap(), I32, &[2], &[i32::MIN as f64; 2]);
}

/// NumPy's arange: `ceil((limit - start) / delta)` values `start + i * delta`.
fn arange_ref(start: f64, limit: f64, delta: f64) -> Vec<f64> {
    let n = ((limit - start) / delta).ceil().max(0.0) as usize;
    (0..n).map(|i| start + i as f64 * delta).collect()
}

#[test]
fn arange_int_and_float() {
    let ints: &[(i64, i64, i64)] =
        &[(0, 5, 1), (2, 11, 3), (5, 0, -1), (10, -3, -4), (3, 3, 1), (-7, 7, 7), (0, 1, 100)];
    for &(s, l, d) in ints {
        let want = arange_ref(s as f64, l as f64, d as f64);
        check(
            &format!("arange i32 {s} {l} {d}"),
            &ff::arange(s as i32, l as i32, d as i32).unwrap(),
            I32,
            &[want.len()],
            &want,
        );
        check(&format!("arange i64 {s} {l} {d}"), &ff::arange(s, l, d).unwrap(), I64, &[want.len()], &want);
    }
    let want = arange_ref(0.0, 10.0, 3.0);
    check("arange u8", &ff::arange(0u8, 10, 3).unwrap(), U8, &[4], &want);
    let floats: &[(f64, f64, f64)] =
        &[(0.0, 1.0, 0.25), (1.0, -1.0, -0.5), (0.0, 1.0, 0.3), (-2.5, 2.5, 1.0), (0.5, 0.5, 0.1), (0.0, 0.9, 0.3)];
    for &(s, l, d) in floats {
        let want = arange_ref(s, l, d);
        check(&format!("arange f64 {s} {l} {d}"), &ff::arange(s, l, d).unwrap(), F64, &[want.len()], &want);
        let want32 = arange_ref(s as f32 as f64, l as f32 as f64, d as f32 as f64);
        check(
            &format!("arange f32 {s} {l} {d}"),
            &ff::arange(s as f32, l as f32, d as f32).unwrap(),
            F32,
            &[want32.len()],
            &want32,
        );
    }
    let h = ff::arange(f16::from_f32(0.0), f16::from_f32(2.0), f16::from_f32(0.5)).unwrap();
    check("arange f16", &h, F16, &[4], &[0.0, 0.5, 1.0, 1.5]);
}

#[test]
fn linspace_includes_both_ends() {
    let cases: &[(f64, f64, usize)] =
        &[(0.0, 1.0, 5), (1.0, -1.0, 3), (0.1, 0.7, 7), (2.0, 3.0, 1), (2.0, 3.0, 0), (-5.0, 5.0, 2), (0.0, 10.0, 11)];
    for &(s, e, n) in cases {
        let want: Vec<f64> = (0..n).map(|i| if n == 1 { s } else { s + (e - s) * i as f64 / (n - 1) as f64 }).collect();
        let t = ff::linspace(s, e, n).unwrap();
        check(&format!("linspace f64 {s} {e} {n}"), &t, F64, &[n], &want);
        if n > 1 {
            assert_eq!(t.to_ndarray::<f64>().unwrap()[n - 1], e, "the last value is exactly stop");
        }
        let t = ff::linspace(s as f32, e as f32, n).unwrap();
        let want32: Vec<f64> = want.iter().map(|&v| v as f32 as f64).collect();
        check(&format!("linspace f32 {s} {e} {n}"), &t, F32, &[n], &want32);
    }
    let t = ff::linspace(bf16::from_f32(0.0), bf16::from_f32(1.0), 3).unwrap();
    check("linspace bf16", &t, BF16, &[3], &[0.0, 0.5, 1.0]);
}

#[test]
fn eye_is_the_identity() {
    for &dt in ALL {
        for n in [0usize, 1, 3, 5] {
            let want: Vec<f64> = (0..n * n).map(|k| (k / n.max(1) == k % n.max(1)) as u8 as f64).collect();
            check(&format!("eye {dt} {n}"), &ff::eye(n, dt).unwrap(), dt, &[n, n], &want);
        }
    }
    // The identity of matmul.
    let a = Tensor::from_vec((0..6).map(|i| i as f32).collect(), &[2, 3]).unwrap();
    let p = ff::matmul(&a, ff::eye(3, F32).unwrap()).unwrap();
    assert_eq!(p.to_ndarray::<f32>().unwrap(), a.to_ndarray::<f32>().unwrap());
}
