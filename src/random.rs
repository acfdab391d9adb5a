//! Seeded random tensors from Philox-4x32-10, a counter-based generator: element `i`
//! depends only on `(seed, i)`, so results are the same for any thread count, and the GPU
//! backend (`backend::wgpu::kernels::random`, for f32, and f64 where the GPU computes it,
//! inside a GPU scope) draws the same numbers.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::dtype::{DType, Element};
use crate::error::{Error, Loc, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;

const M0: u64 = 0xD251_1F53;
const M1: u64 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox-4x32 with 10 rounds: four 32-bit words for counter `ctr` under key `seed`.
#[inline]
pub(crate) fn philox(ctr: u64, seed: u64) -> [u32; 4] {
    let mut c = [ctr as u32, (ctr >> 32) as u32, 0x5EED_0001, 0];
    let mut k = [seed as u32, (seed >> 32) as u32];
    for _ in 0..10 {
        let p0 = M0 * c[0] as u64;
        let p1 = M1 * c[2] as u64;
        c = [(p1 >> 32) as u32 ^ c[1] ^ k[0], p1 as u32, (p0 >> 32) as u32 ^ c[3] ^ k[1], p0 as u32];
        k[0] = k[0].wrapping_add(W0);
        k[1] = k[1].wrapping_add(W1);
    }
    c
}

/// A uniform f64 in `[0, 1)` from two words (53 random bits).
#[inline]
fn unit(a: u32, b: u32) -> f64 {
    (((a as u64) << 21) ^ (b as u64 >> 11)) as f64 * (1.0 / (1u64 << 53) as f64)
}

static GLOBAL_SEED: AtomicU64 = AtomicU64::new(0x853C_49E6_748F_EA9B);
static OP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Sets the global seed (as `tf.random.set_seed`): later calls with `seed: None` draw
/// reproducible op seeds from it, in call order.
pub fn set_seed(seed: u64) {
    GLOBAL_SEED.store(seed, Ordering::Relaxed);
    OP_COUNTER.store(0, Ordering::Relaxed);
}

pub(crate) fn op_seed(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        let n = OP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let w = philox(n, GLOBAL_SEED.load(Ordering::Relaxed));
        (w[0] as u64) << 32 | w[1] as u64
    })
}

/// Fills `n` values; block `b` of 2 values comes from counter `b`.
fn generate<T: Element>(n: usize, seed: u64, f: impl Fn([u32; 4]) -> [f64; 2] + Sync) -> Vec<T> {
    let mut out = vec![T::default(); n];
    let fill = |(bi, chunk): (usize, &mut [T])| {
        for (j, pair) in chunk.chunks_mut(2).enumerate() {
            let v = f(philox((bi * 4096 + j) as u64, seed));
            for (o, x) in pair.iter_mut().zip(v) {
                *o = T::from_f64(x);
            }
        }
    };
    if n >= 1 << 15 {
        out.par_chunks_mut(8192).enumerate().for_each(fill);
    } else {
        out.chunks_mut(8192).enumerate().for_each(fill);
    }
    out
}

fn float_only(op: &'static str, dtype: DType, loc: Loc) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::DTypeMismatch {
            op,
            expected: "a float dtype (f16, bf16, f32, f64)".into(),
            found: dtype.to_string(),
            fix: Some("draw floats, then cast (and floor) to get integers".into()),
            location: Some(loc),
        })
    }
}

/// Standard normal values (mean 0, stddev 1), by Box-Muller over Philox words. The same
/// `seed` gives the same tensor on any thread count; `None` draws from the global seed.
#[track_caller]
pub fn normal(shape: &[usize], dtype: DType, seed: Option<u64>) -> Result<Tensor> {
    let loc = Loc::caller();
    float_only("random::normal", dtype, loc)?;
    let n = Shape::checked_num_elements("random::normal", shape).map_err(|e| e.at(loc))?;
    let s = op_seed(seed);
    if let Some(t) = crate::dispatch::created::random_on_gpu(shape, dtype, s, crate::runtime::placement::Dist::Normal) {
        return t.map_err(|e| e.at(loc));
    }
    let f = |w: [u32; 4]| {
        let u1 = 1.0 - unit(w[0], w[1]); // (0, 1]: ln is finite
        let u2 = unit(w[2], w[3]);
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        [r * t.cos(), r * t.sin()]
    };
    crate::dispatch::created::place_created(
        crate::with_dtype!(dtype, T => Tensor::from_vec_unchecked(generate::<T>(n, s, f), Shape::new(shape))),
    )
}

