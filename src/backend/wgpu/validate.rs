//! Every WGSL kernel the GPU backend can generate, parsed and validated with naga (the
//! front end and validator wgpu runs at pipeline creation) on the CPU: no GPU needed, so a
//! missing `ff_*` helper, a typo in a `.wgsl` file or a placeholder left unfilled fails in
//! plain `cargo test`. Each kernel is validated with exactly the capabilities its dtypes
//! need on a device (`SHADER_FLOAT16` for f16, `SHADER_INT64` for i64, `FLOAT64` and
//! `SHADER_INT64` for f64), so a kernel that needs none (i64 moved as words) is checked to
//! need none.

use naga::valid::{Capabilities, ValidationFlags, Validator};

use super::codegen::{Ew, LoadKind};
use super::fused::{self, LoadKinds};
use super::kernels::{Dist, cast, elementwise, matmul, movement, random, reduce, softmax};
use super::{math, sparse};
use crate::dtype::DType;
use crate::prim::fusion::{Fusion, FusionKind, Instr};
use crate::prim::{ArgOp, BinaryOp, ReduceOp, UnaryOp};

/// The dtypes that compute on some GPU.
const COMPUTE: [DType; 7] = [DType::F32, DType::F16, DType::F64, DType::I32, DType::I64, DType::U8, DType::Bool];
const NUMERIC: [DType; 6] = [DType::F32, DType::F16, DType::F64, DType::I32, DType::I64, DType::U8];
const REDUCE_OPS: [ReduceOp; 5] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min];

/// The capabilities a device computing `dtypes` has (`Ctx::computes`).
fn caps(dtypes: &[DType]) -> Capabilities {
    let mut c = Capabilities::empty();
    for d in dtypes {
        c |= match d {
            DType::F16 => Capabilities::SHADER_FLOAT16,
            DType::I64 => Capabilities::SHADER_INT64,
            DType::F64 => Capabilities::FLOAT64 | Capabilities::SHADER_INT64,
            _ => Capabilities::empty(),
        };
    }
    c
}

/// The distinct kernels validated so far (by text), and the failures (name, error, source).
#[derive(Default)]
struct Check {
    seen: std::collections::HashSet<String>,
    count: usize,
    failures: Vec<String>,
}

impl Check {
    /// Parses and validates `src` (kernel `name`) under the capabilities of `dtypes`, once
    /// per distinct text.
    fn wgsl(&mut self, name: &str, dtypes: &[DType], src: &str) {
        if !self.seen.insert(src.to_string()) {
            return;
        }
        self.count += 1;
        let module = match naga::front::wgsl::parse_str(src) {
            Ok(m) => m,
            Err(e) => {
                self.failures.push(format!("{name}: parse error: {}\n{src}", e.emit_to_string(src)));
                return;
            }
        };
        if let Err(e) = Validator::new(ValidationFlags::all(), caps(dtypes)).validate(&module) {
            self.failures.push(format!("{name}: invalid: {}\n{src}", e.emit_to_string(src)));
        }
    }

    fn ew(&mut self, name: &str, mut ew: Ew, loads: &[(LoadKind, DType)]) {
        ew.loads = loads.to_vec();
        let mut dtypes: Vec<DType> = loads.iter().map(|(_, d)| *d).collect();
        dtypes.extend([ew.t, ew.out]);
        let src = ew.source();
        self.wgsl(name, &dtypes, &src);
    }

    fn finish(self, min: usize) -> usize {
        assert!(self.failures.is_empty(), "{} of {} kernels fail:\n{}", self.failures.len(), self.count, {
            self.failures.join("\n\n")
        });
        assert!(self.count >= min, "only {} kernels enumerated", self.count);
        self.count
    }
}

#[test]
fn every_elementwise_kernel_validates() {
    use LoadKind::*;
    let mut c = Check::default();
    for &u in UnaryOp::ALL {
        for d in COMPUTE.into_iter().filter(|d| u.accepts().allows(*d)) {
            c.ew(&format!("{} {d}", u.name()), elementwise::unary_ew(u, d), &[(Contig, d)]);
        }
    }
    for &b in BinaryOp::ALL {
        for d in COMPUTE.into_iter().filter(|d| b.accepts().allows(*d)) {
            let name = format!("{} {d}", b.name());
            c.ew(&name, elementwise::binary_ew(b, d), &[(Contig, d), (Strided, d)]);
            c.ew(&name, elementwise::binary_ew(b, d), &[(Param, d), (Contig, d)]);
        }
    }
    for d in COMPUTE {
        c.ew(&format!("where_ {d}"), elementwise::select_ew(d), &[(Contig, DType::Bool), (Strided, d), (Param, d)]);
    }
    let n = c.finish(UnaryOp::ALL.len() + 2 * BinaryOp::ALL.len());
    eprintln!("{n} elementwise kernels validate");
}

