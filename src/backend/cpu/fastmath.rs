//! Branch-free math that the compiler vectorizes: `exp_f32` (Cephes-style range reduction
//! plus a degree-6 polynomial, <= 2 ulp); for the non-positive arguments of softmax,
//! `exp_f32_nonpos` (the same with fewer operations, optionally fused multiply-adds) and
//! `exp_f64_nonpos` (the same reduction, Taylor polynomial of degree 13).
//!
//! Why: the peers spend half of softmax in glibc's scalar `expf`, which blocks
//! vectorization; a polynomial with selects instead of branches runs 8 or 16 lanes at once.

const HI: f32 = 88.722_84;
const LO: f32 = -87.336_55;
const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 in two parts, so that r = x - n ln 2 stays accurate.
const C1: f32 = 0.693_359_4;
const C2: f32 = -2.121_944_4e-4;
// n = round(x / ln 2) by the 1.5 * 2^23 trick (SSE2 has no vector floor).
const MAGIC: f32 = 12_582_912.0;
// The polynomial for (e^r - 1 - r) / r^2, highest degree first.
const P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];

/// `a * b + c`, fused when `FMA`. Only kernels compiled with the `fma` target feature pass
/// `true`: elsewhere `mul_add` is a libm call.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `n` from `t = x log2(e) + MAGIC` as an integer: t lies in [2^23, 2^24), where one unit is
/// one step of the bit pattern, so an integer subtraction gives it (`n as i32` saturates and
/// does not vectorize: LLVM emits a scalar conversion per lane). Garbage for NaN, which the
/// callers discard.
#[inline(always)]
fn int_of(t: f32) -> i32 {
    (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32)
}

/// `e^x` in f32, within 2 ulp of the correctly rounded result over the whole range;
/// overflow gives `inf`, underflow `0`, NaN stays NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    let xc = x.clamp(LO, HI);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * C1 - n * C2;
    let mut p = P[0];
    for &c in &P[1..] {
        p = p * r + c;
    }
    let y = p * r * r + r + 1.0;
    // 2^n from exponent bits, in two halves so both stay normal for n in -126..=128.
    let ni = int_of(t);
    let n1 = ni >> 1;
    let n2 = ni.wrapping_sub(n1);
    let p1 = f32::from_bits((n1.wrapping_add(127).clamp(1, 254) as u32) << 23);
    let p2 = f32::from_bits((n2.wrapping_add(127).clamp(1, 254) as u32) << 23);
    let v = y * p1 * p2;
    let v = if x > HI { f32::INFINITY } else { v };
    let v = if x < LO { 0.0 } else { v };
    if x.is_nan() { x } else { v }
}

/// `e^x` for `x <= 0`, `-inf` and NaN: the `x - max` of softmax. The reduction and
/// polynomial of `exp_f32` without its overflow handling, and one scale by `2^n` (here
/// `n >= -126`, so it is normal). Without `FMA` it equals `exp_f32` bit for bit on that
/// domain; with it the multiply-adds fuse (as accurate). Positive `x` gives garbage.
#[inline(always)]
pub(crate) fn exp_f32_nonpos<const FMA: bool>(x: f32) -> f32 {
    // `x < LO` is false for NaN, which then flows through the arithmetic.
    let xc = if x < LO { LO } else { x };
    let t = madd::<FMA>(xc, LOG2E, MAGIC);
    let n = t - MAGIC;
    let r = madd::<FMA>(-n, C2, madd::<FMA>(-n, C1, xc));
    let mut p = P[0];
    for &c in &P[1..] {
        p = madd::<FMA>(p, r, c);
    }
    let y = madd::<FMA>(p * r, r, r) + 1.0;
    let scale = f32::from_bits((int_of(t).wrapping_add(127) as u32) << 23);
    let v = y * scale;
    if x < LO { 0.0 } else { v }
}

/// `a * b + c` in f64, fused when `FMA` (as `madd`).
#[inline(always)]
fn madd64<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `1 / k!` for `k` in `0..=13`.
const INV_FACT: [f64; 14] = {
    let mut a = [1.0; 14];
    let mut f = 1.0;
    let mut k = 1;
    while k < 14 {
        f *= k as f64;
        a[k] = 1.0 / f;
        k += 1;
    }
    a
};

