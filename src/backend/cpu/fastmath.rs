//! Branch-free math that the compiler vectorizes: `exp_f32` (Cephes-style range reduction
//! plus a degree-6 polynomial, <= 2 ulp).
//!
//! Why: the peers spend half of softmax in glibc's scalar `expf`, which blocks
//! vectorization; a polynomial with selects instead of branches runs 8 lanes at once.

/// `e^x` in f32, within 2 ulp of the correctly rounded result over the whole range;
/// overflow gives `inf`, underflow `0`, NaN stays NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const HI: f32 = 88.722_84;
    const LO: f32 = -87.336_55;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let xc = x.clamp(LO, HI);
    // n = round(x / ln 2) by the 1.5 * 2^23 trick (SSE2 has no vector floor);
    // r = x - n ln 2 in two steps for accuracy.
    const MAGIC: f32 = 12_582_912.0;
    let n = (xc * LOG2E + MAGIC) - MAGIC;
    let r = xc - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from exponent bits, in two halves so both stay normal for n in -126..=128.
    let ni = n as i32;
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let p1 = f32::from_bits(((n1 + 127).clamp(1, 254) as u32) << 23);
    let p2 = f32::from_bits(((n2 + 127).clamp(1, 254) as u32) << 23);
    let v = y * p1 * p2;
    let v = if x > HI { f32::INFINITY } else { v };
    let v = if x < LO { 0.0 } else { v };
    if x.is_nan() { x } else { v }
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
}
