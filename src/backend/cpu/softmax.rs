//! Numerically stable softmax and log-softmax along one axis, three passes over each row
//! (rows of up to a few thousand elements stay in L1 between them): the max; `exp(x - max)`
//! and its sum (stored for softmax, only summed for log-softmax); then the scale by
//! `1 / sum` or the shift by `ln(sum) + max`.
//!
//! The row kernel works in blocks of 16 lanes with the vectorizable `exp_f32_nonpos` /
//! `exp_f64_nonpos` (the row's tail padded with `-inf` into one more block), and is compiled
//! three times per type: for x86-64-v4 (AVX-512) and for AVX2, both with FMA, and for the
//! baseline, picked at run time. Large inputs go to rayon in blocks of whole rows of about
//! `par::chunk_len` elements, not one task per row. Half types compute in f32.
//!
//! Special values as in TensorFlow: a NaN anywhere in a row makes the whole row NaN (the max
//! passes over it, but its exp reaches the sum), so does `+inf` (`inf - inf`); a row of
//! `-inf` only gives NaN (0 / 0).

use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Sub};

use rayon::prelude::*;

use super::fastmath::{exp_f32_nonpos, exp_f64_nonpos};
use super::par::{PAR_MIN, chunk_len};
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor::storage::alloc;

/// What the row kernel needs of its element type: f32 and f64.
trait Lane:
    Element + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> + AddAssign + MulAssign
{
    const NEG_INF: Self;
    const ZERO: Self;
    const ONE: Self;
    /// `e^x` for `x <= 0`, `-inf` and NaN.
    fn exp_nonpos<const FMA: bool>(self) -> Self;
    fn ln(self) -> Self;
}

impl Lane for f32 {
    const NEG_INF: f32 = f32::NEG_INFINITY;
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    #[inline(always)]
    fn exp_nonpos<const FMA: bool>(self) -> f32 {
        exp_f32_nonpos::<FMA>(self)
    }
    #[inline(always)]
    fn ln(self) -> f32 {
        f32::ln(self)
    }
}

impl Lane for f64 {
    const NEG_INF: f64 = f64::NEG_INFINITY;
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    #[inline(always)]
    fn exp_nonpos<const FMA: bool>(self) -> f64 {
        exp_f64_nonpos::<FMA>(self)
    }
    #[inline(always)]
    fn ln(self) -> f64 {
        f64::ln(self)
    }
}

/// Lanes per block: one AVX-512 register of f32, two of f64.
const W: usize = 16;
/// Blocks the max pass keeps in flight (max is exact, so their order does not matter).
const MAXB: usize = 4;

/// `m = max(m, c)` lane by lane. `c > m` is false for NaN, so this is one `maxps` and NaN
/// is skipped here (it reaches the sum through exp).
#[inline(always)]
fn max_block<T: Lane>(m: &mut [T], c: &[T]) {
    for (m, &c) in m.iter_mut().zip(c) {
        *m = if c > *m { c } else { *m };
    }
}

/// `o = exp(c - mx)`, `s += o` lane by lane.
#[inline(always)]
fn exp_block<T: Lane, const FMA: bool>(s: &mut [T; W], o: &mut [T], c: &[T], mx: T) {
    for ((s, o), &c) in s.iter_mut().zip(o.iter_mut()).zip(c) {
        let e = (c - mx).exp_nonpos::<FMA>();
        *o = e;
        *s += e;
    }
}

