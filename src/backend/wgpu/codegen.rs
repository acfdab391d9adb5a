//! WGSL generation for elementwise work: unary, binary, select, cast and fused loop
//! programs all become one kernel shape, "load each input (contiguous, broadcast through
//! strides, or a scalar passed as a parameter), run a few SSA lines, store". The op
//! expressions come from the tables in `prim::elementwise` (`UnaryOp::wgsl`, `BinaryOp::wgsl`);
//! they use the alias `T` (the operand type), the `ff_*` helpers `prelude` defines per `T`
//! and the math helpers (`ff_exp`, `ff_sin`, ...) `math::helpers` adds where called: WGSL
//! builtins for f32, a software library for f64.
//!
//! Buffers of f32, i32, u8 and bool are `array<u32>` (loads bitcast to the element type,
//! stores bitcast back); f16, f64 and i64 buffers are typed (`array<f16>` under
//! `enable f16;`, `array<f64>`, `array<i64>`), as those dtypes only compute on devices with
//! the matching shader feature. f16 computes in f32 registers and rounds once per op when
//! stored, which is exactly what the CPU's f16 kernels do. The kernel's text depends on dtypes, load kinds and the program, never on shapes
//! (rank, dims and strides are parameters), so pipelines are cached by text.

use std::fmt::Write;

use crate::dtype::DType;
use crate::prim::{BinaryOp, UnaryOp};

/// Threads per workgroup for one-thread-per-element kernels.
pub(crate) const WG: u32 = 256;

/// The WGSL type an element computes in (f16 in f32 registers).
pub(crate) fn ty(d: DType) -> &'static str {
    match d {
        DType::F32 | DType::F16 => "f32",
        DType::F64 => "f64",
        DType::I32 => "i32",
        DType::I64 => "i64",
        DType::Bool => "bool",
        DType::U8 | DType::BF16 => "u32", // u8 widened; bf16 never reaches codegen
    }
}

/// The element type of a storage array holding `d`.
pub(crate) fn elem(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        DType::F64 => "f64",
        DType::I64 => "i64",
        _ => "u32",
    }
}

/// The `enable` directives a kernel touching `dtypes` needs (they must come first).
pub(crate) fn enables(dtypes: &[DType]) -> &'static str {
    if dtypes.contains(&DType::F16) { "enable f16;\n" } else { "" }
}

/// A stored element as a value of `d`.
pub(crate) fn load(d: DType, w: &str) -> String {
    match d {
        DType::F32 => format!("bitcast<f32>({w})"),
        DType::I32 => format!("bitcast<i32>({w})"),
        DType::Bool => format!("({w} != 0u)"),
        DType::F16 => format!("f32({w})"),
        _ => w.to_string(),
    }
}

/// A value of `d` as a stored element (f16 rounds to nearest even here).
pub(crate) fn store(d: DType, v: &str) -> String {
    match d {
        DType::F32 | DType::I32 => format!("bitcast<u32>({v})"),
        DType::Bool => format!("select(0u, 1u, {v})"),
        DType::F16 => format!("f16({v})"),
        _ => v.to_string(),
    }
}

/// Parameter words per host scalar of `d` (8-byte dtypes take two).
pub(crate) fn param_words(d: DType) -> usize {
    if matches!(d, DType::F64 | DType::I64) { 2 } else { 1 }
}

/// A host scalar of `d` from parameter word `at` (and `at + 1`). f16 scalars are passed as
/// the f32 bits of their value (they compute in f32).
pub(crate) fn param_load(d: DType, at: &str) -> String {
    let w = format!("p[{at}]");
    let u64 = format!("(u64(p[{at}]) | (u64(p[{at} + 1u]) << 32u))");
    match d {
        DType::F16 => format!("bitcast<f32>({w})"),
        DType::F64 => format!("bitcast<f64>({u64})"),
        DType::I64 => format!("bitcast<i64>({u64})"),
        _ => load(d, &w),
    }
}

/// The integer helpers of a signed type: `$T` the WGSL type, `$s` its literal suffix, `$E`
/// the exponent (`b >= 0`) as u32 (the CPU saturates an i64 exponent at u32::MAX). Division
/// by zero gives 0 and floor division rounds toward -inf, as on the CPU; a negative
/// exponent keeps only 1 and -1.
fn signed_helpers(ty: &str, suffix: &str, exponent: &str) -> String {
    r#"
fn ff_isnan(x: $T) -> bool { return false; }
fn ff_max(a: $T, b: $T) -> $T { return max(a, b); }
fn ff_min(a: $T, b: $T) -> $T { return min(a, b); }
fn ff_relu(x: $T) -> $T { return max(x, 0$s); }
fn ff_floor_div(a: $T, b: $T) -> $T {
    if (b == 0$s) { return 0$s; }
    if (b == -1$s) { return 0$s - a; }
    let q = a / b;
    if ((a % b != 0$s) && ((a < 0$s) != (b < 0$s))) { return q - 1$s; }
    return q;
}
fn ff_pow(a: $T, b: $T) -> $T {
    if (b < 0$s) {
        if (a == 1$s) { return 1$s; }
        if (a == -1$s) { if (b % 2$s == 0$s) { return 1$s; } return a; }
        return 0$s;
    }
    var e = u32($E);
    var base = a;
    var r = 1$s;
    loop {
        if (e == 0u) { break; }
        if ((e & 1u) == 1u) { r = r * base; }
        base = base * base;
        e = e >> 1u;
    }
    return r;
}
"#
    .replace("$T", ty)
    .replace("$s", suffix)
    .replace("$E", exponent)
}

