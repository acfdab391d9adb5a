//! Float math for generated kernels: the `ff_exp`, `ff_log`, `ff_tanh`, `ff_sigmoid`,
//! `ff_erf`, `ff_sin`, `ff_cos` and `ff_pow` helpers the op tables (`prim::elementwise`) and
//! the softmax kernel call, per operand dtype. `helpers` emits into a kernel only the ones
//! its code calls (and what those call), so a kernel without transcendentals compiles no
//! library code.
//!
//! f32 (and f16, which computes in f32) wraps WGSL's builtins. f64 is a software library:
//! SPIR-V's GLSL.std.450 exp/log/sin/cos/tanh/pow are defined for 16/32-bit floats only,
//! and f32 precision would break f64's promise. It uses fdlibm's algorithms as musl and
//! the `libm` crate write them (argument reduction, then minimax polynomials or rational
//! approximations, each under 1 ulp): `e_exp`, `e_log`, `s_expm1` and musl's `tanh`,
//! `s_erf` (the CPU's gelu calls `libm::erf`, so gelu agrees bit for bit where the GPU
//! rounds as IEEE says), `e_pow`, and `k_sin`/`k_cos` after a three-step Cody-Waite
//! reduction by pi/2 below 2^20 pi/2. Larger sin/cos arguments reduce exactly
//! (Payne-Hanek) in integer arithmetic: 192 bits of 2/pi around the argument's exponent
//! times its 53-bit significand, so every finite input (1e300, f64::MAX) gets a correct
//! result. Only +, -, *, /, sqrt, abs, round and bit manipulation through
//! `bitcast<u64>` are used (f64 computes only where `SHADER_INT64` is there too). Results
//! of 2^k scaling are built on the bits (`ff64_scalbn`), so subnormal results are right
//! even where a driver flushes subnormal arithmetic; special values (NaN, infinities,
//! signed zeros) are returned as constants, never computed as `0/0` or `x - x`, which
//! WGSL leaves to the driver and an optimizer may fold.

use crate::dtype::DType;

/// One library function (or group: a helper's `src` may define several WGSL items), named
/// by the function other code calls.
struct Helper {
    name: &'static str,
    src: &'static str,
}

/// The WGSL a kernel over operand dtype `t` needs for the library calls in `code` (the
/// kernel's table helpers and program lines), transitively, in library order. Empty when
/// `code` calls none.
pub(crate) fn helpers(t: DType, code: &str) -> String {
    let lib = match t {
        DType::F32 | DType::F16 => F32,
        DType::F64 => F64,
        _ => return String::new(),
    };
    let mut used = vec![false; lib.len()];
    let mut todo = vec![code];
    while let Some(text) = todo.pop() {
        for (k, h) in lib.iter().enumerate() {
            if !used[k] && calls(text, h.name) {
                used[k] = true;
                todo.push(h.src);
            }
        }
    }
    lib.iter().zip(used).filter(|(_, u)| *u).map(|(h, _)| h.src).collect()
}

/// Whether `text` calls `name` (a whole identifier followed by `(`).
fn calls(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        text[i + name.len()..].starts_with('(') && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// f32: WGSL's builtins (f16 computes in f32 registers, so it uses these too).
const F32: &[Helper] = &[
    Helper { name: "ff_exp", src: "fn ff_exp(x: f32) -> f32 { return exp(x); }\n" },
    Helper { name: "ff_log", src: "fn ff_log(x: f32) -> f32 { return log(x); }\n" },
    Helper { name: "ff_sin", src: "fn ff_sin(x: f32) -> f32 { return sin(x); }\n" },
    Helper { name: "ff_cos", src: "fn ff_cos(x: f32) -> f32 { return cos(x); }\n" },
    Helper {
        name: "ff_tanh",
        // tanh's builtin overflows inside for |x| > ~44 on some drivers: clamp, keep NaN.
        src: "fn ff_tanh(x: f32) -> f32 { return select(tanh(clamp(x, -15.0, 15.0)), x, ff_isnan(x)); }\n",
    },
    Helper {
        name: "ff_sigmoid",
        src: r#"fn ff_sigmoid(x: f32) -> f32 {
    // Stable on both sides: exp of a non-positive number only.
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}
"#,
    },
    Helper {
        name: "ff_erf",
        src: r#"fn ff_erf(x: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
    return select(-y, y, x >= 0.0);
}
"#,
    },
    Helper {
        name: "ff_pow",
        src: r#"fn ff_pow(a: f32, b: f32) -> f32 {
    if (b == 0.0 || a == 1.0) { return 1.0; }
    if (ff_isnan(a) || ff_isnan(b)) { return a + b; }
    if (floor(b) == b && abs(b) <= 64.0) {
        // Exact-as-possible integer powers by squaring (what powf gives for small ints).
        var e = u32(abs(b));
        var base = a;
        var r = 1.0;
        loop {
            if (e == 0u) { break; }
            if ((e & 1u) == 1u) { r = r * base; }
            base = base * base;
            e = e >> 1u;
        }
        return select(r, 1.0 / r, b < 0.0);
    }
    let m = exp2(b * log2(abs(a)));
    if (a < 0.0) {
        if (floor(b) != b) { return bitcast<f32>(0x7fc00000u); }
        if (floor(b * 0.5) * 2.0 != b) { return -m; }
    }
    return m;
}
"#,
    },
];

