//! Traced functions (`ff::function`): tracing, the cache and TensorFlow's retracing rules,
//! symbolic-tensor errors, side effects, concrete functions and graph inspection.

use ferroflow as ff;
use ff::{DType, Error, Tensor, TensorSpec};

fn t32(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

#[test]
fn traced_result_equals_eager() {
    let body = |x: &Tensor, y: &Tensor| -> ff::Result<Tensor> { ((x * y)? + 1.0f32)?.relu() };
    let f = ff::function(body);
    let (a, b) = (t32(&[1.0, -2.0, 3.0], &[3]), t32(&[2.0, 2.0, -1.0], &[3]));
    let got = f.call((&a, &b)).unwrap().to_ndarray::<f32>().unwrap();
    let want = body(&a, &b).unwrap().to_ndarray::<f32>().unwrap();
    assert_eq!(got, want);
    assert_eq!(f.tracing_count(), 1);
}

#[test]
fn retracing_follows_tensorflow() {
    // T7: same dtype and shape reuses; new dtype, new shape or new host value retraces.
    let f = ff::function(|x: &Tensor, k: i64| -> ff::Result<Tensor> { x * k });
    let i1 = Tensor::scalar(1i32);
    let i2 = Tensor::scalar(2i32);
    f.call((&i1, 1i64)).unwrap();
    f.call((&i2, 1i64)).unwrap();
    assert_eq!(f.tracing_count(), 1);
    f.call((&Tensor::scalar(1.0f32), 1i64)).unwrap();
    assert_eq!(f.tracing_count(), 2);
    f.call((&t32(&[1.0, 2.0], &[2]), 1i64)).unwrap();
    assert_eq!(f.tracing_count(), 3);
    f.call((&t32(&[5.0, 6.0], &[2]), 1i64)).unwrap();
    assert_eq!(f.tracing_count(), 3);
    f.call((&t32(&[1.0, 2.0], &[2]), 2i64)).unwrap();
    assert_eq!(f.tracing_count(), 4);
    f.call((&t32(&[1.0, 2.0], &[2]), 2i64)).unwrap();
    assert_eq!(f.tracing_count(), 4);
}

#[test]
fn symbolic_tensors_refuse_host_reads() {
    let f = ff::function(|x: &Tensor| -> ff::Result<Tensor> {
        let e = x.to_ndarray::<f32>().unwrap_err();
        assert!(matches!(e, Error::SymbolicTensor { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("x:0") && msg.contains("[2]") && msg.contains("f32") && msg.contains("run_functions_eagerly"),
            "{msg}"
        );
        assert!(matches!(x.as_ndarray::<f32>(), Err(Error::SymbolicTensor { .. })));
        assert!(matches!(x.reduce_sum(None, false)?.to_scalar::<f32>(), Err(Error::SymbolicTensor { .. })));
        x.exp()
    });
    let a = t32(&[0.0, 1.0], &[2]);
    let out = f.call(&a).unwrap();
    assert_eq!(out.to_ndarray::<f32>().unwrap(), a.exp().unwrap().to_ndarray::<f32>().unwrap());
}

#[test]
fn run_functions_eagerly_runs_the_body_every_call() {
    ff::config::with_functions_run_eagerly(true, || {
        let f = ff::function(|x: &Tensor| -> ff::Result<Tensor> {
            let v = x.to_ndarray::<f32>()?; // works eagerly
            Ok(Tensor::from(v.mapv(|e| e * 2.0)))
        });
        let a = t32(&[1.0, 2.0], &[2]);
        assert_eq!(f.call(&a).unwrap().to_ndarray::<f32>().unwrap().as_slice().unwrap(), &[2.0, 4.0]);
        assert_eq!(f.tracing_count(), 0);
    });
}

#[test]
fn print_runs_every_call_and_host_code_only_while_tracing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static HOST: AtomicUsize = AtomicUsize::new(0);
    let f = ff::function(|x: &Tensor| -> ff::Result<Tensor> {
        HOST.fetch_add(1, Ordering::SeqCst);
        ff::print(x)?;
        x + 1.0f32
    });
    let a = t32(&[1.0], &[1]);
    let (_, out) = ff::capture_prints(|| {
        for _ in 0..3 {
            f.call(&a).unwrap();
        }
    });
    assert_eq!(HOST.load(Ordering::SeqCst), 1);
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn input_signature_gives_one_trace_and_rejects_misfits() {
    let opts = ff::FunctionOptions {
        input_signature: Some(vec![TensorSpec::new(&[None, Some(3)], DType::F32)]),
        ..Default::default()
    };
    let f = ff::function_with(opts, |x: &Tensor| -> ff::Result<Tensor> {
        x.reduce_sum(Some(&[1]), false)?.reshape(&[-1, 1])
    });
    for n in 1..4 {
        let x = ff::ones(&[n, 3], DType::F32).unwrap();
        let y = f.call(&x).unwrap();
        assert_eq!(y.shape().dims(), &[n, 1]);
        assert_eq!(y.to_ndarray::<f32>().unwrap().iter().copied().collect::<Vec<_>>(), vec![3.0; n]);
    }
    assert_eq!(f.tracing_count(), 1);
    let e = f.call(&ff::ones(&[2, 4], DType::F32).unwrap()).unwrap_err();
    assert!(matches!(e, Error::SignatureMismatch { index: 0, .. }), "{e}");
    let e = f.call(&ff::ones(&[2, 3], DType::F64).unwrap()).unwrap_err();
    assert!(matches!(e, Error::SignatureMismatch { .. }), "{e}");
}

#[test]
fn reduce_retracing_generalizes_after_the_second_shape() {
    let f = ff::function_with(
        ff::FunctionOptions { reduce_retracing: true, ..Default::default() },
        |x: &Tensor| -> ff::Result<Tensor> { x * 2.0f32 },
    );
    for n in 1..=5 {
        let y = f.call(&ff::ones(&[n], DType::F32).unwrap()).unwrap();
        assert_eq!(y.shape().dims(), &[n]);
    }
    assert_eq!(f.tracing_count(), 2);
}

#[test]
fn graph_text_is_exact() {
    let f = ff::function(|x: &Tensor, y: &Tensor| -> ff::Result<Tensor> { ((x * y)? + 1.0f32)?.relu() });
    let spec = Tensor::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    let cf = f.get_concrete_function((&spec, &spec)).unwrap();
    assert_eq!(f.tracing_count(), 1);
    let want = "graph(x:0: f32[2], y:0: f32[2]) {
  %2: f32[2] = mul x:0 y:0
  %3: f32[] = const 1.
  %4: f32[2] = add %2 %3
  %5: f32[2] = relu %4
  return (%5)
}";
    assert_eq!(cf.graph().to_string(), want);
    cf.graph().verify().unwrap();
    assert!(cf.graph().to_dot().starts_with("digraph {"));
}

#[test]
fn errors_while_running_name_the_node_and_the_users_line() {
    let f = ff::function(|x: &Tensor, i: &Tensor| -> ff::Result<Tensor> { x.gather(i, 0) });
    let x = t32(&[1.0, 2.0], &[2]);
    let bad = Tensor::from_slice(&[5i64], &[1]).unwrap();
    let e = f.call((&x, &bad)).unwrap_err();
    assert!(matches!(e, Error::IndexOutOfBounds { index: 5, .. }), "{e}");
    let loc = e.location().unwrap();
    assert!(loc.file().ends_with("function.rs"), "{loc}");
    assert!(loc.node().is_some(), "{e}");
    assert!(e.to_string().contains("graph node %"), "{e}");
}

#[test]
fn functions_are_send_and_sync_and_trace_each_signature_once() {
    let f = ff::function(|x: &Tensor| -> ff::Result<Tensor> { x.square() });
    std::thread::scope(|s| {
        for k in 0..8 {
            let f = &f;
            s.spawn(move || {
                let n = 1 + k % 2;
                let x = ff::ones(&[n], DType::F32).unwrap();
                for _ in 0..20 {
                    assert_eq!(f.call(&x).unwrap().shape().dims(), &[n]);
                }
            });
        }
    });
    assert_eq!(f.tracing_count(), 2);
}

#[test]
fn variables_are_read_and_assigned_by_the_graph_on_every_call() {
    let v = ff::Variable::new(1.0f32).unwrap();
    let f = {
        let v = v.clone();
        ff::function(move |x: &Tensor| -> ff::Result<Tensor> {
            v.assign_add(x)?;
            Ok(v.value())
        })
    };
    let one = Tensor::scalar(1.0f32);
    assert_eq!(f.call(&one).unwrap().to_scalar::<f32>().unwrap(), 2.0);
    assert_eq!(f.call(&one).unwrap().to_scalar::<f32>().unwrap(), 3.0);
    assert_eq!(v.value().to_scalar::<f32>().unwrap(), 3.0);
    assert_eq!(f.tracing_count(), 1);
    // Wrong shape or dtype: errors naming both.
    let e = v.assign(Tensor::from_slice(&[1.0f32, 2.0], &[2]).unwrap()).unwrap_err();
    assert!(
        matches!(e, Error::ShapeMismatch { .. }) && e.to_string().contains("[2]") && e.to_string().contains("[]"),
        "{e}"
    );
    let e = v.assign(Tensor::scalar(1i32)).unwrap_err();
    assert!(
        matches!(e, Error::DTypeMismatch { .. }) && e.to_string().contains("i32") && e.to_string().contains("f32"),
        "{e}"
    );
}

#[test]
fn creating_a_variable_on_a_retrace_is_an_error() {
    let f = ff::function(|x: &Tensor| -> ff::Result<Tensor> {
        let v = ff::Variable::new(0.0f32)?;
        v.assign_add(1.0f32)?;
        x + &v.value()
    });
    f.call(&Tensor::scalar(1.0f32)).unwrap();
    let e = f.call(&Tensor::from_slice(&[1.0f32], &[1]).unwrap()).unwrap_err();
    assert!(matches!(e, Error::VariableCreatedOnNonFirstCall { .. }), "{e}");
}

#[test]
fn cond_traces_both_branches_and_runs_one() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static TRACED: AtomicUsize = AtomicUsize::new(0);
    let f = ff::function(|x: &Tensor| -> ff::Result<Tensor> {
        let p = x.reduce_sum(None, false)?.greater(0.0f32)?;
        ff::cond(
            &p,
            || {
                TRACED.fetch_add(1, Ordering::SeqCst);
                x * 2.0f32
            },
            || {
                TRACED.fetch_add(1, Ordering::SeqCst);
                x.neg()
            },
        )
    });
    let pos = t32(&[1.0, 2.0], &[2]);
    let neg = t32(&[-1.0, -2.0], &[2]);
    assert_eq!(f.call(&pos).unwrap().to_ndarray::<f32>().unwrap().as_slice().unwrap(), &[2.0, 4.0]);
    assert_eq!(f.call(&neg).unwrap().to_ndarray::<f32>().unwrap().as_slice().unwrap(), &[1.0, 2.0]);
    assert_eq!(TRACED.load(Ordering::SeqCst), 2, "both branches traced once, never run as host code again");
    let cf = f.get_concrete_function(&pos).unwrap();
    assert_eq!(cf.graph().op_counts().get("cond"), Some(&1));
    cf.graph().verify().unwrap();
}

#[test]
fn cond_branches_must_agree() {
    let f = ff::function(|x: &Tensor| -> ff::Result<Tensor> {
        let p = x.reduce_sum(None, false)?.greater(0.0f32)?;
        ff::cond(&p, || x * 2.0f32, || x.cast(DType::I32))
    });
    let e = f.call(&t32(&[1.0], &[1])).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { op: "cond", .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("output 0") && msg.contains("f32") && msg.contains("i32"), "{msg}");
}

#[test]
fn while_loop_runs_in_the_graph_and_host_loops_unroll() {
    let f = ff::function(|n: &Tensor| -> ff::Result<Tensor> {
        let out = ff::while_loop(
            |v| v[0].less(n),
            |v| Ok(vec![(&v[0] + 1i32)?, (&v[1] * 2i32)?]),
            vec![Tensor::scalar(0i32), Tensor::scalar(1i32)],
        )?;
        Ok(out[1].clone())
    });
    for k in [0, 3, 10] {
        assert_eq!(f.call(&Tensor::scalar(k)).unwrap().to_scalar::<i32>().unwrap(), 1 << k);
    }
    assert_eq!(f.tracing_count(), 1);
    let cf = f.get_concrete_function(&Tensor::scalar(0i32)).unwrap();
    assert_eq!(cf.graph().op_counts().get("while"), Some(&1));
    // A host loop unrolls: three adds in the graph.
    let g = ff::function(|x: &Tensor| -> ff::Result<Tensor> {
        let mut y = x.clone();
        for _ in 0..3 {
            y = (&y + 1.0f32)?;
        }
        Ok(y)
    });
    let cf = g.get_concrete_function(&Tensor::scalar(0.0f32)).unwrap();
    assert_eq!(cf.graph().op_counts().get("add"), Some(&3));
    // Eagerly the loop just runs.
    let out = ff::while_loop(|v| v[0].less(5i32), |v| Ok(vec![(&v[0] + 1i32)?]), vec![Tensor::scalar(0i32)]).unwrap();
    assert_eq!(out[0].to_scalar::<i32>().unwrap(), 5);
}

#[test]
fn a_symbolic_tensor_is_not_a_host_bool() {
    let f = ff::function(|x: &Tensor| -> ff::Result<Tensor> {
        let e = x.greater(0.0f32)?.to_bool().unwrap_err();
        assert!(matches!(e, Error::NotAllowedInGraph { .. }), "{e}");
        assert!(e.to_string().contains("ff::cond"), "{e}");
        Ok(x.clone())
    });
    f.call(&Tensor::scalar(1.0f32)).unwrap();
    assert!(Tensor::scalar(true).to_bool().unwrap());
}

#[test]
fn concrete_functions_trace_from_specs_and_reject_misfits() {
    let f = ff::function(|x: &Tensor| -> ff::Result<Tensor> { x.square() });
    let cf = f.get_concrete_function(TensorSpec::new(&[None, Some(3)], DType::F32)).unwrap();
    assert_eq!(f.tracing_count(), 1);
    assert!(cf.graph().to_string().starts_with("graph(x:0: f32[?, 3])"), "{}", cf.graph());
    let x = ff::ones(&[2, 3], DType::F32).unwrap();
    assert_eq!(cf.call(&[&x]).unwrap()[0].shape().dims(), &[2, 3]);
    let e = cf.call(&[&ff::ones(&[2, 3], DType::I32).unwrap()]).unwrap_err();
    assert!(matches!(e, Error::SignatureMismatch { index: 0, .. }), "{e}");
    assert!(e.to_string().contains("i32") && e.to_string().contains("f32"), "{e}");
    let e = cf.call(&[&ff::ones(&[2, 4], DType::F32).unwrap()]).unwrap_err();
    assert!(matches!(e, Error::SignatureMismatch { .. }), "{e}");
    let e = f.call(TensorSpec::new(&[Some(1)], DType::F32)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
}

mod warn_log {
    //! A logger that keeps warnings, to test the retracing warning.
    use std::sync::Mutex;
    pub static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    struct Keep;
    impl log::Log for Keep {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                LINES.lock().unwrap().push(r.args().to_string());
            }
        }
        fn flush(&self) {}
    }
    static KEEP: Keep = Keep;
    pub fn install() {
        let _ = log::set_logger(&KEEP);
        log::set_max_level(log::LevelFilter::Warn);
    }
}