/// The helpers of a float type `$T` with bits `$U` (literal suffix `$s`, magnitude mask `$M`,
/// infinity's bits `$I`). NaN decisions are made on the bits: Vulkan lets drivers assume no
/// NaN in float math, and NVIDIA's turned `a > b || isnan(a) ? a : b` and `x < 0 ? 0 : x`
/// into max instructions that drop NaN. `ff_gtbits` is `a > b` for the bits of non-NaN
/// floats (+0 and -0 equal): sign-magnitude mapped to an ordered key.
fn float_helpers(ty: &str, bits: &str, suffix: &str, magnitude: &str, inf: &str) -> String {
    r#"
fn ff_nanbits(u: $U) -> bool { return (u & $M) > $I; }
fn ff_isnan(x: $T) -> bool { return ff_nanbits(bitcast<$U>(x)); }
fn ff_gtbits(a: $U, b: $U) -> bool {
    let ka = select(a | ~$M, ~a, a > $M);
    let kb = select(b | ~$M, ~b, b > $M);
    return ka > kb && ((a | b) & $M) != 0$s;
}
fn ff_max(a: $T, b: $T) -> $T {
    let ua = bitcast<$U>(a);
    let ub = bitcast<$U>(b);
    return bitcast<$T>(select(ub, ua, ff_nanbits(ua) || (!ff_nanbits(ub) && ff_gtbits(ua, ub))));
}
fn ff_min(a: $T, b: $T) -> $T {
    let ua = bitcast<$U>(a);
    let ub = bitcast<$U>(b);
    return bitcast<$T>(select(ub, ua, ff_nanbits(ua) || (!ff_nanbits(ub) && ff_gtbits(ub, ua))));
}
// 0 for x < 0 (not -0.0, not NaN): above the sign bit, up to -inf.
fn ff_relu(x: $T) -> $T { let u = bitcast<$U>(x); return bitcast<$T>(select(u, 0$s, u > ~$M && u <= (~$M | $I))); }
fn ff_floor_div(a: $T, b: $T) -> $T { return floor(a / b); }
"#
    .replace("$T", ty)
    .replace("$U", bits)
    .replace("$s", suffix)
    .replace("$M", magnitude)
    .replace("$I", inf)
}

/// `alias T` and the small `ff_*` helpers every kernel of operand dtype `t` may call (NaN
/// test, NaN-propagating max/min, floor division, integer powers). The float math the op
/// tables call comes from `math::helpers`, on demand.
pub(crate) fn prelude(t: DType) -> String {
    let mut s = format!("alias T = {};\n", ty(t));
    match t {
        DType::F32 | DType::F16 => s.push_str(&float_helpers("f32", "u32", "u", "0x7fffffffu", "0x7f800000u")),
        DType::I32 => s.push_str(&signed_helpers("i32", "", "b")),
        DType::F64 => s.push_str(&float_helpers("f64", "u64", "lu", "0x7ffffffffffffffflu", "0x7ff0000000000000lu")),
        DType::I64 => s.push_str(&signed_helpers("i64", "li", "min(b, 4294967295li)")),
        DType::U8 => s.push_str(
            r#"
fn ff_isnan(x: u32) -> bool { return false; }
fn ff_max(a: u32, b: u32) -> u32 { return max(a, b); }
fn ff_min(a: u32, b: u32) -> u32 { return min(a, b); }
fn ff_relu(x: u32) -> u32 { return x; }
fn ff_floor_div(a: u32, b: u32) -> u32 { if (b == 0u) { return 0u; } return a / b; }
fn ff_pow(a: u32, b: u32) -> u32 {
    var e = b;
    var base = a;
    var r = 1u;
    loop {
        if (e == 0u) { break; }
        if ((e & 1u) == 1u) { r = (r * base) & 255u; }
        base = (base * base) & 255u;
        e = e >> 1u;
    }
    return r;
}
"#,
        ),
        _ => {}
    }
    s
}

/// A unary expression over register `x`, wrapped for u8.
pub(crate) fn unary_expr(op: UnaryOp, t: DType, x: &str) -> String {
    let e = format!("ff_unary_{}({x})", op.name());
    wrap_u8(t, matches!(op, UnaryOp::Square | UnaryOp::Neg), e)
}

/// A binary expression over registers `a` and `b`, wrapped for u8.
pub(crate) fn binary_expr(op: BinaryOp, t: DType, a: &str, b: &str) -> String {
    let e = format!("ff_binary_{}({a}, {b})", op.name());
    wrap_u8(t, matches!(op, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul), e)
}