/// f64: the software library (see the module doc). Internal helpers are `ff64_*`.
const F64: &[Helper] = &[
    Helper {
        name: "ff64_opaque",
        src: r#"// `v`, through a condition the driver cannot decide (`x` never equals `never` where this
// is called): SPIR-V lets drivers reassociate float math (naga emits no NoContraction),
// and Mesa folds `1 - (1 - h)` to `h` or `(u + v) - u` to `v`, losing the rounding error
// that fdlibm computes there on purpose.
fn ff64_opaque(v: f64, x: f64, never: f64) -> f64 { return select(v, x, x == never); }
"#,
    },
    Helper { name: "ff64_hi", src: "fn ff64_hi(x: f64) -> u32 { return u32(bitcast<u64>(x) >> 32u); }\n" },
    Helper {
        name: "ff64_pow2",
        src: "// 2^k for -1022 <= k <= 1023.\nfn ff64_pow2(k: i32) -> f64 { return bitcast<f64>(u64(k + 1023) << 52u); }\n",
    },
    Helper {
        name: "ff64_clz",
        src: r#"fn ff64_clz(u: u64) -> u32 {
    let h = u32(u >> 32u);
    if (h != 0u) { return countLeadingZeros(h); }
    return 32u + countLeadingZeros(u32(u & 0xfffffffflu));
}
"#,
    },
    Helper {
        name: "ff64_scalbn",
        src: r#"// y * 2^n for a normal y, rounded to nearest even on the bits: exact where the result
// is normal, one rounding where it is subnormal (as musl's scalbn), with no float op a
// flush-to-zero mode could change.
fn ff64_scalbn(y: f64, n: i32) -> f64 {
    let b = bitcast<u64>(y);
    let sign = b & 0x8000000000000000lu;
    let e = i32((b >> 52u) & 0x7fflu) + n;
    if (e >= 0x7ff) { return bitcast<f64>(sign | 0x7ff0000000000000lu); }
    if (e > 0) { return bitcast<f64>((b & 0x800ffffffffffffflu) | (u64(e) << 52u)); }
    let sh = u32(1 - e);
    if (sh > 53u) { return bitcast<f64>(sign); }
    let m = (b & 0x000ffffffffffffflu) | 0x0010000000000000lu;
    let q = m >> sh;
    let rem = m & ((1lu << sh) - 1lu);
    let half = 1lu << (sh - 1u);
    let up = rem > half || (rem == half && (q & 1lu) == 1lu);
    return bitcast<f64>(sign | (q + select(0lu, 1lu, up)));
}
"#,
    },
    Helper {
        name: "ff_exp",
        src: r#"// fdlibm's e_exp: x = k ln2 + r, |r| <= ln2/2, exp(r) = 1 + r + r c(r) / (2 - c(r))
// with c a degree-5 minimax polynomial in r^2 (error < 1 ulp), then 2^k on the bits.
fn ff_exp(x: f64) -> f64 {
    let hx = ff64_hi(x) & 0x7fffffffu;
    let neg = x < 0.0lf;
    if (hx >= 0x4086232bu) {
        if (ff_isnan(x)) { return x; }
        if (x > 7.09782712893383973096e+02lf) { return bitcast<f64>(0x7ff0000000000000lu); }
        if (x < -7.45133219101941108420e+02lf) { return 0.0lf; }
    }
    var k = 0;
    var hi = x;
    var lo = 0.0lf;
    if (hx > 0x3fd62e42u) {
        if (hx >= 0x3ff0a2b2u) {
            k = i32(1.44269504088896338700e+00lf * x + select(0.5lf, -0.5lf, neg));
        } else {
            k = select(1, -1, neg);
        }
        let fk = f64(k);
        hi = x - fk * 6.93147180369123816490e-01lf;
        lo = fk * 1.90821492927058770002e-10lf;
    } else if (hx <= 0x3e300000u) {
        return 1.0lf + x;
    }
    let r = hi - lo;
    let rr = r * r;
    let c = r - rr * (1.66666666666666019037e-01lf + rr * (-2.77777777770155933842e-03lf + rr * (6.61375632143793436117e-05lf + rr * (-1.65339022054652515390e-06lf + rr * 4.13813679705723846039e-08lf))));
    let y = 1.0lf + (((r * c) / (2.0lf - c) - lo) + hi);
    if (k == 0) { return y; }
    return ff64_scalbn(y, k);
}
"#,
    },
    Helper {
        name: "ff_log",
        src: r#"// fdlibm's e_log: x = 2^k (1 + f) with sqrt(2)/2 < 1 + f < sqrt(2), log(1 + f) from
// s = f / (2 + f) and a degree-14 polynomial in s (error < 1 ulp). Subnormals are
// normalized on the bits.
fn ff_log(x: f64) -> f64 {
    var ui = bitcast<u64>(x);
    var hx = u32(ui >> 32u);
    var k = 0;
    if (hx < 0x00100000u || (hx >> 31u) != 0u) {
        if ((ui << 1u) == 0lu) { return bitcast<f64>(0xfff0000000000000lu); }
        if ((hx >> 31u) != 0u) { return bitcast<f64>(0x7ff8000000000000lu); }
        let s = ff64_clz(ui) - 11u;
        ui = ((ui << s) & 0x000ffffffffffffflu) | 0x3ff0000000000000lu;
        k = -1022 - i32(s);
        hx = u32(ui >> 32u);
    } else if (hx >= 0x7ff00000u) {
        return x;
    } else if (hx == 0x3ff00000u && (ui << 32u) == 0lu) {
        return 0.0lf;
    }
    hx = hx + (0x3ff00000u - 0x3fe6a09eu);
    k = k + i32(hx >> 20u) - 0x3ff;
    hx = (hx & 0x000fffffu) + 0x3fe6a09eu;
    let f = bitcast<f64>((u64(hx) << 32u) | (ui & 0xfffffffflu)) - 1.0lf;
    let hfsq = 0.5lf * f * f;
    let s = f / (2.0lf + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (3.999999999940941908e-01lf + w * (2.222219843214978396e-01lf + w * 1.531383769920937332e-01lf));
    let t2 = z * (6.666666666666735130e-01lf + w * (2.857142874366239149e-01lf + w * (1.818357216161805012e-01lf + w * 1.479819860511658591e-01lf)));
    let r = t2 + t1;
    let dk = f64(k);
    return s * (hfsq + r) + dk * 1.90821492927058770002e-10lf - hfsq + f + dk * 6.93147180369123816490e-01lf;
}
"#,
    },
    Helper {
        name: "ff64_expm1",
        src: r#"// fdlibm's s_expm1 (for tanh): exp(x) - 1 without cancellation near 0 (error < 1 ulp).
fn ff64_expm1(x0: f64) -> f64 {
    var x = x0;
    let ux = bitcast<u64>(x);
    let hx = u32(ux >> 32u) & 0x7fffffffu;
    let neg = (ux >> 63u) != 0lu;
    if (hx >= 0x4043687au) {
        if (ff_isnan(x)) { return x; }
        if (neg) { return -1.0lf; }
        if (x > 7.09782712893383973096e+02lf) { return bitcast<f64>(0x7ff0000000000000lu); }
    }
    var k = 0;
    var c = 0.0lf;
    if (hx > 0x3fd62e42u) {
        var hi: f64;
        var lo: f64;
        if (hx < 0x3ff0a2b2u) {
            if (!neg) {
                hi = x - 6.93147180369123816490e-01lf;
                lo = 1.90821492927058770002e-10lf;
                k = 1;
            } else {
                hi = x + 6.93147180369123816490e-01lf;
                lo = -1.90821492927058770002e-10lf;
                k = -1;
            }
        } else {
            k = i32(1.44269504088896338700e+00lf * x + select(0.5lf, -0.5lf, neg));
            let t = f64(k);
            hi = x - t * 6.93147180369123816490e-01lf;
            lo = t * 1.90821492927058770002e-10lf;
        }
        x = hi - lo;
        c = (hi - x) - lo;
    } else if (hx < 0x3c900000u) {
        return x;
    }
    let hfx = 0.5lf * x;
    let hxs = x * hfx;
    let r1 = 1.0lf + hxs * (-3.33333333333331316428e-02lf + hxs * (1.58730158725481460165e-03lf + hxs * (-7.93650757867487942473e-05lf + hxs * (4.00821782732936239552e-06lf + hxs * -2.01099218183624371326e-07lf))));
    let t = 3.0lf - r1 * hfx;
    var e = hxs * ((r1 - t) / (6.0lf - x * t));
    if (k == 0) { return x - (x * e - hxs); }
    e = x * (e - c) - c;
    e = e - hxs;
    if (k == -1) { return 0.5lf * (x - e) - 0.5lf; }
    if (k == 1) {
        if (x < -0.25lf) { return -2.0lf * (e - (x + 0.5lf)); }
        return 1.0lf + 2.0lf * (x - e);
    }
    if (k < 0 || k > 56) { return ff64_scalbn(x - e + 1.0lf, k) - 1.0lf; }
    let twopk = ff64_pow2(k);
    let uf = ff64_pow2(-k);
    if (k < 20) { return (x - e + (1.0lf - uf)) * twopk; }
    return (x - (e + uf) + 1.0lf) * twopk;
}
"#,
    },
    Helper {
        name: "ff_tanh",
        src: r#"// musl's tanh: from expm1(2|x|), 1 beyond |x| > 20 (error < 2 ulp).
fn ff_tanh(x: f64) -> f64 {
    let ux = bitcast<u64>(x);
    let ax = bitcast<f64>(ux & 0x7ffffffffffffffflu);
    let w = u32(ux >> 32u) & 0x7fffffffu;
    var t: f64;
    if (w > 0x3fe193eau) {
        if (w > 0x40340000u) {
            if (ff_isnan(x)) { return x; }
            t = 1.0lf;
        } else {
            t = ff64_expm1(2.0lf * ax);
            t = 1.0lf - 2.0lf / (t + 2.0lf);
        }
    } else if (w > 0x3fd058aeu) {
        t = ff64_expm1(2.0lf * ax);
        t = t / (t + 2.0lf);
    } else if (w >= 0x00100000u) {
        t = ff64_expm1(-2.0lf * ax);
        t = -t / (t + 2.0lf);
    } else {
        t = ax;
    }
    return select(t, -t, (ux >> 63u) != 0lu);
}
"#,
    },
    Helper {
        name: "ff_sigmoid",
        src: r#"// As the CPU: exp of a non-positive number only.
fn ff_sigmoid(x: f64) -> f64 {
    if (x >= 0.0lf) { return 1.0lf / (1.0lf + ff_exp(-x)); }
    let e = ff_exp(x);
    return e / (1.0lf + e);
}
"#,
    },
    Helper {
        name: "ff_erf",
        src: r#"// fdlibm's s_erf (as libm::erf, which the CPU's gelu calls): rational approximations
// on [0, 0.84375), [0.84375, 1.25), then erfc from exp(-x^2) and one on [1.25, 6).
fn ff64_erfc2(ix: u32, x0: f64) -> f64 {
    if (ix < 0x3ff40000u) {
        let s = abs(x0) - 1.0lf;
        let p = -2.36211856075265944077e-03lf + s * (4.14856118683748331666e-01lf + s * (-3.72207876035701323847e-01lf + s * (3.18346619901161753674e-01lf + s * (-1.10894694282396677476e-01lf + s * (3.54783043256182359371e-02lf + s * -2.16637559486879084300e-03lf)))));
        let q = 1.0lf + s * (1.06420880400844228286e-01lf + s * (5.40397917702171048937e-01lf + s * (7.18286544141962662868e-02lf + s * (1.26171219808761642112e-01lf + s * (1.36370839120290507362e-02lf + s * 1.19844998467991074170e-02lf)))));
        return 1.0lf - 8.45062911510467529297e-01lf - p / q;
    }
    let x = abs(x0);
    let s = 1.0lf / (x * x);
    var r: f64;
    var bs: f64;
    if (ix < 0x4006db6du) {
        r = -9.86494403484714822705e-03lf + s * (-6.93858572707181764372e-01lf + s * (-1.05586262253232909814e+01lf + s * (-6.23753324503260060396e+01lf + s * (-1.62396669462573470355e+02lf + s * (-1.84605092906711035994e+02lf + s * (-8.12874355063065934246e+01lf + s * -9.81432934416914548592e+00lf))))));
        bs = 1.0lf + s * (1.96512716674392571292e+01lf + s * (1.37657754143519042600e+02lf + s * (4.34565877475229228821e+02lf + s * (6.45387271733267880336e+02lf + s * (4.29008140027567833386e+02lf + s * (1.08635005541779435134e+02lf + s * (6.57024977031928170135e+00lf + s * -6.04244152148580987438e-02lf)))))));
    } else {
        r = -9.86494292470009928597e-03lf + s * (-7.99283237680523006574e-01lf + s * (-1.77579549177547519889e+01lf + s * (-1.60636384855821916062e+02lf + s * (-6.37566443368389627722e+02lf + s * (-1.02509513161107724954e+03lf + s * -4.83519191608651397019e+02lf)))));
        bs = 1.0lf + s * (3.03380607434824582924e+01lf + s * (3.25792512996573918826e+02lf + s * (1.53672958608443695994e+03lf + s * (3.19985821950859553908e+03lf + s * (2.55305040643316442583e+03lf + s * (4.74528541206955367215e+02lf + s * -2.24409524465858183362e+01lf))))));
    }
    let z = bitcast<f64>(bitcast<u64>(x) & 0xffffffff00000000lu);
    return ff_exp(-z * z - 0.5625lf) * ff_exp((z - x) * (z + x) + r / bs) / x;
}
fn ff_erf(x: f64) -> f64 {
    let hx = ff64_hi(x);
    let neg = (hx >> 31u) != 0u;
    let ix = hx & 0x7fffffffu;
    if (ix >= 0x7ff00000u) {
        if (ff_isnan(x)) { return x; }
        return select(1.0lf, -1.0lf, neg);
    }
    if (ix < 0x3feb0000u) {
        if (ix < 0x3e300000u) { return 0.125lf * (8.0lf * x + 1.02703333676410069053e+00lf * x); }
        let z = x * x;
        let r = 1.28379167095512558561e-01lf + z * (-3.25042107247001499370e-01lf + z * (-2.84817495755985104766e-02lf + z * (-5.77027029648944159157e-03lf + z * -2.37630166566501626084e-05lf)));
        let s = 1.0lf + z * (3.97917223959155352819e-01lf + z * (6.50222499887672944485e-02lf + z * (5.08130628187576562776e-03lf + z * (1.32494738004321644526e-04lf + z * -3.96022827877536812320e-06lf))));
        return x + x * (r / s);
    }
    var y = 1.0lf;
    if (ix < 0x40180000u) { y = 1.0lf - ff64_erfc2(ix, x); }
    return select(y, -y, neg);
}
"#,
    },
    Helper {
        name: "ff64_ksin",
        src: r#"// fdlibm's k_sin on [-pi/4, pi/4]: x + y the argument (y its tail, used when has_y).
fn ff64_ksin(x: f64, y: f64, has_y: bool) -> f64 {
    let z = x * x;
    let w = z * z;
    let r = 8.33333333332248946124e-03lf + z * (-1.98412698298579493134e-04lf + z * 2.75573137070700676789e-06lf) + z * w * (-2.50507602534068634195e-08lf + z * 1.58969099521155010221e-10lf);
    let v = z * x;
    if (!has_y) { return x + v * (-1.66666666666666324348e-01lf + z * r); }
    return x - ((z * (0.5lf * y - v * r) - y) - v * -1.66666666666666324348e-01lf);
}
"#,
    },
    Helper {
        name: "ff64_kcos",
        src: r#"// fdlibm's k_cos on [-pi/4, pi/4].
fn ff64_kcos(x: f64, y: f64) -> f64 {
    let z = x * x;
    let w = z * z;
    let r = z * (4.16666666666666019037e-02lf + z * (-1.38888888888741095749e-03lf + z * 2.48015872894767294178e-05lf)) + w * w * (-2.75573143513906633035e-07lf + z * (2.08757232129817482790e-09lf + z * -1.13596475577881948265e-11lf));
    let hz = 0.5lf * z;
    let ww = 1.0lf - hz;
    return ww + (((ff64_opaque(1.0lf, x, 2.0lf) - ww) - hz) + (z * r - x * y));
}
"#,
    },
    Helper {
        name: "ff64_rem_pio2",
        src: r#"// x = n pi/2 + (y0 + y1), |y0 + y1| <= ~pi/4.
struct Ff64Rem { n: i32, y0: f64, y1: f64 }
// Below 2^20 pi/2: fdlibm's Cody-Waite reduction by pi/2 in up to three 33-bit pieces
// (good to 151 bits, enough for every such double). |x| > pi/4 here, so the error terms
// `(t - r) - w` and `(r - y0) - w` keep their roundings through `ff64_opaque(.., x, 0)`.
fn ff64_rem_pio2(x: f64) -> Ff64Rem {
    let ix = ff64_hi(x) & 0x7fffffffu;
    if (ix >= 0x413921fbu) { return ff64_rem_pio2_large(x); }
    let fnum = round(x * 6.36619772367581382433e-01lf);
    var r = x - fnum * 1.57079632673412561417e+00lf;
    var w = fnum * 6.07710050650619224932e-11lf;
    var y0 = ff64_opaque(r - w, x, 0.0lf);
    let ex = i32(ix >> 20u);
    if (ex - i32((ff64_hi(y0) >> 20u) & 0x7ffu) > 16) {
        var t = r;
        w = fnum * 6.07710050630396597660e-11lf;
        r = ff64_opaque(t - w, x, 0.0lf);
        w = fnum * 2.02226624879595063154e-21lf - ((t - r) - w);
        y0 = ff64_opaque(r - w, x, 0.0lf);
        if (ex - i32((ff64_hi(y0) >> 20u) & 0x7ffu) > 49) {
            t = r;
            w = fnum * 2.02226624871116645580e-21lf;
            r = ff64_opaque(t - w, x, 0.0lf);
            w = fnum * 8.47842766036889956997e-32lf - ((t - r) - w);
            y0 = ff64_opaque(r - w, x, 0.0lf);
        }
    }
    return Ff64Rem(i32(fnum), y0, (r - y0) - w);
}
"#,
    },
    Helper {
        name: "ff64_rem_pio2_large",
        src: r#"// 2/pi in binary, 64 zero bits first (bit 64 is the first after the point), 1216 bits.
const FF64_TWO_OVER_PI = array<u32, 40>(0x00000000u, 0x00000000u, 0xa2f9836eu, 0x4e441529u, 0xfc2757d1u, 0xf534ddc0u, 0xdb629599u, 0x3c439041u, 0xfe5163abu, 0xdebbc561u, 0xb7246e3au, 0x424dd2e0u, 0x06492eeau, 0x09d1921cu, 0xfe1deb1cu, 0xb129a73eu, 0xe88235f5u, 0x2ebb4484u, 0xe99c7026u, 0xb45f7e41u, 0x3991d639u, 0x835339f4u, 0x9c845f8bu, 0xbdf9283bu, 0x1ff897ffu, 0xde05980fu, 0xef2f118bu, 0x5a0a6d1fu, 0x6d367ecfu, 0x27cb09b7u, 0x4f463f66u, 0x9e5fea2du, 0x7527bac7u, 0xebe5f17bu, 0x3d0739f7u, 0x8a5292eau, 0x6bfb5fb1u, 0x1f8d5d08u, 0x56033046u, 0xfc7b6babu);
// Payne-Hanek for |x| >= 2^20 (exponent e >= 20) in integers. x = m 2^(e-52) with m the
// 53-bit significand; bits of 2/pi worth 2^2 and more after multiplying by x only add
// multiples of 4 (a whole turn), so x 2/pi mod 4 = m V 2^-190 for V the 192 bits from
// the one worth 2^1 on (the rest adds under 2^-137). Bits 190-191 of m V are the quadrant,
// the next 128 the fraction f (every double is at least 2^-61 from a multiple of pi/2, so
// 128 bits hold f to 2^-66 relative); f pi/2 is a 128x128-bit product, then hi + lo.
fn ff64_rem_pio2_large(x: f64) -> Ff64Rem {
    let b = bitcast<u64>(x);
    let s = u32(i32((b >> 52u) & 0x7fflu) - 1023 + 10);
    let w0 = s >> 5u;
    let sh = s & 31u;
    // One copy to index at run time (naga spills a constant array per dynamic access).
    var bits = FF64_TWO_OVER_PI;
    var v: array<u32, 6>;
    for (var k = 0u; k < 6u; k = k + 1u) {
        let pair = (u64(bits[w0 + k]) << 32u) | u64(bits[w0 + k + 1u]);
        v[5u - k] = u32((pair >> (32u - sh)) & 0xfffffffflu);
    }
    let m = (b & 0x000ffffffffffffflu) | 0x0010000000000000lu;
    var p: array<u32, 8>;
    for (var i = 0u; i < 2u; i = i + 1u) {
        let a = u64(select(u32(m >> 32u), u32(m & 0xfffffffflu), i == 0u));
        var c = 0lu;
        for (var j = 0u; j < 6u; j = j + 1u) {
            let t = a * u64(v[j]) + u64(p[i + j]) + c;
            p[i + j] = u32(t & 0xfffffffflu);
            c = t >> 32u;
        }
        p[i + 6u] = u32(c);
    }
    var q = p[5] >> 30u;
    let q2 = (u64(p[5]) << 32u) | u64(p[4]);
    let q1 = (u64(p[3]) << 32u) | u64(p[2]);
    let q0 = (u64(p[1]) << 32u) | u64(p[0]);
    var fh = (q2 << 2u) | (q1 >> 62u);
    var fl = (q1 << 2u) | (q0 >> 62u);
    let round_up = (fh >> 63u) != 0lu;
    if (round_up) {
        // f >= 1/2: the nearest quadrant is the next one, at distance 1 - f.
        fl = ~fl + 1lu;
        fh = ~fh + select(0lu, 1lu, fl == 0lu);
        q = q + 1u;
    }
    // (fh:fl) 2^-128 times pi/2 = C 2^-127 (C's 32-bit limbs, low first).
    var fv = array<u32, 4>(u32(fl & 0xfffffffflu), u32(fl >> 32u), u32(fh & 0xfffffffflu), u32(fh >> 32u));
    var cv = array<u32, 4>(0x80dc1cd1u, 0xc4c6628bu, 0x2168c234u, 0xc90fdaa2u);
    var rp: array<u32, 8>;
    for (var i = 0u; i < 4u; i = i + 1u) {
        var c = 0lu;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let t = u64(fv[i]) * u64(cv[j]) + u64(rp[i + j]) + c;
            rp[i + j] = u32(t & 0xfffffffflu);
            c = t >> 32u;
        }
        rp[i + 4u] = u32(c);
    }
    // r = (rh:rl) 2^-127; normalized so hi takes 53 bits exactly and lo the next ones.
    let rh = (u64(rp[7]) << 32u) | u64(rp[6]);
    let rl = (u64(rp[5]) << 32u) | u64(rp[4]);
    var n = i32(q & 3u);
    if (rh == 0lu) { return Ff64Rem(select(n, -n, x < 0.0lf), 0.0lf, 0.0lf); }
    let lz = ff64_clz(rh);
    var nh = rh;
    var nl = rl;
    if (lz > 0u) {
        nh = (rh << lz) | (rl >> (64u - lz));
        nl = rl << lz;
    }
    let sc = -i32(lz);
    var y0 = f64(nh >> 11u) * ff64_pow2(sc - 52);
    var y1 = f64(nh & 0x7fflu) * ff64_pow2(sc - 63) + f64(nl) * ff64_pow2(sc - 127);
    if (round_up != (x < 0.0lf)) {
        y0 = -y0;
        y1 = -y1;
    }
    if (x < 0.0lf) { n = -n; }
    return Ff64Rem(n, y0, y1);
}
"#,
    },
    Helper {
        name: "ff_sin",
        src: r#"// fdlibm's s_sin: the kernel on [-pi/4, pi/4] after reduction by pi/2.
fn ff_sin(x: f64) -> f64 {
    let ix = ff64_hi(x) & 0x7fffffffu;
    if (ix <= 0x3fe921fbu) {
        if (ix < 0x3e500000u) { return x; }
        return ff64_ksin(x, 0.0lf, false);
    }
    if (ix >= 0x7ff00000u) { return bitcast<f64>(0x7ff8000000000000lu); }
    let r = ff64_rem_pio2(x);
    let q = r.n & 3;
    if (q == 0) { return ff64_ksin(r.y0, r.y1, true); }
    if (q == 1) { return ff64_kcos(r.y0, r.y1); }
    if (q == 2) { return -ff64_ksin(r.y0, r.y1, true); }
    return -ff64_kcos(r.y0, r.y1);
}
"#,
    },
    Helper {
        name: "ff_cos",
        src: r#"// fdlibm's s_cos: the kernel on [-pi/4, pi/4] after reduction by pi/2.
fn ff_cos(x: f64) -> f64 {
    let ix = ff64_hi(x) & 0x7fffffffu;
    if (ix <= 0x3fe921fbu) {
        if (ix < 0x3e46a09eu) { return 1.0lf; }
        return ff64_kcos(x, 0.0lf);
    }
    if (ix >= 0x7ff00000u) { return bitcast<f64>(0x7ff8000000000000lu); }
    let r = ff64_rem_pio2(x);
    let q = r.n & 3;
    if (q == 0) { return ff64_kcos(r.y0, r.y1); }
    if (q == 1) { return -ff64_ksin(r.y0, r.y1, true); }
    if (q == 2) { return -ff64_kcos(r.y0, r.y1); }
    return ff64_ksin(r.y0, r.y1, true);
}
"#,
    },
    Helper {
        name: "ff_pow",
        src: r#"// fdlibm's e_pow: IEEE special cases first (pow(x, 0) = pow(1, y) = 1 even for NaN,
// negative bases with integer exponents, zeros and infinities), then log2(x) in extra
// precision (t1 + t2, splits by masking low words), y log2(x) = z, 2^z (error < 1 ulp;
// integer powers that fit come out exact). Each error term `a - (b - c)` goes through
// `ff64_opaque` (y != 0 here): NVIDIA's driver rewrote `ax - (t_h - bp)` as `(ax + bp) - t_h`,
// 14 ulp off for pow(3.58, -430).
fn ff64_signed(neg: bool, v: f64) -> f64 { return select(v, -v, neg); }
fn ff64_with_hi(x: f64, hi: u32) -> f64 { return bitcast<f64>((u64(hi) << 32u) | (bitcast<u64>(x) & 0xfffffffflu)); }
fn ff64_lo0(x: f64) -> f64 { return bitcast<f64>(bitcast<u64>(x) & 0xffffffff00000000lu); }
fn ff_pow(x: f64, y: f64) -> f64 {
    let bx = bitcast<u64>(x);
    let by = bitcast<u64>(y);
    let hx = bitcast<i32>(u32(bx >> 32u));
    let lx = u32(bx & 0xfffffffflu);
    let hy = bitcast<i32>(u32(by >> 32u));
    let ly = u32(by & 0xfffffffflu);
    var ix = hx & 0x7fffffff;
    let iy = hy & 0x7fffffff;
    let inf = bitcast<f64>(0x7ff0000000000000lu);
    let nan = bitcast<f64>(0x7ff8000000000000lu);
    if ((u32(iy) | ly) == 0u) { return 1.0lf; }
    if (hx == 0x3ff00000 && lx == 0u) { return 1.0lf; }
    if (ix > 0x7ff00000 || (ix == 0x7ff00000 && lx != 0u) || iy > 0x7ff00000 || (iy == 0x7ff00000 && ly != 0u)) {
        return x + y;
    }
    // yisint: 0 y not an integer, 1 odd, 2 even (only needed for x < 0).
    var yisint = 0;
    if (hx < 0) {
        if (iy >= 0x43400000) {
            yisint = 2;
        } else if (iy >= 0x3ff00000) {
            let k = (iy >> 20u) - 0x3ff;
            if (k > 20) {
                let j = ly >> u32(52 - k);
                if ((j << u32(52 - k)) == ly) { yisint = 2 - i32(j & 1u); }
            } else if (ly == 0u) {
                let j = iy >> u32(20 - k);
                if ((j << u32(20 - k)) == iy) { yisint = 2 - (j & 1); }
            }
        }
    }
    if (ly == 0u) {
        if (iy == 0x7ff00000) {
            if (((ix - 0x3ff00000) | bitcast<i32>(lx)) == 0) { return 1.0lf; }
            if (ix >= 0x3ff00000) { return select(0.0lf, inf, hy >= 0); }
            return select(inf, 0.0lf, hy >= 0);
        }
        if (iy == 0x3ff00000) {
            if (hy >= 0) { return x; }
            return 1.0lf / x;
        }
        if (hy == 0x40000000) { return x * x; }
        if (hy == 0x3fe00000 && hx >= 0) { return sqrt(x); }
    }
    var ax = abs(x);
    if (lx == 0u && (ix == 0x7ff00000 || ix == 0 || ix == 0x3ff00000)) {
        // x is +-0, +-inf or +-1.
        var z = ax;
        if (hy < 0) { z = select(select(1.0lf, 0.0lf, ix == 0x7ff00000), inf, ix == 0); }
        if (hx < 0) {
            if (((ix - 0x3ff00000) | yisint) == 0) { return nan; }
            if (yisint == 1) { z = -z; }
        }
        return z;
    }
    var neg = false;
    if (hx < 0) {
        if (yisint == 0) { return nan; }
        neg = yisint == 1;
    }
    var t1: f64;
    var t2: f64;
    if (iy > 0x41e00000) {
        // |y| > 2^31: over/underflow unless x is within 2^-20 of 1.
        if (iy > 0x43f00000) {
            if (ix <= 0x3fefffff) { return select(0.0lf, inf, hy < 0); }
            if (ix >= 0x3ff00000) { return select(0.0lf, inf, hy > 0); }
        }
        if (ix < 0x3fefffff) { return ff64_signed(neg, select(0.0lf, inf, hy < 0)); }
        if (ix > 0x3ff00000) { return ff64_signed(neg, select(0.0lf, inf, hy > 0)); }
        let t = ax - 1.0lf;
        let w = (t * t) * (0.5lf - t * (0.3333333333333333333333lf - t * 0.25lf));
        let u = 1.44269502162933349609e+00lf * t;
        let v = t * 1.92596299112661746887e-08lf - w * 1.44269504088896338700e+00lf;
        t1 = ff64_lo0(u + v);
        t2 = v - ff64_opaque(t1 - u, y, 0.0lf);
    } else {
        var n = 0;
        if (ix < 0x00100000) {
            ax = ax * 9007199254740992.0lf;
            n = n - 53;
            ix = bitcast<i32>(ff64_hi(ax));
        }
        n = n + (ix >> 20u) - 0x3ff;
        let j = ix & 0x000fffff;
        var k = 0;
        ix = j | 0x3ff00000;
        if (j <= 0x3988e) {
            k = 0;
        } else if (j < 0xbb67a) {
            k = 1;
        } else {
            k = 0;
            n = n + 1;
            ix = ix - 0x00100000;
        }
        ax = ff64_with_hi(ax, u32(ix));
        let bp = select(1.0lf, 1.5lf, k == 1);
        let dp_h = select(0.0lf, 5.84962487220764160156e-01lf, k == 1);
        let dp_l = select(0.0lf, 1.35003920212974897128e-08lf, k == 1);
        // ss = s_h + s_l = (x - bp) / (x + bp).
        let u = ax - bp;
        let v = 1.0lf / (ax + bp);
        let ss = u * v;
        let s_h = ff64_lo0(ss);
        var t_h = ff64_with_hi(0.0lf, ((u32(ix) >> 1u) | 0x20000000u) + 0x00080000u + (u32(k) << 18u));
        var t_l = ax - ff64_opaque(t_h - bp, y, 0.0lf);
        let s_l = v * ((u - s_h * t_h) - s_h * t_l);
        // log(ax).
        var s2 = ss * ss;
        var r = s2 * s2 * (5.99999999999994648725e-01lf + s2 * (4.28571428578550184252e-01lf + s2 * (3.33333329818377432918e-01lf + s2 * (2.72728123808534006489e-01lf + s2 * (2.30660745775561754067e-01lf + s2 * 2.06975017800338417784e-01lf)))));
        r = r + s_l * (s_h + ss);
        s2 = s_h * s_h;
        t_h = ff64_lo0(3.0lf + s2 + r);
        t_l = r - ff64_opaque(ff64_opaque(t_h - 3.0lf, y, 0.0lf) - s2, y, 0.0lf);
        let u2 = s_h * t_h;
        let v2 = s_l * t_h + t_l * ss;
        // 2/(3 log2) (ss + ...).
        let p_h = ff64_lo0(u2 + v2);
        let p_l = v2 - ff64_opaque(p_h - u2, y, 0.0lf);
        let z_h = 9.61796700954437255859e-01lf * p_h;
        let z_l = -7.02846165095275826516e-09lf * p_h + p_l * 9.61796693925975554329e-01lf + dp_l;
        // log2(ax) = n + dp_h + z_h + z_l.
        let tn = f64(n);
        t1 = ff64_lo0(((z_h + z_l) + dp_h) + tn);
        t2 = z_l - ff64_opaque(ff64_opaque(ff64_opaque(t1 - tn, y, 0.0lf) - dp_h, y, 0.0lf) - z_h, y, 0.0lf);
    }
    // (y1 + y2) (t1 + t2) = p_h + p_l.
    let y1 = ff64_lo0(y);
    let p_l = (y - y1) * t1 + y * t2;
    var p_h = y1 * t1;
    let z = p_l + p_h;
    let j = bitcast<i32>(ff64_hi(z));
    let i = bitcast<i32>(u32(bitcast<u64>(z) & 0xfffffffflu));
    if (j >= 0x40900000) {
        if (((j - 0x40900000) | i) != 0) { return ff64_signed(neg, inf); }
        if (p_l + 8.0085662595372944372e-17lf > z - p_h) { return ff64_signed(neg, inf); }
    } else if ((j & 0x7fffffff) >= 0x4090cc00) {
        if (((u32(j) - 0xc090cc00u) | u32(i)) != 0u) { return ff64_signed(neg, 0.0lf); }
        if (p_l <= z - p_h) { return ff64_signed(neg, 0.0lf); }
    }
    // 2^(p_h + p_l) = 2^n 2^r, |r| <= 1/2.
    let ij = j & 0x7fffffff;
    var k = (ij >> 20u) - 0x3ff;
    var n = 0;
    if (ij > 0x3fe00000) {
        n = j + (0x00100000 >> u32(k + 1));
        k = ((n & 0x7fffffff) >> 20u) - 0x3ff;
        let t = ff64_with_hi(0.0lf, u32(n & ~(0x000fffff >> u32(k))));
        n = ((n & 0x000fffff) | 0x00100000) >> u32(20 - k);
        if (j < 0) { n = -n; }
        p_h = p_h - t;
    }
    let t = ff64_lo0(p_l + p_h);
    let u = t * 6.93147182464599609375e-01lf;
    let v = (p_l - ff64_opaque(t - p_h, y, 0.0lf)) * 6.93147180559945286227e-01lf + t * -1.90465429995776804525e-09lf;
    var zz = u + v;
    let w = v - (ff64_opaque(zz, y, 0.0lf) - u);
    let tt = zz * zz;
    let t1b = zz - tt * (1.66666666666666019037e-01lf + tt * (-2.77777777770155933842e-03lf + tt * (6.61375632143793436117e-05lf + tt * (-1.65339022054652515390e-06lf + tt * 4.13813679705723846039e-08lf))));
    let r = (zz * t1b) / (t1b - 2.0lf) - (w + zz * w);
    zz = 1.0lf - ff64_opaque(r - zz, y, 0.0lf);
    let jj = bitcast<i32>(ff64_hi(zz)) + (n << 20u);
    if ((jj >> 20u) <= 0) {
        zz = ff64_scalbn(zz, n);
    } else {
        zz = ff64_with_hi(zz, u32(jj));
    }
    return ff64_signed(neg, zz);
}
"#,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_come_on_demand_with_what_they_call() {
        assert_eq!(helpers(DType::F64, "return x + 1.0;"), "");
        let sin = helpers(DType::F64, "fn ff_unary_sin(x: T) -> T { return ff_sin(x); }");
        for f in ["fn ff_sin(", "fn ff64_rem_pio2(", "fn ff64_rem_pio2_large(", "fn ff64_ksin(", "fn ff64_kcos("] {
            assert!(sin.contains(f), "{f} missing");
        }
        assert!(!sin.contains("fn ff_exp("), "only what sin needs");
        // A name inside another identifier is not a call.
        assert_eq!(helpers(DType::F64, "let my_ff_exp = 1.0; xff_exp(2.0)"), "");
        assert!(helpers(DType::F32, "ff_tanh(x)").contains("tanh(clamp("));
        assert_eq!(helpers(DType::I32, "ff_exp(x)"), "");
    }
}
