//! Data-driven tests of each optimizer pass (`check(program, options, expected_ir)`, as in
//! ir_check.rs): a small program is traced with some passes on, the optimized graph's text
//! must equal the expected IR exactly, and the function run on data must give eager mode's
//! results (and prints). Then fused kernels on unknown dims and on large outputs, the memory
//! plan's peak on a large chain, the pass reports and the thread-local options.

use ferroflow as ff;
use ff::function::{Body, CallArgs, Outputs};
use ff::{DType, Error, FunctionOptions, OptimizerOptions, PassKind, Tensor, TensorSpec};

use crate::common::*;

/// Traces `body` for `specs` with `opts`, asserts the optimized graph's text is `expected`,
/// then runs it on `data` and compares with eager mode (values within a float tolerance that
/// allows reordered sums, and the same prints). Returns the concrete function.
#[track_caller]
fn check<M, F, D>(
    opts: OptimizerOptions,
    body: F,
    specs: impl CallArgs,
    data: D,
    expected: &str,
) -> std::sync::Arc<ff::ConcreteFunction>
where
    F: Body<M>,
    D: CallArgs + Copy,
{
    let f = ff::function_with(FunctionOptions { optimizer: Some(opts), ..Default::default() }, body);
    let cf = f.get_concrete_function(specs).unwrap();
    cf.graph().verify().unwrap();
    cf.optimized_graph().verify().unwrap();
    assert_eq!(
        normalize(&cf.optimized_graph().to_string()),
        expected.trim(),
        "\n--- got ---\n{}\n--- traced ---\n{}\n{}",
        cf.optimized_graph(),
        cf.graph(),
        cf.pass_report()
    );
    let (got, got_prints) = ff::capture_prints(|| f.call(data).map(Outputs::flatten));
    let (want, want_prints) =
        ff::capture_prints(|| ff::config::with_functions_run_eagerly(true, || f.call(data)).map(Outputs::flatten));
    assert_eq!(f.tracing_count(), 1, "the call reuses the concrete function");
    assert_eq!(got_prints, want_prints, "prints");
    match (want, got) {
        (Ok(w), Ok(g)) => {
            assert_eq!(w.len(), g.len());
            for (k, (w, g)) in w.iter().zip(&g).enumerate() {
                let tol = Tol::of(w.dtype()).at_least(if w.dtype() == DType::F32 { 1e-5 } else { 0.0 }, 0.0);
                assert_close(&format!("output {k}"), g, w.dtype(), &values(w), tol);
            }
        }
        (Err(w), Err(g)) => assert_eq!(std::mem::discriminant(&w), std::mem::discriminant(&g), "{w} vs {g}"),
        (w, g) => panic!("eager {:?}, optimized {:?}", w.map(|v| v.len()), g.map(|v| v.len())),
    }
    cf
}