fn wrap_u8(t: DType, wraps: bool, e: String) -> String {
    if t == DType::U8 && wraps { format!("(({e}) & 255u)") } else { e }
}

/// The helper function for one table entry: `fn ff_unary_relu(x: T) -> T { return <wgsl>; }`.
pub(crate) fn unary_fn(op: UnaryOp) -> String {
    let out = if op == UnaryOp::LogicalNot { "bool" } else { "T" };
    let arg = if op == UnaryOp::LogicalNot { "bool" } else { "T" };
    format!("fn ff_unary_{}(x: {arg}) -> {out} {{ return {}; }}\n", op.name(), op.wgsl())
}

pub(crate) fn binary_fn(op: BinaryOp) -> String {
    let logical = matches!(op, BinaryOp::LogicalAnd | BinaryOp::LogicalOr);
    let arg = if logical { "bool" } else { "T" };
    let out = if op.is_comparison() || logical { "bool" } else { "T" };
    format!("fn ff_binary_{}(a: {arg}, b: {arg}) -> {out} {{ return {}; }}\n", op.name(), op.wgsl())
}

/// How an elementwise kernel reads one input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum LoadKind {
    /// Same element count as the output: element `i`.
    Contig,
    /// Broadcast: per-dim strides (0 where broadcast) from the parameters.
    Strided,
    /// A host scalar, passed as one parameter word.
    Param,
}

/// An elementwise kernel: loads, SSA lines (`let rK = ...;`), the register stored, and the
/// output dtype. `t` is the operand dtype (the `T` alias and helpers).
pub(crate) struct Ew {
    pub(crate) t: DType,
    pub(crate) loads: Vec<(LoadKind, DType)>,
    pub(crate) lines: Vec<String>,
    pub(crate) result: String,
    pub(crate) out: DType,
    /// Table helpers the lines call.
    pub(crate) helpers: String,
}

impl Ew {
    /// The WGSL source. Parameters: `n, rank, dims[rank]`, then `rank` strides per strided
    /// load (in load order), then one word per parameter load (two for f64 and i64).
    pub(crate) fn source(&self) -> String {
        let n_buf = self.loads.iter().filter(|(k, _)| *k != LoadKind::Param).count();
        let mut dts: Vec<DType> = self.loads.iter().map(|(_, d)| *d).collect();
        dts.push(self.out);
        let mut s = enables(&dts).to_string();
        s.push_str(&prelude(self.t));
        s.push_str(&self.helpers);
        s.push_str(&super::math::helpers(self.t, &self.helpers));
        let mut b = 0;
        for (k, d) in &self.loads {
            if *k != LoadKind::Param {
                let _ = writeln!(s, "@group(0) @binding({b}) var<storage, read> in{b}: array<{}>;", elem(*d));
                b += 1;
            }
        }
        let _ = writeln!(s, "@group(0) @binding({n_buf}) var<storage, read_write> out: array<{}>;", elem(self.out));
        let _ = writeln!(s, "@group(0) @binding({}) var<storage, read> p: array<u32>;", n_buf + 1);
        let _ = write!(
            s,
            "@compute @workgroup_size({WG})\nfn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {{\n    let i = (wg.x + wg.y * nwg.x) * {WG}u + li;\n    let n = p[0];\n    if (i >= n) {{ return; }}\n    let rank = p[1];\n"
        );
        let n_strided = self.loads.iter().filter(|(k, _)| *k == LoadKind::Strided).count();
        if n_strided > 0 {
            for j in 0..n_strided {
                let _ = writeln!(s, "    var o{j} = 0u;");
            }
            s.push_str("    var rem = i;\n    for (var d = i32(rank) - 1; d >= 0; d = d - 1) {\n        let dim = p[2u + u32(d)];\n        let c = rem % dim;\n        rem = rem / dim;\n");
            for j in 0..n_strided {
                let _ = writeln!(s, "        o{j} = o{j} + c * p[2u + rank * {}u + u32(d)];", j + 1);
            }
            s.push_str("    }\n");
        }
        let (mut buf, mut strided, mut param) = (0, 0, 0);
        for (r, (k, d)) in self.loads.iter().enumerate() {
            let value = match k {
                LoadKind::Contig => {
                    buf += 1;
                    load(*d, &format!("in{}[i]", buf - 1))
                }
                LoadKind::Strided => {
                    buf += 1;
                    strided += 1;
                    load(*d, &format!("in{}[o{}]", buf - 1, strided - 1))
                }
                LoadKind::Param => {
                    param += param_words(*d);
                    param_load(*d, &format!("2u + rank * {}u + {}u", n_strided + 1, param - param_words(*d)))
                }
            };
            let _ = writeln!(s, "    let r{r} = {value};");
        }
        for l in &self.lines {
            let _ = writeln!(s, "    {l}");
        }
        let _ = writeln!(s, "    out[i] = {};\n}}", store(self.out, &self.result));
        s
    }
}