#[test]
fn every_dense_kernel_validates() {
    let mut c = Check::default();
    for s in COMPUTE {
        for d in COMPUTE.into_iter().filter(|d| *d != s) {
            c.ew(&format!("cast {s} -> {d}"), cast::cast_ew(s, d), &[(LoadKind::Contig, s)]);
        }
    }
    for (s, d) in [(DType::I64, DType::I32), (DType::I32, DType::I64)] {
        let src = cast::cast_i64_source(s, d).expect("a word cast"); // ok: a test
        c.wgsl(&format!("cast {s} -> {d} (words)"), &[], &src);
    }
    for d in DType::ALL {
        // Movement needs no 64-bit feature (8-byte elements move as two words); f16 is halves.
        let need: &[DType] = if d == DType::F16 { &[DType::F16] } else { &[] };
        if let Some(src) = movement::copy_source(d) {
            c.wgsl(&format!("copy {d}"), need, &src);
        }
        for idx in [DType::I32, DType::I64, DType::U8] {
            if let Some(src) = movement::gather_source(d, idx) {
                c.wgsl(&format!("gather {d} by {idx}"), need, &src);
            }
        }
    }
    for d in COMPUTE {
        for idx in [DType::I32, DType::I64, DType::U8] {
            c.wgsl(&format!("one_hot {idx} -> {d}"), &[d], &movement::one_hot_source(idx, d));
        }
    }
    for d in NUMERIC {
        for op in REDUCE_OPS {
            c.wgsl(&format!("{} {d}", op.name()), &[d], &reduce::reduce_source(d, op));
        }
        for op in [ArgOp::Max, ArgOp::Min] {
            c.wgsl(&format!("{op:?} {d}"), &[d], &reduce::arg_reduce_source(d, op));
        }
        c.wgsl(&format!("matmul {d}"), &[d], &matmul::matmul_source(d));
    }
    for d in [DType::F32, DType::F16, DType::F64] {
        for log in [false, true] {
            c.wgsl(&format!("softmax {d} log={log}"), &[d], &softmax::softmax_source(d, log));
        }
    }
    for d in [DType::F32, DType::F64] {
        for dist in [Dist::Uniform, Dist::Normal] {
            c.wgsl(&format!("random {dist:?} {d}"), &[d], &random::random_source(dist, d));
        }
    }
    let n = c.finish(100);
    eprintln!("{n} dense kernels validate");
}

#[test]
fn every_sparse_kernel_validates() {
    let mut c = Check::default();
    for d in DType::ALL {
        for (name, src) in sparse::sources(d) {
            c.wgsl(&format!("{name} {d}"), &[d], &src);
        }
    }
    let n = c.finish(40);
    eprintln!("{n} sparse kernels validate");
}

/// A few fused programs over `n_loads` loads of dtype `t`, calling the math helpers.
fn programs() -> Vec<(usize, Vec<Instr>)> {
    use BinaryOp as B;
    use Instr::{Binary, Unary};
    use UnaryOp as U;
    vec![
        (1, vec![]),
        (2, vec![Binary(B::Mul, 0, 1), Unary(U::Exp, 2), Binary(B::Add, 3, 0), Unary(U::Tanh, 4)]),
        (3, vec![Binary(B::Sub, 0, 1), Unary(U::Square, 3), Binary(B::Pow, 4, 2), Unary(U::Sigmoid, 5)]),
        (2, vec![Unary(U::Sin, 0), Unary(U::Cos, 1), Binary(B::Maximum, 2, 3), Unary(U::Log, 4), Unary(U::Relu, 5)]),
    ]
}

/// Load kinds for `n` loads of `t`: contiguous, strided, then host scalars.
fn kinds(n: usize, t: DType) -> Vec<(LoadKind, DType)> {
    let all = [LoadKind::Contig, LoadKind::Strided, LoadKind::Param];
    (0..n).map(|k| (all[k % 3], t)).collect()
}

#[test]
fn every_fused_kind_validates() {
    let mut c = Check::default();
    for t in [DType::F32, DType::F64] {
        for (n_loads, program) in programs() {
            let f = |kind| Fusion { kind, n_loads, program: program.clone(), dtype: t };
            let lp = f(FusionKind::Loop);
            let (lines, result, helpers) = super::program(&lp);
            let ew = Ew { t, loads: vec![], lines, result, out: t, helpers };
            c.ew(&format!("fused_loop {t}"), ew, &kinds(n_loads, t));
            for op in REDUCE_OPS {
                let rf = f(FusionKind::Reduce { op, axes: Default::default(), keepdims: false });
                let src = fused::reduce_source(&rf, op, &LoadKinds(kinds(n_loads, t)));
                c.wgsl(&format!("fused {} {t}", op.name()), &[t], &src);
            }
            for (ta, tb) in [(false, false), (true, true)] {
                // Register 0 is the product; the loads are registers 1...
                let mf = f(FusionKind::MatMul { transpose_a: ta, transpose_b: tb });
                let src = fused::matmul_source(&mf, &LoadKinds(kinds(n_loads.saturating_sub(1), t)));
                c.wgsl(&format!("fused_matmul {t}"), &[t], &src);
            }
        }
    }
    let n = c.finish(50);
    eprintln!("{n} fused kernels validate");
}

/// The f64 math library has every helper the op tables call: each `ff_*` name an f64
/// expression uses is defined once the helpers are added.
#[test]
fn f64_math_helpers_cover_the_op_tables() {
    let mut c = Check::default();
    for &u in UnaryOp::ALL.iter().filter(|u| u.accepts().allows(DType::F64)) {
        let helpers = super::codegen::unary_fn(u);
        let src = format!("{}{helpers}{}", super::codegen::prelude(DType::F64), math::helpers(DType::F64, &helpers));
        c.wgsl(&format!("{} helpers f64", u.name()), &[DType::F64], &src);
    }
    let n = c.finish(10);
    eprintln!("{n} f64 op-table helper sets validate");
}