/// One row: `o = softmax(x)` or `o = log_softmax(x)` (see the module header); `FMA` fuses
/// the multiply-adds of exp.
#[inline(always)]
fn row_body<T: Lane, const FMA: bool>(x: &[T], o: &mut [T], log: bool) {
    let n = x.len().min(o.len());
    let (x, o) = (&x[..n], &mut o[..n]);
    let split = n - n % W;
    let mut tail = [T::NEG_INF; W];
    tail[..n - split].copy_from_slice(&x[split..]);

    // Max.
    let mut m = [T::NEG_INF; W * MAXB];
    let mut big = x[..split].chunks_exact(W * MAXB);
    for c in &mut big {
        max_block(&mut m, c);
    }
    for c in big.remainder().chunks_exact(W).chain([&tail[..]]) {
        max_block(&mut m[..W], c);
    }
    let (m0, rest) = m.split_at_mut(W);
    for c in rest.chunks_exact(W) {
        max_block(m0, c);
    }
    let mut mx = m0.iter().fold(T::NEG_INF, |a, &b| if b > a { b } else { a });
    if mx == T::NEG_INF {
        mx = T::ZERO; // an all -inf row: exp gives 0s, and the division gives NaN as in TF
    }

    // Exp and sum (`x - mx <= 0`, or NaN); softmax keeps the exps in `o`, log-softmax
    // only needs the sum.
    let mut s = [T::ZERO; W];
    let mut junk = [T::ZERO; W];
    if log {
        for c in x[..split].chunks_exact(W) {
            exp_block::<T, FMA>(&mut s, &mut junk, c, mx);
        }
    } else {
        for (o, c) in o[..split].chunks_exact_mut(W).zip(x[..split].chunks_exact(W)) {
            exp_block::<T, FMA>(&mut s, o, c, mx);
        }
    }
    exp_block::<T, FMA>(&mut s, &mut junk, &tail, mx); // the -inf pads add exp(-inf) = 0
    let sum = s.iter().fold(T::ZERO, |a, &b| a + b);

    // Scale or shift.
    if log {
        let ls = sum.ln() + mx;
        for (o, &v) in o.iter_mut().zip(x) {
            *o = v - ls;
        }
    } else {
        o[split..].copy_from_slice(&junk[..n - split]);
        let inv = T::ONE / sum;
        for o in o.iter_mut() {
            *o *= inv;
        }
    }
}

