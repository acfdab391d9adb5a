//! Tensors made from nothing: `zeros ones full arange linspace eye`.

use crate::dtype::{DType, Element};
use crate::error::{Error, Loc, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;

fn filled(op: &'static str, shape: &[usize], dtype: DType, v: f64, loc: Loc) -> Result<Tensor> {
    let n = Shape::checked_num_elements(op, shape).map_err(|e| e.at(loc))?;
    crate::dispatch::created::place_created(
        crate::with_dtype!(dtype, T => Tensor::from_vec_unchecked(vec![T::from_f64(v); n], Shape::new(shape))),
    )
}

/// A tensor of zeros.
#[track_caller]
pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
    filled("zeros", shape, dtype, 0.0, Loc::caller())
}

/// A tensor of ones.
#[track_caller]
pub fn ones(shape: &[usize], dtype: DType) -> Result<Tensor> {
    filled("ones", shape, dtype, 1.0, Loc::caller())
}

/// A tensor filled with `value`, of `value`'s own dtype (`full(&[2], 7i64)` is i64).
#[track_caller]
pub fn full<T: Element>(shape: &[usize], value: T) -> Result<Tensor> {
    // The location is taken here: `Loc::caller()` inside the closure would name this file.
    let loc = Loc::caller();
    let n = Shape::checked_num_elements("full", shape).map_err(|e| e.at(loc))?;
    crate::dispatch::created::place_created(Tensor::from_vec_unchecked(vec![value; n], Shape::new(shape)))
}

/// `[start, start + delta, ...)` up to (not including) `limit`, of `T`'s dtype
/// (`arange(0i32, 5, 1)` is i32, `arange(0.0f32, 1.0, 0.25)` is f32).
/// Errors: `InvalidArgument` when `delta` is 0 or points away from `limit`.
#[track_caller]
pub fn arange<T: Element>(start: T, limit: T, delta: T) -> Result<Tensor> {
    let loc = Loc::caller();
    let (s, l, d) = (start.to_f64(), limit.to_f64(), delta.to_f64());
    if T::DTYPE == DType::Bool || d == 0.0 || !d.is_finite() || (l - s) * d < 0.0 || !s.is_finite() || !l.is_finite() {
        return Err(Error::InvalidArgument {
            op: "arange",
            message: format!(
                "expected a non-zero delta that moves start toward limit, found start={start}, limit={limit}, delta={delta}"
            ),
            location: Some(loc),
        });
    }
    let n = ((l - s) / d).ceil().max(0.0) as usize;
    let v: Vec<T> = if T::DTYPE.is_int() {
        (0..n as i64).map(|i| T::from_i64(start.to_i64() + i * delta.to_i64())).collect()
    } else {
        (0..n).map(|i| T::from_f64(s + i as f64 * d)).collect()
    };
    crate::dispatch::created::place_created(Tensor::from_vec_unchecked(v, Shape::new(&[n])))
}

/// `num` evenly spaced values from `start` to `stop` inclusive, of `T`'s (float) dtype.
#[track_caller]
pub fn linspace<T: Element>(start: T, stop: T, num: usize) -> Result<Tensor> {
    let loc = Loc::caller();
    if !T::DTYPE.is_float() {
        return Err(Error::DTypeMismatch {
            op: "linspace",
            expected: "a float start and stop (f16, bf16, f32, f64)".into(),
            found: T::DTYPE.to_string(),
            fix: Some("pass float literals such as 0.0f32, or use arange for integers".into()),
            location: Some(loc),
        });
    }
    let (s, e) = (start.to_f64(), stop.to_f64());
    let v: Vec<T> = match num {
        0 => vec![],
        1 => vec![start],
        _ => (0..num)
            .map(|i| T::from_f64(if i == num - 1 { e } else { s + (e - s) * i as f64 / (num - 1) as f64 }))
            .collect(),
    };
    crate::dispatch::created::place_created(Tensor::from_vec_unchecked(v, Shape::new(&[num])))
}

/// The `n × n` identity matrix.
#[track_caller]
pub fn eye(n: usize, dtype: DType) -> Result<Tensor> {
    let loc = Loc::caller();
    let nn = Shape::checked_num_elements("eye", &[n, n]).map_err(|e| e.at(loc))?;
    crate::with_dtype!(dtype, T => {
        let mut v = vec![T::from_f64(0.0); nn];
        for i in 0..n {
            v[i * n + i] = T::from_f64(1.0);
        }
        crate::dispatch::created::place_created(Tensor::from_vec_unchecked(v, Shape::new(&[n, n])))
    })
}