/// `e^x` in f64 for `x <= 0`, `-inf` and NaN, within 2 ulp of the correctly rounded result
/// down to `ln(2^-1022)`, below which (where `f64::exp` is subnormal) it gives `0`.
/// `x = n ln 2 + r` with `|r| <= ln 2 / 2`, `e^r` by its Taylor series to degree 13 (the rest
/// is below 2^-57), times `2^n` from exponent bits. Positive `x` gives garbage.
#[inline(always)]
pub(crate) fn exp_f64_nonpos<const FMA: bool>(x: f64) -> f64 {
    const LO: f64 = -708.396_418_532_264_1;
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    // ln 2 in two parts; the high one ends in 21 zero bits, so `n * LN2_HI` is exact.
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // `x < LO` is false for NaN, which then flows through the arithmetic.
    let xc = if x < LO { LO } else { x };
    let t = madd64::<FMA>(xc, std::f64::consts::LOG2_E, MAGIC);
    let n = t - MAGIC;
    let r = madd64::<FMA>(-n, LN2_LO, madd64::<FMA>(-n, LN2_HI, xc));
    let mut p = INV_FACT[13];
    for k in (0..13).rev() {
        p = madd64::<FMA>(p, r, INV_FACT[k]);
    }
    // n in -1022..=0 here: the bits of t minus those of MAGIC, as for f32.
    let ni = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    let v = p * f64::from_bits((ni.wrapping_add(1023) as u64) << 52);
    if x < LO { 0.0 } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_over_the_range() {
        let mut x = -100.0f32;
        while x < 100.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            if want > 1e-37 && want < 3e38 {
                assert!(((got - want) / want).abs() < 3e-7, "exp({x}) = {got}, want {want}");
            }
            x += 0.0137;
        }
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn exp_nonpos_matches_exp_without_fma() {
        // Every 61st f32 at or below zero, -inf and the NaNs included.
        let mut bits = 0x8000_0000u32;
        loop {
            let x = f32::from_bits(bits);
            let (a, b) = (exp_f32(x), exp_f32_nonpos::<false>(x));
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "exp({x}) = {a} vs {b}");
            bits = match bits.checked_add(61) {
                Some(b) => b,
                None => break,
            };
        }
        for x in [0.0, -0.0, f32::NEG_INFINITY, LO, -87.0, -1e-30] {
            assert_eq!(exp_f32(x).to_bits(), exp_f32_nonpos::<false>(x).to_bits(), "{x}");
        }
        assert!(exp_f32_nonpos::<false>(f32::NAN).is_nan());
    }

    #[test]
    fn exp_nonpos_with_fma_is_accurate() {
        let mut x = 0.0f32;
        while x > -100.0 {
            let want = (x as f64).exp();
            let got = exp_f32_nonpos::<true>(x) as f64;
            if want > 1e-37 {
                assert!(((got - want) / want).abs() < 3e-7, "exp({x}) = {got}, want {want}");
            } else if x < LO {
                assert_eq!(got, 0.0, "exp({x})");
            }
            x -= 0.0137;
        }
        assert_eq!(exp_f32_nonpos::<true>(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32_nonpos::<true>(0.0), 1.0);
        assert!(exp_f32_nonpos::<true>(f32::NAN).is_nan());
    }

    #[test]
    fn exp_f64_nonpos_is_accurate() {
        // Within 2 ulp of libm's exp (itself within 1 ulp), with and without FMA.
        let ulps = |a: f64, b: f64| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        let mut x = 0.0f64;
        while x > -708.3 {
            let want = x.exp();
            for got in [exp_f64_nonpos::<false>(x), exp_f64_nonpos::<true>(x)] {
                assert!(ulps(got, want) <= 2, "exp({x}) = {got:e}, want {want:e}");
            }
            x -= 0.000_731;
        }
        for x in [-0.0, -1e-300, -0.346_573_590_279_972_6, -0.346_573_590_279_972_7, -708.39] {
            assert!(ulps(exp_f64_nonpos::<true>(x), x.exp()) <= 2, "{x}");
        }
        for fma in [false, true] {
            let f = if fma { exp_f64_nonpos::<true> } else { exp_f64_nonpos::<false> };
            assert_eq!(f(0.0), 1.0);
            assert_eq!(f(-709.0), 0.0);
            assert_eq!(f(f64::NEG_INFINITY), 0.0);
            assert!(f(f64::NAN).is_nan());
        }
    }
}
