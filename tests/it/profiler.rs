//! The profiler on the CPU: eager ops and traced plan steps become spans, the Chrome trace
//! is valid JSON of complete events, and a CPU-only program makes no host<->device copies.

use ferroflow as ff;

fn names(p: &ff::profiler::Profile) -> Vec<&'static str> {
    p.thread_events().iter().map(|e| e.name).collect()
}

#[test]
fn eager_ops_are_spans_in_program_order() -> ff::Result<()> {
    let x = ff::ones(&[8, 8], ff::DType::F32)?;
    let before = ff::profiler::thread_transfers();
    let prof = ff::profiler::Profiler::start();
    let y = x.matmul(&x)?.relu()?;
    let _ = y.reduce_sum(None, false)?;
    let p = prof.stop();
    let n = names(&p);
    let pos = |op| n.iter().position(|x| *x == op);
    assert!(pos("matmul") < pos("relu") && pos("relu") < pos("reduce_sum"), "{n:?}");
    assert!(pos("matmul").is_some());
    assert!(p.thread_events().iter().all(|e| e.device == ff::Device::Cpu));
    // CPU tensors never cross a device boundary.
    assert_eq!((ff::profiler::thread_transfers() - before).total_count(), 0);
    assert!(p.to_string().contains("matmul"));
    Ok(())
}

#[test]
fn traced_steps_are_spans_and_the_trace_is_written() -> ff::Result<()> {
    let f = ff::function(|x: &ff::Tensor| (x * x)?.relu()?.reduce_sum(None, false));
    let x = ff::ones(&[16], ff::DType::F32)?;
    f.call(&x)?; // trace outside the profile
    let prof = ff::profiler::Profiler::start();
    f.call(&x)?;
    let p = prof.stop();
    let n = names(&p);
    assert!(n.iter().any(|s| s.starts_with("fused")), "{n:?}");
    let path = std::env::temp_dir().join(format!("ff_trace_{}.json", std::process::id()));
    p.write_chrome_trace(&path)?;
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(text.starts_with("{\"traceEvents\":[") && text.contains("\"ph\":\"X\""));
    assert_eq!(text.matches("\"ph\"").count(), p.events().len());
    let bad = p.write_chrome_trace("/nonexistent-dir/x/trace.json").unwrap_err();
    assert!(matches!(bad, ff::Error::InvalidArgument { .. }), "{bad}");
    Ok(())
}

#[test]
fn no_session_records_nothing_after_stop() -> ff::Result<()> {
    let prof = ff::profiler::Profiler::start();
    let p = prof.stop();
    let x = ff::ones(&[4], ff::DType::F32)?;
    let _ = x.exp()?;
    assert!(p.thread_events().is_empty());
    Ok(())
}