#[test]
fn retracing_warns_at_most_twice_naming_the_function_and_cause() {
    warn_log::install();
    let f = ff::function_with(
        ff::FunctionOptions { name: Some("retracer".into()), ..Default::default() },
        |x: &Tensor, k: u32| -> ff::Result<Tensor> { x * (k as f32) },
    );
    let x = Tensor::scalar(1.0f32);
    let count = || warn_log::LINES.lock().unwrap().iter().filter(|l| l.contains("retracer")).count();
    for k in 0u32..4 {
        f.call((&x, k)).unwrap();
    }
    assert_eq!(count(), 0, "4 traces of the last 4 calls: no warning yet");
    f.call((&x, 4u32)).unwrap();
    assert_eq!(count(), 1);
    let line = warn_log::LINES.lock().unwrap().iter().find(|l| l.contains("retracer")).cloned().unwrap();
    assert!(line.contains("5 out of the last 5 calls") && line.contains("host") && line.contains("4"), "{line}");
    for k in 5u32..20 {
        f.call((&x, k)).unwrap();
    }
    // A host value of another Rust type than the parameter's is named in the error.
    let e = f.call((&x, 3i32)).unwrap_err();
    assert!(
        matches!(e, Error::SignatureMismatch { index: 1, .. })
            && e.to_string().contains("u32")
            && e.to_string().contains("i32"),
        "{e}"
    );
    assert_eq!(count(), 2, "at most two warnings per function");
}