/// Graph text with variable ids (process-unique, so they depend on test order) as `var?`.
fn normalize(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(" var") {
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push('?');
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

fn f32s(dims: &[usize]) -> TensorSpec {
    TensorSpec::new(&dims.iter().map(|d| Some(*d)).collect::<Vec<_>>(), DType::F32)
}

/// Deterministic f32 data of a shape.
fn data(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n = dims.iter().product();
    tensor(F32, dims, &values_for(&mut rng, F32, n, Domain::Any))
}

/// A pass and pruning (which removes what the pass bypassed, so the text shows the result).
fn with_pruning(p: PassKind) -> OptimizerOptions {
    OptimizerOptions::only(p).with(PassKind::Pruning, true)
}

type R = ff::Result<Tensor>;

// ---- pruning ----------------------------------------------------------------------------------

#[test]
fn pruning_removes_dead_nodes_and_keeps_side_effects() {
    let v = ff::Variable::new(Tensor::from_slice(&[0.0f32; 3], &[3]).unwrap()).unwrap();
    let var = v.clone();
    let x = data(&[3], 1);
    let cf = check(
        OptimizerOptions::only(PassKind::Pruning),
        move |x: &Tensor| -> R {
            let _dead = x.exp()?.sqrt()?; // no reader: removed
            ff::print(&x.neg()?)?; // a side effect: kept with its input
            var.assign_add(x)?; // a side effect: kept
            let _unused_read = var.value(); // a read nobody uses: removed
            x * 2.0f32
        },
        f32s(&[3]),
        &x,
        "
graph(x:0: f32[3]) {
  %3: f32[3] = neg x:0
  %4: f32[3] = print %3
  %5: f32[3] = assign_add var? x:0
  %7: f32[] = const 2.
  %8: f32[3] = mul x:0 %7
  return (%8)
}",
    );
    assert_eq!(cf.graph().node_count() - cf.optimized_graph().node_count(), 3);
    // Both runs (the graph's and eager's) added x to the variable.
    let want = (&x * 2.0f32).unwrap();
    assert_close(&"variable", &v.value(), F32, &values(&want), Tol::of(F32));
}

// ---- constant folding ------------------------------------------------------------------------

/// Ops on captured constants are graph nodes; folding evaluates them (with the kernels the
/// graph would run) and pruning drops what they read.
#[test]
fn constant_folding_folds_a_constant_subgraph() {
    let c = Tensor::from_slice(&[0.5f32, 1.0, 2.0], &[3]).unwrap();
    let x = data(&[3], 2);
    let cf = check(
        with_pruning(PassKind::ConstantFolding),
        move |x: &Tensor| -> R { x + &(c.exp()? * 2.0f32)? },
        f32s(&[3]),
        &x,
        "
graph(x:0: f32[3]) {
  %4: f32[3] = const <tensor>
  %5: f32[3] = add x:0 %4
  return (%5)
}",
    );
    let traced = cf.graph().op_counts();
    assert_eq!((traced.get("exp"), traced.get("mul")), (Some(&1), Some(&1)), "traced:\n{}", cf.graph());
    let fold = cf.pass_report().passes.iter().find(|p| p.kind == PassKind::ConstantFolding).unwrap();
    assert_eq!(fold.changes.len(), 2, "{}", cf.pass_report());
}

/// `max_folded_bytes`: a `broadcast_to` of a scalar to 1M elements (4 MiB) stays an op under
/// the default 1 MiB cap, and is folded under an 8 MiB one; a large result no larger than the
/// constants it replaces (a reshape) is folded whatever the cap.
#[test]
fn constant_folding_respects_max_folded_bytes() {
    const N: usize = 1 << 20;
    let x = data(&[N], 3);
    let body = |x: &Tensor| -> R { x + &ff::broadcast_to(Tensor::scalar(2.0f32), &[N])? };
    check(
        OptimizerOptions::all(),
        body,
        f32s(&[N]),
        &x,
        "
graph(x:0: f32[1048576]) {
  %1: f32[] = const 2.
  %2: f32[1048576] = broadcast_to[shape=[1048576]] %1
  %3: f32[1048576] = add x:0 %2
  return (%3)
}",
    );
    let big = OptimizerOptions { max_folded_bytes: 8 << 20, ..OptimizerOptions::all() };
    check(
        big,
        body,
        f32s(&[N]),
        &x,
        "
graph(x:0: f32[1048576]) {
  %2: f32[1048576] = const <tensor>
  %3: f32[1048576] = add x:0 %2
  return (%3)
}",
    );
    let c = data(&[N], 4);
    check(
        OptimizerOptions::all(),
        move |x: &Tensor| -> R { x + &c.reshape(&[1024, 1024])?.reshape(&[-1])? },
        f32s(&[N]),
        &x,
        "
graph(x:0: f32[1048576]) {
  %3: f32[1048576] = const <tensor>
  %4: f32[1048576] = add x:0 %3
  return (%4)
}",
    );
}

/// A gather of constants with an out-of-range index is not folded (its evaluation fails), so
/// the trace succeeds and the call fails with `IndexOutOfBounds` at the node, as eager mode
/// fails at the op.
#[test]
fn gather_of_constants_with_out_of_range_index_errors_at_run_time() {
    let params = Tensor::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let idx = Tensor::from_slice(&[0i64, 3], &[2]).unwrap();
    let x = data(&[2], 5);
    let cf = check(
        OptimizerOptions::all(),
        move |x: &Tensor| -> R { x + &ff::gather(&params, &idx, 0)? },
        f32s(&[2]),
        &x,
        "
graph(x:0: f32[2]) {
  %1: f32[3] = const <tensor>
  %2: i64[2] = const <tensor>
  %3: f32[2] = gather[axis=0] %1 %2
  %4: f32[2] = add x:0 %3
  return (%4)
}",
    );
    let e = cf.call(&[&x]).unwrap_err();
    assert!(matches!(e, Error::IndexOutOfBounds { index: 3, bound: 3, .. }), "{e}");
    assert!(e.location().and_then(|l| l.node()).is_some(), "the error names the graph node: {e}");
}

/// The same with symbolic params: the gather stays and fails when the graph runs.
#[test]
fn gather_with_out_of_range_constant_index_errors_at_run_time() {
    let idx = Tensor::from_slice(&[0i64, 3], &[2]).unwrap();
    let x = data(&[3], 6);
    let cf = check(
        OptimizerOptions::all(),
        move |x: &Tensor| -> R { ff::gather(&x.exp()?, &idx, 0)?.neg() },
        f32s(&[3]),
        &x,
        "
graph(x:0: f32[3]) {
  %1: f32[3] = exp x:0
  %2: i64[2] = const <tensor>
  %3: f32[2] = gather[axis=0] %1 %2
  %4: f32[2] = neg %3
  return (%4)
}",
    );
    let e = cf.call(&[&x]).unwrap_err();
    assert!(matches!(e, Error::IndexOutOfBounds { index: 3, bound: 3, .. }), "{e}");
    assert!(e.location().and_then(|l| l.node()).is_some(), "the error names the graph node: {e}");
}

// ---- common subexpressions ---------------------------------------------------------------------

#[test]
fn cse_merges_identical_subexpressions() {
    let (x, y) = (data(&[2, 3], 4), data(&[2, 3], 5));
    check(
        OptimizerOptions::only(PassKind::CommonSubexpression),
        |x: &Tensor, y: &Tensor| -> R {
            let a = (x * y)?.tanh()?;
            let b = (x * y)?.tanh()?; // the same two ops: merged, the second via the first
            (&a + &b)?.exp()
        },
        (f32s(&[2, 3]), f32s(&[2, 3])),
        (&x, &y),
        "
graph(x:0: f32[2, 3], y:0: f32[2, 3]) {
  %2: f32[2, 3] = mul x:0 y:0
  %3: f32[2, 3] = tanh %2
  %6: f32[2, 3] = add %3 %3
  %7: f32[2, 3] = exp %6
  return (%7)
}",
    );
}

/// Variable reads are stateful: never merged, with or without an assignment between them.
#[test]
fn cse_keeps_variable_reads_apart() {
    let v = ff::Variable::new(data(&[3], 6)).unwrap();
    let x = data(&[3], 7);
    check(
        OptimizerOptions::only(PassKind::CommonSubexpression),
        move |x: &Tensor| -> ff::Result<(Tensor, Tensor)> {
            let a = v.value();
            let b = v.value();
            v.assign_add(x)?;
            let c = v.value();
            // b - a is 0 and c - b is x: merging any two reads changes a result.
            Ok(((&b - &a)?, (&c - &b)?))
        },
        f32s(&[3]),
        &x,
        "
graph(x:0: f32[3]) {
  %1: f32[3] = read_variable var?
  %2: f32[3] = read_variable var?
  %3: f32[3] = assign_add var? x:0
  %4: f32[3] = read_variable var?
  %5: f32[3] = sub %2 %1
  %6: f32[3] = sub %4 %2
  return (%5, %6)
}",
    );
}

/// Same op, different attributes (axes, keepdims, axis, perm, dtype): not merged; the same
/// op with the same attributes: merged.
#[test]
fn cse_keeps_ops_with_different_attributes() {
    let x = data(&[3, 3], 8);
    check(
        OptimizerOptions::only(PassKind::CommonSubexpression),
        |x: &Tensor| -> ff::Result<Vec<Tensor>> {
            let s0 = x.reduce_sum(Some(&[0]), true)?;
            let s1 = x.reduce_sum(Some(&[1]), true)?;
            let s0k = x.reduce_sum(Some(&[0]), false)?;
            let s0again = x.reduce_sum(Some(&[0]), true)?; // merged with s0
            let m0 = x.softmax(0)?;
            let m1 = x.softmax(1)?;
            let t = x.transpose(&[1, 0])?;
            let c64 = x.cast(DType::F64)?.cast(DType::F32)?;
            let c16 = x.cast(DType::F16)?.cast(DType::F32)?;
            Ok(vec![((&s0 + &s1)? + &s0k)?, (&s0again + &m0)?, (&m1 + &t)?, (&c64 - &c16)?])
        },
        f32s(&[3, 3]),
        &x,
        "
graph(x:0: f32[3, 3]) {
  %1: f32[1, 3] = reduce_sum[axes=[0], keepdims=true] x:0
  %2: f32[3, 1] = reduce_sum[axes=[1], keepdims=true] x:0
  %3: f32[3] = reduce_sum[axes=[0], keepdims=false] x:0
  %5: f32[3, 3] = softmax[axis=0] x:0
  %6: f32[3, 3] = softmax[axis=1] x:0
  %7: f32[3, 3] = transpose[perm=[1, 0]] x:0
  %8: f64[3, 3] = cast[dtype=f64] x:0
  %9: f32[3, 3] = cast[dtype=f32] %8
  %10: f16[3, 3] = cast[dtype=f16] x:0
  %11: f32[3, 3] = cast[dtype=f32] %10
  %12: f32[3, 3] = add %1 %2
  %13: f32[3, 3] = add %12 %3
  %14: f32[3, 3] = add %1 %5
  %15: f32[3, 3] = add %6 %7
  %16: f32[3, 3] = sub %9 %11
  return (%13, %14, %15, %16)
}",
    );
}

/// Equal captured constants (distinct tensors) are merged, and then the ops reading them;
/// `0.0` and `-0.0` are different constants (`1 / (x * c)` tells them apart).
#[test]
fn cse_merges_equal_constants_only() {
    let c1 = Tensor::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let c2 = Tensor::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let zero = Tensor::from_slice(&[0.0f32; 3], &[3]).unwrap();
    let neg_zero = Tensor::from_slice(&[-0.0f32; 3], &[3]).unwrap();
    let x = data(&[3], 9);
    check(
        OptimizerOptions::only(PassKind::CommonSubexpression),
        move |x: &Tensor| -> ff::Result<Vec<Tensor>> {
            let a = (x + &c1)?;
            let b = (x + &c2)?; // merged with a once c2 is c1
            let p = ff::div(1.0f32, &(x * &zero)?)?;
            let q = ff::div(1.0f32, &(x * &neg_zero)?)?; // not merged: the signs of its infinities differ
            Ok(vec![(&a * &b)?, p, q])
        },
        f32s(&[3]),
        &x,
        "
graph(x:0: f32[3]) {
  %1: f32[3] = const <tensor>
  %2: f32[3] = add x:0 %1
  %5: f32[3] = const <tensor>
  %6: f32[3] = mul x:0 %5
  %7: f32[] = const 1.
  %8: f32[3] = div %7 %6
  %9: f32[3] = const <tensor>
  %10: f32[3] = mul x:0 %9
  %12: f32[3] = div %7 %10
  %13: f32[3] = mul %2 %2
  return (%13, %8, %12)
}",
    );
}

// ---- arithmetic simplification ----------------------------------------------------------------

type Case = (&'static str, fn(&Tensor) -> R, &'static str);

/// One program per rewrite on x: f32[2, 3] (arithmetic, then pruning of what it bypassed).
const ARITH_CASES: &[Case] = &[
    ("x + 0", |x| (x + 0.0f32)?.exp(), "%3: f32[2, 3] = exp x:0"),
    ("0 + x", |x| ff::add(0.0f32, x)?.exp(), "%3: f32[2, 3] = exp x:0"),
    ("x - 0", |x| (x - 0.0f32)?.exp(), "%3: f32[2, 3] = exp x:0"),
    ("x * 1", |x| (x * 1.0f32)?.exp(), "%3: f32[2, 3] = exp x:0"),
    ("1 * x", |x| ff::mul(1.0f32, x)?.exp(), "%3: f32[2, 3] = exp x:0"),
    ("x / 1", |x| ff::div(x, 1.0f32)?.exp(), "%3: f32[2, 3] = exp x:0"),
    ("--x", |x| x.neg()?.neg()?.exp(), "%3: f32[2, 3] = exp x:0"),
    ("x * x", |x| (x * x)?.exp(), "%1: f32[2, 3] = square x:0\n  %2: f32[2, 3] = exp %1"),
    ("f32 -> f64 -> f32", |x| x.cast(DType::F64)?.cast(DType::F32)?.exp(), "%3: f32[2, 3] = exp x:0"),
    (
        "f32 -> f16 -> f32 is lossy: kept",
        |x| x.cast(DType::F16)?.cast(DType::F32)?.exp(),
        "%1: f16[2, 3] = cast[dtype=f16] x:0\n  %2: f32[2, 3] = cast[dtype=f32] %1\n  %3: f32[2, 3] = exp %2",
    ),
    (
        "i32 -> i64 -> i32",
        |x| x.cast(DType::I32)?.cast(DType::I64)?.cast(DType::I32)?.abs(),
        "%1: i32[2, 3] = cast[dtype=i32] x:0\n  %4: i32[2, 3] = abs %1",
    ),
    (
        "f64 -> f32 -> f64 is lossy: kept",
        |x| (x.cast(DType::F64)? * 3.0f64)?.cast(DType::F32)?.cast(DType::F64)?.exp(),
        "%1: f64[2, 3] = cast[dtype=f64] x:0\n  %2: f64[] = const 3.\n  %3: f64[2, 3] = mul %1 %2\n  \
         %4: f32[2, 3] = cast[dtype=f32] %3\n  %5: f64[2, 3] = cast[dtype=f64] %4\n  %6: f64[2, 3] = exp %5",
    ),
    (
        "reshape of a reshape",
        |x| x.reshape(&[6])?.reshape(&[3, 2])?.exp(),
        "%2: f32[3, 2] = reshape[shape=[3, 2]] x:0\n  %3: f32[3, 2] = exp %2",
    ),
    ("reshape pair back to the shape", |x| x.reshape(&[-1])?.reshape(&[2, 3])?.exp(), "%3: f32[2, 3] = exp x:0"),
    ("transposes cancel", |x| x.transpose(&[1, 0])?.transpose(&[1, 0])?.exp(), "%3: f32[2, 3] = exp x:0"),
    (
        "transpose of a transpose",
        |x| x.reshape(&[1, 2, 3])?.transpose(&[1, 0, 2])?.transpose(&[0, 2, 1])?.exp(),
        "%1: f32[1, 2, 3] = reshape[shape=[1, 2, 3]] x:0\n  %3: f32[2, 3, 1] = transpose[perm=[1, 2, 0]] %1\n  %4: f32[2, 3, 1] = exp %3",
    ),
    (
        "a transpose into matmul's transpose_a",
        |x| ff::matmul(&x.transpose(&[1, 0])?, x),
        "%2: f32[3, 3] = matmul[transpose_a=true, transpose_b=false] x:0 x:0",
    ),
    (
        "a transpose into matmul's transpose_b",
        |x| ff::matmul(x, &x.transpose(&[1, 0])?),
        "%2: f32[2, 2] = matmul[transpose_a=false, transpose_b=true] x:0 x:0",
    ),
    (
        "transposes into set flags flip them",
        |x| ff::matmul_with(&x.transpose(&[1, 0])?, &x.transpose(&[1, 0])?, true, false),
        "%3: f32[2, 2] = matmul[transpose_a=false, transpose_b=true] x:0 x:0",
    ),
    (
        "a matrix-vector product keeps its transpose (its float kernel depends on the layout)",
        |x| ff::matmul(&x.slice(&[0, 0], &[1, 3])?, &x.transpose(&[1, 0])?),
        "%1: f32[1, 3] = slice[begin=[0, 0], size=[1, 3]] x:0\n  %2: f32[3, 2] = transpose[perm=[1, 0]] x:0\n  \
         %3: f32[1, 2] = matmul %1 %2",
    ),
    (
        "an integer one folds it (exact sums in any order)",
        |x| ff::matmul(&x.cast(DType::I32)?.slice(&[0, 0], &[1, 3])?, &x.cast(DType::I32)?.transpose(&[1, 0])?),
        "%1: i32[2, 3] = cast[dtype=i32] x:0\n  %2: i32[1, 3] = slice[begin=[0, 0], size=[1, 3]] %1\n  \
         %3: i32[2, 3] = cast[dtype=i32] x:0\n  %5: i32[1, 2] = matmul[transpose_a=false, transpose_b=true] %2 %3",
    ),
    (
        "batched: a transpose of the last two axes",
        |x| ff::matmul(&x.reshape(&[1, 2, 3])?.transpose(&[0, 2, 1])?, &x.reshape(&[1, 2, 3])?),
        "%1: f32[1, 2, 3] = reshape[shape=[1, 2, 3]] x:0\n  %3: f32[1, 2, 3] = reshape[shape=[1, 2, 3]] x:0\n  \
         %4: f32[1, 3, 3] = matmul[transpose_a=true, transpose_b=false] %1 %3",
    ),
    (
        "a transpose of other axes stays",
        |x| {
            ff::matmul(
                &x.reshape(&[2, 3, 1])?.transpose(&[1, 0, 2])?,
                &x.reshape(&[1, 6])?.transpose(&[1, 0])?.reshape(&[1, 1, 6])?,
            )
        },
        "%1: f32[2, 3, 1] = reshape[shape=[2, 3, 1]] x:0\n  %2: f32[3, 2, 1] = transpose[perm=[1, 0, 2]] %1\n  \
         %3: f32[1, 6] = reshape[shape=[1, 6]] x:0\n  %4: f32[6, 1] = transpose[perm=[1, 0]] %3\n  \
         %5: f32[1, 1, 6] = reshape[shape=[1, 1, 6]] %4\n  %6: f32[3, 2, 6] = matmul %2 %5",
    ),
    (
        "x * 0 is not rewritten",
        |x| (x * 0.0f32)?.exp(),
        "%1: f32[] = const 0.\n  %2: f32[2, 3] = mul x:0 %1\n  %3: f32[2, 3] = exp %2",
    ),
    (
        "x + 0 that broadcasts x is not rewritten",
        |x| (x + &ff::zeros(&[4, 2, 3], DType::F32)?)?.exp(),
        "%1: f32[4, 2, 3] = const <tensor>\n  %2: f32[4, 2, 3] = add x:0 %1\n  %3: f32[4, 2, 3] = exp %2",
    ),
];

#[test]
fn arithmetic_rewrites() {
    let x = data(&[2, 3], 10);
    for &(name, body, expected) in ARITH_CASES {
        println!("arithmetic: {name}");
        let ret = expected.lines().last().and_then(|l| l.trim().split(':').next()).unwrap_or("?");
        check(
            with_pruning(PassKind::Arithmetic),
            move |x: &Tensor| body(x),
            f32s(&[2, 3]),
            &x,
            &format!("graph(x:0: f32[2, 3]) {{\n  {expected}\n  return ({ret})\n}}"),
        );
    }
}

/// Arithmetic alone leaves what it bypassed for pruning.
#[test]
fn arithmetic_alone_leaves_bypassed_nodes() {
    let x = data(&[3], 11);
    let cf = check(
        OptimizerOptions::only(PassKind::Arithmetic),
        |x: &Tensor| -> R { (x * 1.0f32)?.neg()?.neg()?.exp() },
        f32s(&[3]),
        &x,
        "
graph(x:0: f32[3]) {
  %1: f32[] = const 1.
  %2: f32[3] = mul x:0 %1
  %3: f32[3] = neg x:0
  %4: f32[3] = neg %3
  %5: f32[3] = exp x:0
  return (%5)
}",
    );
    let changes = &cf.pass_report().passes[0].changes;
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].starts_with("%2 (x * 1)") && changes[0].ends_with("x:0"), "{changes:?}");
    assert!(changes[1].starts_with("%4 (neg(neg(x)))") && changes[1].ends_with("x:0"), "{changes:?}");
}