/// Uniform values in `[0, 1)`, for every float dtype: a draw that would round up to 1 in
/// `dtype` is kept at the largest value below 1 (as TensorFlow, which never returns 1).
#[track_caller]
pub fn uniform(shape: &[usize], dtype: DType, seed: Option<u64>) -> Result<Tensor> {
    let loc = Loc::caller();
    float_only("random::uniform", dtype, loc)?;
    let n = Shape::checked_num_elements("random::uniform", shape).map_err(|e| e.at(loc))?;
    let s = op_seed(seed);
    if let Some(t) = crate::dispatch::created::random_on_gpu(shape, dtype, s, crate::runtime::placement::Dist::Uniform)
    {
        return t.map_err(|e| e.at(loc));
    }
    // The largest value below 1 in `dtype` (its spacing below 1 is 2^-(mantissa bits + 1)).
    let below_one = 1.0
        - match dtype {
            DType::F16 => 2f64.powi(-11),
            DType::BF16 => 2f64.powi(-8),
            DType::F32 => 2f64.powi(-24),
            _ => 2f64.powi(-53),
        };
    let f = |w: [u32; 4]| [unit(w[0], w[1]).min(below_one), unit(w[2], w[3]).min(below_one)];
    crate::dispatch::created::place_created(
        crate::with_dtype!(dtype, T => Tensor::from_vec_unchecked(generate::<T>(n, s, f), Shape::new(shape))),
    )
}

/// Standard normal values with every draw beyond two standard deviations redrawn (as
/// `tf.random.truncated_normal`; the result's stddev is about 0.88). Element `i` tries
/// counters `i`, `i + 2^40`, `i + 2^41`, ... until a draw lands in `[-2, 2]`, so it still
/// depends only on `(seed, i)`.
#[track_caller]
pub fn truncated_normal(shape: &[usize], dtype: DType, seed: Option<u64>) -> Result<Tensor> {
    let loc = Loc::caller();
    float_only("random::truncated_normal", dtype, loc)?;
    let n = Shape::checked_num_elements("random::truncated_normal", shape).map_err(|e| e.at(loc))?;
    let s = op_seed(seed);
    let one = |i: usize| -> f64 {
        let mut k = 0u64;
        loop {
            let w = philox(i as u64 + (k << 40), s ^ 0x7275_6E63_6174_6564);
            let u1 = 1.0 - unit(w[0], w[1]);
            let u2 = unit(w[2], w[3]);
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            if z.abs() <= 2.0 {
                return z;
            }
            k += 1;
        }
    };
    crate::with_dtype!(dtype, T => {
        let mut out = vec![T::default(); n];
        let fill = |(bi, chunk): (usize, &mut [T])| {
            for (j, o) in chunk.iter_mut().enumerate() {
                *o = T::from_f64(one(bi * 8192 + j));
            }
        };
        if n >= 1 << 15 {
            out.par_chunks_mut(8192).enumerate().for_each(fill);
        } else {
            out.chunks_mut(8192).enumerate().for_each(fill);
        }
        // Drawn on the host; in a GPU scope it then goes there (one counted upload).
        crate::dispatch::created::place_created(Tensor::from_vec_unchecked(out, Shape::new(shape)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_the_random123_known_answer() {
        // Known-answer test from Random123 (kat_vectors): counter and key all zeros.
        let mut c = [0u32; 4];
        let mut k = [0u32; 2];
        for _ in 0..10 {
            let p0 = M0 * c[0] as u64;
            let p1 = M1 * c[2] as u64;
            c = [(p1 >> 32) as u32 ^ c[1] ^ k[0], p1 as u32, (p0 >> 32) as u32 ^ c[3] ^ k[1], p0 as u32];
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        assert_eq!(c, [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    }
}
