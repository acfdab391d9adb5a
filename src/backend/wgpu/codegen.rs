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

use super::template::render;
use crate::dtype::DType;
use crate::prim::{BinaryOp, UnaryOp};

/// The fixed parameters of an elementwise kernel (`wgsl/elementwise.wgsl`'s `Params`;
/// then `shape`: dims, the strided loads' strides, the host scalars' words).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct EwParams {
    pub(crate) n: u32,
    pub(crate) rank: u32,
}

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

/// A host scalar of `d` from word `at` (and `at + 1`) of the parameter array `arr`. f16
/// scalars are passed as the f32 bits of their value (they compute in f32).
pub(crate) fn param_load(d: DType, arr: &str, at: &str) -> String {
    let w = format!("{arr}[{at}]");
    let u64 = format!("(u64({arr}[{at}]) | (u64({arr}[{at} + 1u]) << 32u))");
    match d {
        DType::F16 => format!("bitcast<f32>({w})"),
        DType::F64 => format!("bitcast<f64>({u64})"),
        DType::I64 => format!("bitcast<i64>({u64})"),
        _ => load(d, &w),
    }
}

const PRELUDE_FLOAT: &str = include_str!("wgsl/prelude_float.wgsl");
const PRELUDE_SIGNED: &str = include_str!("wgsl/prelude_signed.wgsl");
const PRELUDE_U8: &str = include_str!("wgsl/prelude_u8.wgsl");
const ELEMENTWISE: &str = include_str!("wgsl/elementwise.wgsl");

/// `alias T` and the small `ff_*` helpers every kernel of operand dtype `t` may call (NaN
/// test, NaN-propagating max/min, floor division, integer powers: `wgsl/prelude_*.wgsl`).
/// The float math the op tables call comes from `math::helpers`, on demand.
pub(crate) fn prelude(t: DType) -> String {
    let mut s = format!("alias T = {};\n", ty(t));
    let float = |ty, bits, suffix, magnitude, inf| {
        render(PRELUDE_FLOAT, &[("T", ty), ("U", bits), ("S", suffix), ("M", magnitude), ("I", inf)])
    };
    let signed = |ty, suffix, exponent| render(PRELUDE_SIGNED, &[("T", ty), ("S", suffix), ("E", exponent)]);
    match t {
        DType::F32 | DType::F16 => s.push_str(&float("f32", "u32", "u", "0x7fffffffu", "0x7f800000u")),
        DType::I32 => s.push_str(&signed("i32", "", "b")),
        DType::F64 => s.push_str(&float("f64", "u64", "lu", "0x7ffffffffffffffflu", "0x7ff0000000000000lu")),
        DType::I64 => s.push_str(&signed("i64", "li", "min(b, 4294967295li)")),
        DType::U8 => s.push_str(PRELUDE_U8),
        _ => {}
    }
    s
}

/// `@group(0)` storage declarations as `Ctx::kernel` lays out the bindings: read-only
/// `in0..` of the `inputs`' element types, then `out` and the parameters `p: Params` (the
/// kernel's text declares `struct Params`).
pub(crate) fn bindings(inputs: &[&str], out: &str) -> String {
    let mut s = String::new();
    for (b, el) in inputs.iter().enumerate() {
        let _ = writeln!(s, "@group(0) @binding({b}) var<storage, read> in{b}: array<{el}>;");
    }
    let n = inputs.len();
    let _ = writeln!(s, "@group(0) @binding({n}) var<storage, read_write> out: array<{out}>;");
    let _ = writeln!(s, "@group(0) @binding({}) var<storage, read> p: Params;", n + 1);
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
    /// The WGSL source (`wgsl/elementwise.wgsl` around the generated body). Parameters:
    /// `EwParams`, then in `shape`: dims, `rank` strides per strided load (in load order),
    /// one word per parameter load (two for f64 and i64).
    pub(crate) fn source(&self) -> String {
        let mut dts: Vec<DType> = self.loads.iter().map(|(_, d)| *d).collect();
        dts.push(self.out);
        let mut s = enables(&dts).to_string();
        s.push_str(&prelude(self.t));
        s.push_str(&self.helpers);
        s.push_str(&super::math::helpers(self.t, &self.helpers));
        let ins: Vec<&str> = self.loads.iter().filter(|(k, _)| *k != LoadKind::Param).map(|(_, d)| elem(*d)).collect();
        s.push_str(&bindings(&ins, elem(self.out)));
        let mut body = String::new();
        let n_strided = self.loads.iter().filter(|(k, _)| *k == LoadKind::Strided).count();
        if n_strided > 0 {
            for j in 0..n_strided {
                let _ = writeln!(body, "    var o{j} = 0u;");
            }
            body.push_str("    var rem = i;\n    for (var d = i32(rank) - 1; d >= 0; d = d - 1) {\n        let dim = p.shape[u32(d)];\n        let c = rem % dim;\n        rem = rem / dim;\n");
            for j in 0..n_strided {
                let _ = writeln!(body, "        o{j} = o{j} + c * p.shape[rank * {}u + u32(d)];", j + 1);
            }
            body.push_str("    }\n");
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
                    let at = format!("rank * {}u + {}u", n_strided + 1, param - param_words(*d));
                    param_load(*d, "p.shape", &at)
                }
            };
            let _ = writeln!(body, "    let r{r} = {value};");
        }
        for l in &self.lines {
            let _ = writeln!(body, "    {l}");
        }
        let _ = write!(body, "    out[i] = {};", store(self.out, &self.result));
        s.push_str(&render(ELEMENTWISE, &[("BODY", &body)]));
        s
    }
}