// ---- fusion -----------------------------------------------------------------------------------

#[test]
fn fusion_loop_chain_with_broadcast_bias() {
    let bias = data(&[8], 12);
    let (x, y) = (data(&[4, 8], 13), data(&[4, 8], 14));
    check(
        OptimizerOptions::only(PassKind::Fusion),
        move |x: &Tensor, y: &Tensor| -> R { ((x * y)? + &bias)?.relu() },
        (f32s(&[4, 8]), f32s(&[4, 8])),
        (&x, &y),
        "
graph(x:0: f32[4, 8], y:0: f32[4, 8]) {
  %3: f32[8] = const <tensor>
  %5: f32[4, 8] = fused_loop[mul(in0, in1); add(#0, in2); relu(#1)] x:0 y:0 %3
  return (%5)
}",
    );
}

/// Elementwise producers run inside a reduction over trailing axes; a reduction over a
/// leading axis is not fused.
#[test]
fn fusion_reduce_input() {
    let (x, y) = (data(&[3, 5], 15), data(&[3, 5], 16));
    check(
        OptimizerOptions::only(PassKind::Fusion),
        |x: &Tensor, y: &Tensor| -> ff::Result<(Tensor, Tensor)> {
            let e = (x * y)?.exp()?;
            let lead = e.reduce_sum(Some(&[0]), false)?; // not trailing: not fused
            let trail = ((x - y)?.square()?).reduce_mean(Some(&[-1]), true)?;
            Ok((lead, trail))
        },
        (f32s(&[3, 5]), f32s(&[3, 5])),
        (&x, &y),
        "
graph(x:0: f32[3, 5], y:0: f32[3, 5]) {
  %3: f32[3, 5] = fused_loop[mul(in0, in1); exp(#0)] x:0 y:0
  %4: f32[5] = reduce_sum[axes=[0], keepdims=false] %3
  %7: f32[3, 1] = fused_reduce_mean[axes=[1], keepdims=true; sub(in0, in1); square(#0)] x:0 y:0
  return (%4, %7)
}",
    );
}

/// A matmul read only by its bias add and activation gets them as its epilogue.
#[test]
fn fusion_matmul_epilogue() {
    let w = data(&[8, 4], 17);
    let b = data(&[4], 18);
    let x = data(&[2, 8], 19);
    check(
        OptimizerOptions::only(PassKind::Fusion),
        move |x: &Tensor| -> R { (x.matmul(&w)? + &b)?.relu() },
        f32s(&[2, 8]),
        &x,
        "
graph(x:0: f32[2, 8]) {
  %1: f32[8, 4] = const <tensor>
  %3: f32[4] = const <tensor>
  %5: f32[2, 4] = fused_matmul[mm = matmul(in0, in1); add(mm, in2); relu(#0)] x:0 %1 %3
  return (%5)
}",
    );
}

/// The composite softmax over the last axis becomes the softmax primitive; over another
/// axis it is left alone (its elementwise part still fuses).
#[test]
fn fusion_softmax_remap() {
    let x = data(&[2, 5], 20);
    fn composite(x: &Tensor, axis: isize) -> R {
        let e = (x - &x.reduce_max(Some(&[axis]), true)?)?.exp()?;
        &e / &e.reduce_sum(Some(&[axis]), true)?
    }
    check(
        OptimizerOptions::only(PassKind::Fusion),
        |x: &Tensor| -> ff::Result<(Tensor, Tensor)> { Ok((composite(x, -1)?, composite(x, 0)?)) },
        f32s(&[2, 5]),
        &x,
        "
graph(x:0: f32[2, 5]) {
  %5: f32[2, 5] = softmax[axis=1] x:0
  %6: f32[1, 5] = reduce_max[axes=[0], keepdims=true] x:0
  %8: f32[2, 5] = fused_loop[sub(in0, in1); exp(#0)] x:0 %6
  %9: f32[1, 5] = reduce_sum[axes=[0], keepdims=true] %8
  %10: f32[2, 5] = div %8 %9
  return (%5, %10)
}",
    );
}

/// The composite log-softmax over the last axis becomes the log-softmax primitive: with
/// `x - max` shared by the program, or written twice and merged by CSE first.
#[test]
fn fusion_log_softmax_remap() {
    let x = data(&[2, 5], 29);
    fn composite(x: &Tensor, shared: bool) -> R {
        let m = x.reduce_max(Some(&[-1]), true)?;
        let t = (x - &m)?;
        let t2 = if shared { t.clone() } else { (x - &m)? };
        &t - &t2.exp()?.reduce_sum(Some(&[-1]), true)?.log()?
    }
    check(
        OptimizerOptions::only(PassKind::Fusion),
        |x: &Tensor| composite(x, true),
        f32s(&[2, 5]),
        &x,
        "
graph(x:0: f32[2, 5]) {
  %6: f32[2, 5] = log_softmax[axis=1] x:0
  return (%6)
}",
    );
    check(
        OptimizerOptions::all(),
        |x: &Tensor| composite(x, false),
        f32s(&[2, 5]),
        &x,
        "
graph(x:0: f32[2, 5]) {
  %7: f32[2, 5] = log_softmax[axis=1] x:0
  return (%7)
}",
    );
}

/// A print between elementwise ops splits the chain (the printed value must exist) and
/// still prints on every call.
#[test]
fn fusion_print_splits_the_chain_and_still_prints() {
    let x = data(&[4], 21);
    let f = ff::function(|x: &Tensor| -> R {
        let a = (x * 3.0f32)?.sin()?;
        ff::print(&a)?;
        (&a * 2.0f32)?.tanh()
    });
    let cf = check(
        OptimizerOptions::only(PassKind::Fusion),
        |x: &Tensor| -> R {
            let a = (x * 3.0f32)?.sin()?;
            ff::print(&a)?;
            (&a * 2.0f32)?.tanh()
        },
        f32s(&[4]),
        &x,
        "
graph(x:0: f32[4]) {
  %1: f32[] = const 3.
  %3: f32[4] = fused_loop[mul(in0, in1); sin(#0)] x:0 %1
  %4: f32[4] = print %3
  %5: f32[] = const 2.
  %7: f32[4] = fused_loop[mul(in0, in1); tanh(#0)] %3 %5
  return (%7)
}",
    );
    assert_eq!(cf.optimized_graph().op_counts().get("print"), Some(&1));
    // Every pass on: prints once per call, what eager mode prints.
    let (_, want) = ff::capture_prints(|| ff::config::with_functions_run_eagerly(true, || f.call(&x)).unwrap());
    let (_, got) = ff::capture_prints(|| {
        f.call(&x).unwrap();
        f.call(&x).unwrap();
    });
    assert_eq!(got, format!("{want}{want}"));
    assert_eq!(want.matches("Tensor(").count(), 1);
}

/// An intermediate that is also a function output is not absorbed into a group.
#[test]
fn fusion_keeps_intermediate_outputs() {
    let (x, y) = (data(&[3], 22), data(&[3], 23));
    check(
        OptimizerOptions::only(PassKind::Fusion),
        |x: &Tensor, y: &Tensor| -> ff::Result<(Tensor, Tensor)> {
            let a = (x * y)?;
            let b = ((&a + 1.0f32)?.relu()? * y)?;
            Ok((a, b))
        },
        (f32s(&[3]), f32s(&[3])),
        (&x, &y),
        "
graph(x:0: f32[3], y:0: f32[3]) {
  %2: f32[3] = mul x:0 y:0
  %3: f32[] = const 1.
  %6: f32[3] = fused_loop[add(in0, in1); relu(#0); mul(#1, in2)] %2 %3 y:0
  return (%2, %6)
}",
    );
}

/// Fusion takes f32 and f64 only: integer and half-precision chains stay as they are.
#[test]
fn fusion_leaves_integer_and_half_chains() {
    let x = Tensor::from_slice(&[1i32, -2, 3], &[3]).unwrap();
    check(
        OptimizerOptions::only(PassKind::Fusion),
        |x: &Tensor| -> R { ((x * 2i32)? + 1i32)?.abs() },
        TensorSpec::new(&[Some(3)], DType::I32),
        &x,
        "
graph(x:0: i32[3]) {
  %1: i32[] = const 2
  %2: i32[3] = mul x:0 %1
  %3: i32[] = const 1
  %4: i32[3] = add %2 %3
  %5: i32[3] = abs %4
  return (%5)
}",
    );
    let h = data(&[3], 24).cast(DType::F16).unwrap();
    check(
        OptimizerOptions::only(PassKind::Fusion),
        |x: &Tensor| -> R { x.exp()?.tanh() },
        TensorSpec::new(&[Some(3)], DType::F16),
        &h,
        "
graph(x:0: f16[3]) {
  %1: f16[3] = exp x:0
  %2: f16[3] = tanh %1
  return (%2)
}",
    );
}

/// Unknown dims (an input signature with `None`): groups still form, fused kernels take
/// their shapes when the graph runs, and every batch size (0 and 1 included, and a second
/// argument that broadcasts) gives eager mode's results.
#[test]
fn fusion_with_unknown_dims() {
    let w = data(&[8, 4], 30);
    let b = data(&[4], 31);
    let sig = vec![TensorSpec::new(&[None, Some(8)], DType::F32), TensorSpec::new(&[None, None], DType::F32)];
    let body = move |x: &Tensor, y: &Tensor| -> ff::Result<Vec<Tensor>> {
        // Arithmetic bait: `x + 0` and `x * 1` that do not widen x, a reshape pair, a
        // transpose pair, a transpose into the matmul.
        let x = ((x + &ff::zeros(&[1, 8], DType::F32)?)? * &ff::ones(&[8], DType::F32)?)?;
        let x = x.reshape(&[-1])?.reshape(&[-1, 8])?.transpose(&[1, 0])?.transpose(&[1, 0])?;
        let h = (ff::matmul_with(&x.transpose(&[1, 0])?, &w, true, false)? + &b)?.relu()?; // [?, 4]: epilogue
        let s = ((&h * 2.0f32)? - 1.0f32)?.reduce_sum(Some(&[-1]), true)?; // [?, 1]: reduce input
        let z = ((y.exp()? * y)? + &s)?.tanh()?; // [?, ?]: loop over a broadcast
        let e = (&h - &h.reduce_max(Some(&[-1]), true)?)?.exp()?;
        let sm = (&e / &e.reduce_sum(Some(&[-1]), true)?)?; // softmax remap
        Ok(vec![s, z, sm])
    };
    let opts =
        FunctionOptions { input_signature: Some(sig), optimizer: Some(OptimizerOptions::all()), ..Default::default() };
    let f = ff::function_with(opts, body.clone());
    let cf = f.get_concrete_function((f32s(&[1, 8]), f32s(&[1, 1]))).unwrap();
    let text = cf.optimized_graph().to_string();
    for op in ["fused_matmul", "fused_reduce_sum", "fused_loop", "softmax"] {
        assert!(cf.optimized_graph().op_counts().contains_key(op), "{op} in\n{text}");
    }
    assert_eq!(cf.planned_peak_bytes(), None, "unknown dims: no static plan");
    for (k, (n, ys)) in [(3, [3, 5]), (1, [1, 1]), (0, [0, 2]), (37, [1, 40]), (5, [5, 1])].into_iter().enumerate() {
        let (x, y) = (data(&[n, 8], 40 + k as u64), data(&ys, 50 + k as u64));
        let got = f.call((&x, &y)).unwrap();
        let want = body(&x, &y).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(&format!("batch {n}, output {i}"), g, F32, &values(w), Tol::of(F32).at_least(1e-5, 1e-5));
        }
    }
    assert_eq!(f.tracing_count(), 1);
}

/// Fused kernels on outputs past the streaming-store threshold (8 MiB) and the parallel
/// thresholds, in f32 and f64: every kind of load (full, scalar, a trailing-dims bias, a
/// strided broadcast, the in-place output), a matmul epilogue, a reduction of one long row
/// and of many rows; all as eager mode computes them.
#[test]
fn fused_kernels_on_large_outputs() {
    for (dt, rows, cols) in [(DType::F32, 1100, 2000), (DType::F64, 600, 1800)] {
        let mut rng = Rng::new(dt as u64);
        let mut make = |dims: &[usize]| {
            let n = dims.iter().product();
            tensor(dt, dims, &values_for(&mut rng, dt, n, Domain::Any))
        };
        let (x, y, z, w) = (make(&[rows, cols]), make(&[1, cols]), make(&[rows, 1]), make(&[8, cols]));
        let body = |x: &Tensor, y: &Tensor, z: &Tensor, w: &Tensor| -> ff::Result<Vec<Tensor>> {
            let a = x.sin()?;
            let total = (&a * &a)?.reduce_sum(None, false)?; // one long row
            let b = (((&a * y)? + z)? * 0.5f64)?.tanh()?; // last use of a: in place over it
            let c = (&b - x)?.reduce_max(Some(&[-1]), true)?; // many rows
            let m = (x.slice(&[0, 0], &[-1, 8])?.matmul(w)? + y)?.relu()?; // epilogue, [rows, cols]
            Ok(vec![total, b, c, m])
        };
        let f = ff::function(body);
        let got = f.call((&x, &y, &z, &w)).unwrap();
        let cf = f.get_concrete_function((&x, &y, &z, &w)).unwrap();
        let ops = cf.optimized_graph().op_counts();
        for op in ["fused_loop", "fused_reduce_sum", "fused_reduce_max", "fused_matmul"] {
            assert!(ops.contains_key(op), "{op}:\n{}", cf.optimized_graph());
        }
        assert!(
            cf.pass_report()
                .passes
                .iter()
                .any(|p| p.kind == PassKind::Memory && p.changes.iter().any(|c| c.contains("in place")))
        );
        let want = body(&x, &y, &z, &w).unwrap();
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            let tol = if k == 0 { Tol::of(dt).acc(dt, 1e4) } else { Tol::of(dt).at_least(1e-5, 1e-5) };
            assert_close(&format!("{dt} output {k}"), g, dt, &values(w), tol);
        }
    }
}

// ---- memory planning ----------------------------------------------------------------------------

/// Each unary step writes over its input (the input's last use); the graph text does not
/// change, the report lists the plan.
#[test]
fn memory_plans_in_place_steps() {
    let x = data(&[1000], 25);
    let cf = check(
        OptimizerOptions::only(PassKind::Memory),
        |x: &Tensor, y: &Tensor| -> R { (x.exp()?.sqrt()? + y)?.tanh() },
        (f32s(&[1000]), f32s(&[1000])),
        (&x, &x),
        "
graph(x:0: f32[1000], y:0: f32[1000]) {
  %2: f32[1000] = exp x:0
  %3: f32[1000] = sqrt %2
  %4: f32[1000] = add %3 y:0
  %5: f32[1000] = tanh %4
  return (%5)
}",
    );
    let r = cf.pass_report();
    assert_eq!(r.passes.len(), 1);
    let in_place: Vec<&String> = r.passes[0].changes.iter().filter(|c| c.contains("in place")).collect();
    assert_eq!(in_place.len(), 3, "{r}");
    for (c, (id, over)) in in_place.iter().zip([("%3", "%2"), ("%4", "%3"), ("%5", "%4")]) {
        assert!(c.starts_with(&format!("{id} writes over {over} ")), "{r}");
    }
    // Two arguments and one buffer, reused by every step.
    assert_eq!(cf.planned_peak_bytes(), Some(3 * 4000));
}

/// A 10-op elementwise chain on two [4M] f32 arguments (16 MiB each) plans at most the
/// arguments, the output and two more buffers, with every pass and with memory planning
/// alone.
#[test]
fn memory_peak_of_a_long_chain_on_large_inputs() {
    const N: usize = 4 << 20;
    const MB: usize = 1 << 20;
    let tensor_bytes = N * 4;
    let chain = |x: &Tensor, y: &Tensor| -> R {
        let mut c = (x * y)?;
        c = (&c + x)?.relu()?;
        c = (&c * 0.5f32)?.tanh()?;
        c = (&c - y)?.exp()?;
        c = (&c + 1.0f32)?.sqrt()?;
        &c * x
    };
    for opts in [OptimizerOptions::all(), OptimizerOptions::only(PassKind::Memory)] {
        let f = ff::function_with(FunctionOptions { optimizer: Some(opts.clone()), ..Default::default() }, chain);
        let cf = f.get_concrete_function((f32s(&[N]), f32s(&[N]))).unwrap();
        let ops = cf
            .graph()
            .op_counts()
            .iter()
            .filter(|(k, _)| **k != "input" && **k != "const")
            .map(|(_, n)| n)
            .sum::<usize>();
        assert_eq!(ops, 10, "{}", cf.graph());
        let peak = cf.planned_peak_bytes().expect("every shape is known");
        let bound = 2 * tensor_bytes + tensor_bytes + 2 * 16 * MB;
        println!(
            "10-op chain on 2 x f32[{N}] ({}): planned peak {peak} bytes ({:.1} MiB), bound {bound} ({:.1} MiB), \
             arguments + output {} ({:.1} MiB)",
            if opts.fusion { "all passes" } else { "memory only" },
            peak as f64 / MB as f64,
            bound as f64 / MB as f64,
            3 * tensor_bytes,
            (3 * tensor_bytes) as f64 / MB as f64,
        );
        assert!(peak <= bound, "planned peak {peak} > {bound}\n{}", cf.pass_report());
        assert!(peak >= 3 * tensor_bytes, "the arguments and the output are live: {peak}");
    }
}

// ---- pass reports -----------------------------------------------------------------------------

/// One entry per pass run, in pipeline order (pruning again after the rewrites), node
/// counts chained from the traced graph to the optimized one, changes where a pass acted.
#[test]
fn pass_report_entries() {
    let bias = data(&[4], 26);
    let body = move |x: &Tensor| -> R {
        let _dead = x.cos()?;
        let a = (x * 1.0f32)?.exp()?; // x * 1 (arithmetic)
        let b = (x * 1.0f32)?.exp()?; // the same again (cse)
        ((&a + &b)? + &bias)?.relu() // a chain (fusion)
    };
    let x = data(&[2, 4], 27);
    let cf = check(
        OptimizerOptions::all(),
        body.clone(),
        f32s(&[2, 4]),
        &x,
        "
graph(x:0: f32[2, 4]) {
  %9: f32[4] = const <tensor>
  %11: f32[2, 4] = fused_loop[exp(in0); add(#0, #0); add(#1, in1); relu(#2)] x:0 %9
  return (%11)
}",
    );
    let r = cf.pass_report();
    let kinds: Vec<PassKind> = r.passes.iter().map(|p| p.kind).collect();
    use PassKind::*;
    assert_eq!(kinds, [Pruning, ConstantFolding, CommonSubexpression, Arithmetic, Pruning, Fusion, Memory]);
    for p in &r.passes {
        assert_eq!(p.pass, p.kind.name());
    }
    assert_eq!(r.passes[0].nodes_before, cf.graph().node_count());
    for w in r.passes.windows(2) {
        assert_eq!(w[0].nodes_after, w[1].nodes_before, "{r}");
    }
    assert_eq!(r.passes.last().unwrap().nodes_after, cf.optimized_graph().node_count());
    // What each pass did: pruning removed the cos; CSE merged the second `x * 1` and exp
    // (three nodes: the constant 1, the mul, the exp); arithmetic bypassed `x * 1`; pruning
    // removed the bypassed mul and its constant; fusion made one loop of the rest.
    let counts: Vec<(usize, usize, usize)> =
        r.passes.iter().map(|p| (p.nodes_before, p.nodes_after, p.changes.len())).collect();
    assert_eq!(&counts[..6], [(12, 11, 1), (11, 11, 0), (11, 8, 3), (8, 8, 1), (8, 6, 2), (6, 3, 1)], "{r}");
    assert!(r.passes[0].changes[0].contains("%1"), "{r}");
    for (c, id) in r.passes[2].changes.iter().zip(["%5", "%6", "%7"]) {
        assert!(c.starts_with(id), "{r}");
    }
    for p in &r.passes {
        if p.nodes_before != p.nodes_after {
            assert!(!p.changes.is_empty(), "{} changed the graph without saying how:\n{r}", p.pass);
        }
    }
    assert_eq!(r.planned_peak_bytes, cf.planned_peak_bytes());
    assert!(r.to_string().contains("planned peak memory"), "{r}");
    assert!(!format!("{r:#}").contains("µs"), "the alternate form has no times: {r:#}");

    // Pruning runs once when no rewrite pass is on; no passes, no entries.
    let f = ff::function_with(
        FunctionOptions { optimizer: Some(with_pruning(PassKind::Fusion)), ..Default::default() },
        body.clone(),
    );
    let kinds: Vec<PassKind> =
        f.get_concrete_function(f32s(&[2, 4])).unwrap().pass_report().passes.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [Pruning, Fusion]);
    let f =
        ff::function_with(FunctionOptions { optimizer: Some(OptimizerOptions::none()), ..Default::default() }, body);
    let cf = f.get_concrete_function(f32s(&[2, 4])).unwrap();
    assert!(cf.pass_report().passes.is_empty());
    assert_eq!(cf.pass_report().to_string(), "no optimizer passes ran\n");
    assert_eq!(cf.planned_peak_bytes(), None);
    assert_eq!(cf.graph().to_string(), cf.optimized_graph().to_string());
}

/// `ff::config::with_optimizer_options` applies to traces made inside it, on this thread;
/// a function's own options win.
#[test]
fn thread_local_optimizer_options() {
    let body = |x: &Tensor| -> R { (x * 1.0f32)?.exp() };
    let f = ff::function(body);
    let cf =
        ff::config::with_optimizer_options(OptimizerOptions::none(), || f.get_concrete_function(f32s(&[3])).unwrap());
    assert_eq!(cf.graph().to_string(), cf.optimized_graph().to_string());
    let g = ff::function_with(
        FunctionOptions { optimizer: Some(with_pruning(PassKind::Arithmetic)), ..Default::default() },
        body,
    );
    let cf =
        ff::config::with_optimizer_options(OptimizerOptions::none(), || g.get_concrete_function(f32s(&[3])).unwrap());
    assert_eq!(cf.optimized_graph().node_count(), 2, "{}", cf.optimized_graph());
    // Outside the scope, the default (every pass).
    let cf = ff::function(body).get_concrete_function(f32s(&[3])).unwrap();
    assert_eq!(cf.pass_report().passes.len(), 7);
}

// ---- print of a constant -----------------------------------------------------------------------

/// `ff::print` of a captured constant inside a traced function is a graph op too: it
/// survives every pass and prints on every call, as eager mode prints on every run.
#[test]
fn print_of_a_constant_prints_on_every_call() {
    let c = Tensor::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    let body = move |x: &Tensor| -> R {
        ff::print(&c)?;
        x + &c
    };
    let x = data(&[2], 28);
    check(
        OptimizerOptions::all(),
        body.clone(),
        f32s(&[2]),
        &x,
        "
graph(x:0: f32[2]) {
  %1: f32[2] = const <tensor>
  %2: f32[2] = print %1
  %3: f32[2] = add x:0 %1
  return (%3)
}",
    );
    let f = ff::function(body);
    let (_, traced) = ff::capture_prints(|| {
        f.call(&x).unwrap();
        f.call(&x).unwrap();
    });
    let (_, eager) = ff::capture_prints(|| ff::config::with_functions_run_eagerly(true, || f.call(&x)).unwrap());
    assert_eq!(eager.matches("Tensor(").count(), 1);
    assert_eq!(traced, format!("{eager}{eager}"), "two calls print twice");
}