#[test]
fn variable_assignment_follows_the_weak_scalar_rules() {
    let v = ff::Variable::new(1i32).unwrap();
    let e = v.assign_add(1.5f64).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    v.assign_add(2i64).unwrap();
    assert_eq!(v.value().to_scalar::<i32>().unwrap(), 3);
}

#[test]
fn symbolic_tensors_display_their_name() {
    let f = ff::function(|x: &Tensor| -> ff::Result<Tensor> {
        assert_eq!(x.to_string(), "Tensor(\"x:0\", shape=[2], dtype=f32, device=/device:CPU:0)");
        Ok(x.clone())
    });
    f.call(&t32(&[1.0, 2.0], &[2])).unwrap();
}

#[test]
fn a_function_called_inside_a_traced_function_is_inlined() {
    // As nested tf.function / jax.jit calls: the inner body's ops join the outer graph.
    let inner = std::sync::Arc::new(ff::function(|x: &Tensor| -> ff::Result<Tensor> { (x * 2.0f32)?.exp() }));
    let i2 = inner.clone();
    let outer = ff::function(move |x: &Tensor| -> ff::Result<Tensor> { i2.call((&(x + 1.0f32)?,))? - 3.0f32 });
    let x = t32(&[0.5, -1.0, 2.0], &[3]);
    let got = outer.call((&x,)).unwrap();
    let want = ((((&x + 1.0f32).unwrap() * 2.0f32).unwrap().exp().unwrap()) - 3.0f32).unwrap();
    assert_eq!(got.to_ndarray::<f32>().unwrap(), want.to_ndarray::<f32>().unwrap());
    assert_eq!(outer.tracing_count(), 1);
    let text = outer.get_concrete_function((&x,)).unwrap().graph().to_string();
    assert!(text.contains("exp"), "the inner ops are in the outer graph:\n{text}");
    assert_eq!(inner.tracing_count(), 0, "inlined, not traced on its own");
    // The inner function still works on its own, and the outer call reuses its trace.
    assert_eq!(
        inner.call((&x,)).unwrap().to_ndarray::<f32>().unwrap(),
        (&x * 2.0f32).unwrap().exp().unwrap().to_ndarray::<f32>().unwrap()
    );
    outer.call((&x,)).unwrap();
    assert_eq!(outer.tracing_count(), 1);
}

#[test]
fn an_inlined_function_reads_variables_when_the_outer_graph_runs() {
    let v = ff::Variable::new(t32(&[1.0, 2.0], &[2])).unwrap();
    let v2 = v.clone();
    let inner = std::sync::Arc::new(ff::function(move |x: &Tensor| -> ff::Result<Tensor> {
        v2.assign_add(x)?;
        v2.value() * 10.0f32
    }));
    let i2 = inner.clone();
    let outer = ff::function(move |x: &Tensor| -> ff::Result<Tensor> { i2.call((x,)) });
    let one = t32(&[1.0, 1.0], &[2]);
    let a = outer.call((&one,)).unwrap().to_ndarray::<f32>().unwrap();
    let b = outer.call((&one,)).unwrap().to_ndarray::<f32>().unwrap();
    assert_eq!(a.iter().copied().collect::<Vec<f32>>(), [20.0, 30.0]);
    assert_eq!(b.iter().copied().collect::<Vec<f32>>(), [30.0, 40.0], "the update ran again on the second call");
    assert_eq!(outer.tracing_count(), 1);
}
