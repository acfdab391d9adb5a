//! `ff::print`, as `tf.print`: eagerly it prints at once; inside a traced function it is a
//! graph op that prints on every call (host `println!` there runs only while tracing).
//! Output goes to stdout, or to a per-thread buffer inside `capture_prints`.

use std::cell::RefCell;

use crate::error::{Loc, Result};
use crate::tensor::Tensor;

thread_local! {
    static CAPTURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Prints `x` now (eager) or on every run of the graph being traced (whether `x` is
/// symbolic or a concrete tensor the body made or captured).
#[track_caller]
pub fn print(x: &Tensor) -> Result<()> {
    let loc = Loc::caller();
    // Inside a trace even a concrete tensor prints on every call, as tf.print does: the
    // print node reads it as a constant.
    if x.is_symbolic() || crate::graph::trace::active().is_some() {
        crate::graph::trace::record_print(x, loc)?;
    } else {
        emit(x);
    }
    Ok(())
}

/// Writes one printed tensor to the capture buffer or stdout.
pub(crate) fn emit(x: &Tensor) {
    let line = format!("{x}\n");
    let captured = CAPTURE.with(|c| c.borrow_mut().as_mut().map(|s| s.push_str(&line)).is_some());
    if !captured {
        print!("{line}");
    }
}

/// Runs `f` and returns what `ff::print` printed on this thread meanwhile (instead of
/// writing it to stdout).
pub fn capture_prints<R>(f: impl FnOnce() -> R) -> (R, String) {
    let prev = CAPTURE.with(|c| c.borrow_mut().replace(String::new()));
    let r = f();
    let out = CAPTURE.with(|c| std::mem::replace(&mut *c.borrow_mut(), prev)).unwrap_or_default();
    (r, out)
}
