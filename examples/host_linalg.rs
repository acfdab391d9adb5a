//! Everyday hand-offs to the host, part 2: linear algebra and custom host functions.
//!
//! ferroflow has no eigen-solver, and does not need one: a symmetric matrix built with tensor
//! ops is converted once with `to_ndarray()` and handed to nalgebra, the way TensorFlow users
//! call `np.linalg.eigvals(t.numpy())`. Then a host function that ferroflow lacks (a robust
//! median-based normalisation) runs on a zero-copy `as_ndarray()` view, and its result moves
//! back into a tensor without a copy.
//!
//! Run it with `cargo run --release --example host_linalg`.

use ferroflow as ff;
use nalgebra::{DMatrix, SymmetricEigen};
use ndarray::{ArrayD, ArrayViewD, Axis};

fn main() -> ff::Result<()> {
    // ---- A symmetric matrix from tensor ops ---------------------------------------------
    // A = X^T X / n + I is symmetric positive definite, so its eigenvalues are real and > 1.
    let n = 200;
    let x = ff::random::normal(&[n, 4], ff::DType::F64, Some(3))?;
    let a = (ff::matmul_with(&x, &x, true, false)? / n as f64 + ff::eye(4, ff::DType::F64)?)?;

    // ---- Eigenvalues on the host with nalgebra -------------------------------------------
    let host = a.to_ndarray::<f64>()?; // one copy, into an array we own
    println!("A =\n{host:.4}");
    let m = DMatrix::from_row_slice(4, 4, host.as_slice().expect("to_ndarray is row-major and contiguous"));
    let eig = SymmetricEigen::new(m.clone());
    let mut values: Vec<f64> = eig.eigenvalues.iter().copied().collect();
    values.sort_by(f64::total_cmp);
    println!("eigenvalues of A: {values:.4?}");

    // Check the hand-off with ferroflow itself: the eigenvalues add up to the trace of A,
    // and A v = lambda v for the first eigenpair.
    let trace = (&a * &ff::eye(4, ff::DType::F64)?)?.reduce_sum(None, false)?.to_scalar::<f64>()?;
    let sum: f64 = values.iter().sum();
    println!("trace(A) = {trace:.6}, sum of eigenvalues = {sum:.6}");
    assert!((trace - sum).abs() < 1e-9);
    assert!(values.iter().all(|&l| l > 1.0));
    let v0: Vec<f64> = eig.eigenvectors.column(0).iter().copied().collect();
    let v = ff::Tensor::from_vec(v0, &[4, 1])?;
    let av = a.matmul(&v)?;
    let lv = (&v * eig.eigenvalues[0])?;
    let err = (&av - &lv)?.abs()?.reduce_max(None, false)?.to_scalar::<f64>()?;
    println!("max |A v - lambda v| = {err:.2e}");
    assert!(err < 1e-9);

    // ---- A custom host function on a zero-copy view --------------------------------------
    // Scores with a few outliers; normalise each row by its median and median absolute
    // deviation (needs a sort, which ferroflow has no op for).
    let scores = ff::Tensor::from(ndarray::array![[1.0f32, 2.0, 3.0, 4.0, 100.0], [10.0, 10.5, 9.5, 11.0, -50.0]]);
    let view = scores.as_ndarray::<f32>()?; // no copy: the view reads the tensor's buffer
    assert_eq!(view.as_ptr() as *const u8, scores.data_ptr());
    let robust = robust_scale(view); // host code, ndarray in and ndarray out
    let robust_ptr = robust.as_ptr() as *const u8;
    let robust = ff::Tensor::from(robust); // moves the result back: no copy
    assert_eq!(robust.data_ptr(), robust_ptr);
    println!("robust-scaled scores =\n{robust}");
    // ... and the pipeline continues with tensor ops: which entries are outliers?
    let outliers = robust.abs()?.greater(3.5f32)?;
    println!("outliers =\n{outliers}");
    assert_eq!(outliers.to_ndarray::<bool>()?.iter().filter(|&&b| b).count(), 2);
    Ok(())
}

/// `(x - median) / (1.4826 * MAD)` along the last axis: a host function written for ndarray,
/// the kind of legacy code that expects arrays rather than tensors.
fn robust_scale(x: ArrayViewD<'_, f32>) -> ArrayD<f32> {
    let mut out = x.to_owned();
    for mut row in out.lanes_mut(Axis(x.ndim() - 1)) {
        let med = median(row.iter().copied().collect());
        let mad = median(row.iter().map(|v| (v - med).abs()).collect());
        let scale = if mad > 0.0 { 1.4826 * mad } else { 1.0 };
        row.mapv_inplace(|v| (v - med) / scale);
    }
    out
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}