/// Up to `W` rows of `n < W` elements (`x.len() / n` rows) with the rows in the lanes: the
/// columns are copied into blocks (`c[j][i]` = element `j` of row `i`), so each pass is one
/// vector operation per column instead of a padded block and a lane fold per row. The
/// [128, 10] logits of a classifier took ~56 ns a row one at a time. Same bits as
/// `row_body`: the same max, exp of the same differences, and each row's sum added in
/// element order from zero (`row_body`'s lane fold of a single padded block).
#[inline(always)]
fn short_rows_body<T: Lane, const FMA: bool>(x: &[T], o: &mut [T], n: usize, log: bool) {
    let r = (x.len() / n).min(W);
    let mut c = [[T::ZERO; W]; W];
    for i in 0..r {
        for j in 0..n {
            c[j][i] = x[i * n + j];
        }
    }
    let mut mx = [T::NEG_INF; W];
    for col in &c[..n] {
        max_block(&mut mx, col);
    }
    for m in &mut mx {
        if *m == T::NEG_INF {
            *m = T::ZERO;
        }
    }
    let mut s = [T::ZERO; W];
    let mut e = [[T::ZERO; W]; W];
    for (col, ej) in c[..n].iter().zip(&mut e) {
        for i in 0..W {
            ej[i] = (col[i] - mx[i]).exp_nonpos::<FMA>();
            s[i] += ej[i];
        }
    }
    if log {
        let mut ls = [T::ZERO; W];
        for i in 0..r {
            ls[i] = s[i].ln() + mx[i];
        }
        for i in 0..r {
            for j in 0..n {
                o[i * n + j] = c[j][i] - ls[i];
            }
        }
    } else {
        let mut inv = [T::ZERO; W];
        for i in 0..W {
            inv[i] = T::ONE / s[i];
        }
        for i in 0..r {
            for j in 0..n {
                o[i * n + j] = e[j][i] * inv[i];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
fn short_v4<T: Lane>(x: &[T], o: &mut [T], n: usize, log: bool) {
    short_rows_body::<T, true>(x, o, n, log)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn short_avx2<T: Lane>(x: &[T], o: &mut [T], n: usize, log: bool) {
    short_rows_body::<T, true>(x, o, n, log)
}

fn short_base<T: Lane>(x: &[T], o: &mut [T], n: usize, log: bool) {
    short_rows_body::<T, false>(x, o, n, log)
}

/// The best short-rows kernel for this CPU (the same levels as `row_kernel`).
fn short_kernel<T: Lane>() -> fn(&[T], &mut [T], usize, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_v4() {
            // SAFETY: `has_v4` checked every feature `short_v4` enables on this CPU.
            return |x, o, n, log| unsafe { short_v4(x, o, n, log) };
        }
        if has_avx2() {
            // SAFETY: `has_avx2` checked every feature `short_avx2` enables on this CPU.
            return |x, o, n, log| unsafe { short_avx2(x, o, n, log) };
        }
    }
    short_base
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
fn row_v4<T: Lane>(x: &[T], o: &mut [T], log: bool) {
    row_body::<T, true>(x, o, log)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_avx2<T: Lane>(x: &[T], o: &mut [T], log: bool) {
    row_body::<T, true>(x, o, log)
}

fn row_base<T: Lane>(x: &[T], o: &mut [T], log: bool) {
    row_body::<T, false>(x, o, log)
}

/// Whether this CPU has every feature `row_v4` enables.
#[cfg(target_arch = "x86_64")]
fn has_v4() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512dq")
        && has_avx2()
}

/// Whether this CPU has every feature `row_avx2` enables.
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// The best row kernel for this CPU (looked up once per call, not per row).
fn row_kernel<T: Lane>() -> fn(&[T], &mut [T], bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_v4() {
            // SAFETY: `has_v4` checked every feature `row_v4` enables on this CPU.
            return |x, o, log| unsafe { row_v4(x, o, log) };
        }
        if has_avx2() {
            // SAFETY: `has_avx2` checked every feature `row_avx2` enables on this CPU.
            return |x, o, log| unsafe { row_avx2(x, o, log) };
        }
    }
    row_base
}

/// Softmax of every row of `n` elements; in parallel when large, whole rows per task.
fn rows<T: Lane>(x: &[T], n: usize, log: bool) -> Vec<T> {
    let mut out = alloc::<T>(x.len());
    if n == 0 || x.is_empty() {
        return out;
    }
    let (f, short) = (row_kernel::<T>(), short_kernel::<T>());
    let block = |o: &mut [T], x: &[T]| {
        if n < W {
            for (o, x) in o.chunks_mut(n * W).zip(x.chunks(n * W)) {
                short(x, o, n, log);
            }
        } else {
            for (o, x) in o.chunks_mut(n).zip(x.chunks(n)) {
                f(x, o, log);
            }
        }
    };
    if x.len() >= PAR_MIN && x.len() > n {
        let c = chunk_len(x.len()).div_ceil(n) * n;
        out.par_chunks_mut(c).zip(x.par_chunks(c)).for_each(|(o, x)| block(o, x));
    } else {
        block(&mut out, x);
    }
    out
}

pub(crate) fn softmax(x: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
    let rank = x.rank();
    if rank > 0 && axis != rank - 1 {
        // Move the axis last, run rows, move it back.
        let mut perm: Vec<usize> = (0..rank).filter(|&d| d != axis).collect();
        perm.push(axis);
        let tshape: Shape = perm.iter().map(|&p| x.shape()[p]).collect::<Vec<_>>().into();
        let t = super::movement::transpose(x, &perm, tshape)?;
        let y = softmax(&t, rank - 1, log)?;
        let mut inv = vec![0; rank];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        return super::movement::transpose(&y, &inv, x.shape().clone());
    }
    let n = if rank == 0 { 1 } else { x.shape()[rank - 1] };
    let shape = x.shape().clone();
    match x.dtype() {
        DType::F32 => Ok(Tensor::from_vec_unchecked(rows(x.host_slice::<f32>("softmax")?, n, log), shape)),
        DType::F64 => Ok(Tensor::from_vec_unchecked(rows(x.host_slice::<f64>("softmax")?, n, log), shape)),
        d => {
            // Half types compute in f32 and round once.
            let wide = super::elementwise::cast(x, DType::F32)?;
            let y = softmax(&wide, axis, log)?;
            super::elementwise::cast(&y, d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::num::FloatK;

    /// The reference: a plain row with the type's own exp (`exp_f32`, `f64::exp`), in the
    /// same order of passes but no blocks.
    fn reference<T: FloatK>(x: &[T], o: &mut [T], log: bool) {
        let mut mx = x.iter().fold(T::lowest(), |a, &b| a.maximum(b));
        if mx == T::lowest() {
            mx = T::zero();
        }
        let mut sum = T::zero();
        for (o, &v) in o.iter_mut().zip(x) {
            *o = v.sub(mx).exp();
            sum = sum.add(*o);
        }
        if log {
            let ls = sum.ln().add(mx);
            for (o, &v) in o.iter_mut().zip(x) {
                *o = v.sub(ls);
            }
        } else {
            for o in o.iter_mut() {
                *o = o.div(sum);
            }
        }
    }

    type Kernel<T> = fn(&[T], &mut [T], bool);

    /// Every row kernel this CPU can run.
    fn kernels<T: Lane>() -> Vec<(&'static str, Kernel<T>)> {
        let mut k: Vec<(&str, Kernel<T>)> = vec![("base", row_base)];
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2() {
                // SAFETY: `has_avx2` checked the features on this CPU.
                k.push(("avx2", |x, o, l| unsafe { row_avx2(x, o, l) }));
            }
            if has_v4() {
                // SAFETY: `has_v4` checked the features on this CPU.
                k.push(("v4", |x, o, l| unsafe { row_v4(x, o, l) }));
            }
        }
        k
    }

    /// Rows of many lengths (every tail size, several blocks) with normal values, large
    /// spreads, and the special values.
    fn cases() -> Vec<Vec<f64>> {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut rows: Vec<Vec<f64>> = Vec::new();
        for n in (0..=70).chain([127, 128, 129, 1000, 1024, 1031]) {
            rows.push((0..n).map(|_| next() * 6.0 - 3.0).collect());
            rows.push((0..n).map(|_| next() * 200.0 - 100.0).collect());
        }
        let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 88.0, -1e30, 1e30];
        for n in [1, 2, 7, 16, 17, 64, 65, 100] {
            rows.push(vec![f64::NEG_INFINITY; n]);
            for (k, &sp) in specials.iter().enumerate() {
                let mut r: Vec<f64> = (0..n).map(|_| next() * 6.0 - 3.0).collect();
                r[(k * 7) % n] = sp;
                rows.push(r.clone());
                r.iter_mut().for_each(|v| *v = f64::NEG_INFINITY);
                r[(k * 5) % n] = sp;
                rows.push(r);
            }
        }
        rows
    }

    /// Each kernel against the reference: NaN, infinities and zeros in the same places, the
    /// rest within `tol` (relative; absolute below 1 for log-softmax).
    fn check<T: Lane + FloatK>(to: impl Fn(f64) -> T, tol: f64) {
        for x in cases() {
            let x: Vec<T> = x.into_iter().map(&to).collect();
            for log in [false, true] {
                let mut want = vec![T::zero(); x.len()];
                reference(&x, &mut want, log);
                for (name, k) in kernels::<T>() {
                    let mut got = vec![T::one(); x.len()];
                    k(&x, &mut got, log);
                    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                        let (g, w): (f64, f64) = (g.to_f64(), w.to_f64());
                        let ok = if w.is_nan() {
                            g.is_nan()
                        } else if w.is_infinite() || w == 0.0 {
                            g == w
                        } else {
                            (g - w).abs() <= tol * w.abs().max(if log { 1.0 } else { 0.0 })
                        };
                        assert!(ok, "{name} log={log} n={} [{i}]: {g} vs {w}", x.len());
                    }
                }
            }
        }
    }

    #[test]
    fn f32_kernels_match_the_reference() {
        check::<f32>(|v| v as f32, 2e-6);
    }

    #[test]
    fn f64_kernels_match_the_reference() {
        check::<f64>(|v| v, 4e-15);
    }

    #[test]
    fn short_rows_in_lanes_give_the_bits_of_one_row_at_a_time() {
        // Every row length below one block, with the special values of `cases`, in groups of
        // 1..=W rows (partial blocks too), for each kernel level this CPU runs.
        let all = cases();
        for n in 1..W {
            let rows_n: Vec<&Vec<f64>> = all.iter().filter(|r| r.len() == n).collect();
            let x32: Vec<f32> = rows_n.iter().flat_map(|r| r.iter().map(|&v| v as f32)).collect();
            let x64: Vec<f64> = rows_n.iter().flat_map(|r| r.iter().copied()).collect();
            for log in [false, true] {
                for (k, (name, f)) in kernels::<f32>().into_iter().enumerate() {
                    let short: fn(&[f32], &mut [f32], usize, bool) = [short_base, short_kernel()][k.min(1)];
                    let mut want = vec![0.0f32; x32.len()];
                    for (o, x) in want.chunks_mut(n).zip(x32.chunks(n)) {
                        f(x, o, log);
                    }
                    let mut got = vec![0.0f32; x32.len()];
                    for (o, x) in got.chunks_mut(n * 7).zip(x32.chunks(n * 7)) {
                        short(x, o, n, log);
                    }
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                            "{name} n={n} log={log}: {g} vs {w}"
                        );
                    }
                }
                let mut want = vec![0.0f64; x64.len()];
                for (o, x) in want.chunks_mut(n).zip(x64.chunks(n)) {
                    row_kernel::<f64>()(x, o, log);
                }
                let got = rows(&x64, n, log);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                        "f64 n={n} log={log}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn blocks_of_rows_cover_every_row() {
        // Rows of 3 and of 1000 across the parallel threshold, and one long row: every row
        // sums to 1.
        for (r, n) in [(20_000, 3), (70, 1000), (1, 40_000)] {
            let x: Vec<f32> = (0..r * n).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
            let y = rows(&x, n, false);
            for row in y.chunks(n) {
                let s: f32 = row.iter().sum();
                assert!((s - 1.0).abs() < 1e-4, "{s}");
            }
        }
    }
}
