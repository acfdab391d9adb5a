//! Weight initialisers (Keras's names and formulas): `zeros`, `ones`, `glorot_uniform`,
//! `glorot_normal`, `he_uniform`, `he_normal`, each seeded through `ff::random` (Philox),
//! so the same seed gives the same weights on any machine and thread count.
//!
//! Values are computed on the host in f64 and stored in the requested dtype, without ops:
//! a layer built inside a traced function's first trace still gets concrete initial values
//! (an op on concrete tensors would be recorded into the graph there).

use crate::dtype::DType;
use crate::error::{Error, Loc, Result};
use crate::random;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// How to fill a new weight tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Initializer {
    /// All zeros (Keras's bias default).
    Zeros,
    /// All ones.
    Ones,
    /// Every element `value`.
    Constant(f64),
    /// `U(-l, l)` with `l = sqrt(6 / (fan_in + fan_out))` (Keras's kernel default).
    GlorotUniform,
    /// Truncated normal with stddev `sqrt(2 / (fan_in + fan_out))`.
    GlorotNormal,
    /// `U(-l, l)` with `l = sqrt(6 / fan_in)`, for ReLU layers.
    HeUniform,
    /// Truncated normal with stddev `sqrt(2 / fan_in)`, for ReLU layers.
    HeNormal,
}

/// `(fan_in, fan_out)` as Keras computes them: `[in, out]` for a matrix; for a
/// convolution kernel `[..spatial, in, out]`, both times the spatial size.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [a, b] => (*a, *b),
        [spatial @ .., a, b] => {
            // Saturating: a user's shape may overflow; fans only scale an initializer's range.
            let r = spatial.iter().fold(1usize, |r, d| r.saturating_mul(*d));
            (a.saturating_mul(r), b.saturating_mul(r))
        }
    }
}

// Keras divides a truncated normal's stddev by this: the stddev of a standard normal
// truncated to [-2, 2], so the drawn values have the stddev the formula asks for.
const TRUNC_STD: f64 = 0.879_625_661_034_239_8;

impl Initializer {
    /// A `shape` tensor of `dtype` (a float dtype, except for the constant initialisers).
    /// `seed: None` draws a seed from the global one (`ff::random::set_seed`).
    #[track_caller]
    pub fn init(&self, shape: &[usize], dtype: DType, seed: Option<u64>) -> Result<Tensor> {
        init_impl(*self, shape, dtype, seed, Loc::caller())
    }
}

pub(crate) fn init_impl(
    init: Initializer,
    shape: &[usize],
    dtype: DType,
    seed: Option<u64>,
    loc: Loc,
) -> Result<Tensor> {
    let n = Shape::checked_num_elements("initializer", shape).map_err(|e| e.at(loc))?;
    let random = !matches!(init, Initializer::Zeros | Initializer::Ones | Initializer::Constant(_));
    if random && !dtype.is_float() {
        return Err(Error::DTypeMismatch {
            op: "initializer",
            expected: "a float dtype (f16, bf16, f32, f64) for random weights".into(),
            found: dtype.to_string(),
            fix: Some("create float weights, or use Initializer::Zeros / Constant".into()),
            location: Some(loc),
        });
    }
    let (fan_in, fan_out) = fans(shape);
    let (fan_in, fan_out) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
    let values: Vec<f64> = match init {
        Initializer::Zeros => vec![0.0; n],
        Initializer::Ones => vec![1.0; n],
        Initializer::Constant(c) => vec![c; n],
        Initializer::GlorotUniform => scaled_uniform(shape, seed, (6.0 / (fan_in + fan_out)).sqrt(), loc)?,
        Initializer::HeUniform => scaled_uniform(shape, seed, (6.0 / fan_in).sqrt(), loc)?,
        Initializer::GlorotNormal => scaled_normal(shape, seed, (2.0 / (fan_in + fan_out)).sqrt() / TRUNC_STD, loc)?,
        Initializer::HeNormal => scaled_normal(shape, seed, (2.0 / fan_in).sqrt() / TRUNC_STD, loc)?,
    };
    // Made where the creation functions make tensors: on the scope's GPU, if any.
    crate::dispatch::created::place_created(crate::with_dtype!(dtype, T => {
        let v: Vec<T> = values.into_iter().map(<T as crate::dtype::Element>::from_f64).collect();
        Tensor::from_vec_unchecked(v, Shape::new(shape))
    }))
}

/// The f64 draw on the host whatever the device scope (it is scaled and cast there, then
/// placed once).
fn host_draw(f: impl FnOnce() -> Result<Tensor>, loc: Loc) -> Result<Tensor> {
    crate::runtime::placement::with_device(crate::Device::Cpu, f).map_err(|e| e.at(loc))
}

fn scaled_uniform(shape: &[usize], seed: Option<u64>, limit: f64, loc: Loc) -> Result<Vec<f64>> {
    let u = host_draw(|| random::uniform(shape, DType::F64, seed), loc)?;
    Ok(u.host_slice::<f64>("initializer")?.iter().map(|x| (2.0 * x - 1.0) * limit).collect())
}

fn scaled_normal(shape: &[usize], seed: Option<u64>, std: f64, loc: Loc) -> Result<Vec<f64>> {
    let z = host_draw(|| random::truncated_normal(shape, DType::F64, seed), loc)?;
    Ok(z.host_slice::<f64>("initializer")?.iter().map(|x| x * std).collect())
}

/// All zeros.
#[track_caller]
pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
    init_impl(Initializer::Zeros, shape, dtype, None, Loc::caller())
}

/// Glorot (Xavier) uniform: `U(-l, l)`, `l = sqrt(6 / (fan_in + fan_out))`.
#[track_caller]
pub fn glorot_uniform(shape: &[usize], dtype: DType, seed: Option<u64>) -> Result<Tensor> {
    init_impl(Initializer::GlorotUniform, shape, dtype, seed, Loc::caller())
}

/// Glorot (Xavier) normal: truncated normal, stddev `sqrt(2 / (fan_in + fan_out))`.
#[track_caller]
pub fn glorot_normal(shape: &[usize], dtype: DType, seed: Option<u64>) -> Result<Tensor> {
    init_impl(Initializer::GlorotNormal, shape, dtype, seed, Loc::caller())
}

/// He (Kaiming) uniform: `U(-l, l)`, `l = sqrt(6 / fan_in)`.
#[track_caller]
pub fn he_uniform(shape: &[usize], dtype: DType, seed: Option<u64>) -> Result<Tensor> {
    init_impl(Initializer::HeUniform, shape, dtype, seed, Loc::caller())
}

/// He (Kaiming) normal: truncated normal, stddev `sqrt(2 / fan_in)`.
#[track_caller]
pub fn he_normal(shape: &[usize], dtype: DType, seed: Option<u64>) -> Result<Tensor> {
    init_impl(Initializer::HeNormal, shape, dtype, seed, Loc::caller())
}
