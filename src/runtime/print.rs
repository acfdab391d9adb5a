//! Where printed tensors go: stdout, or a per-thread buffer inside `capture_prints`. Eager
//! `ff::print` and a graph's print step (`graph::exec`) both write through `emit`.

use std::cell::RefCell;

use crate::tensor::Tensor;

thread_local! {
    static CAPTURE: RefCell<Option<String>> = const { RefCell::new(None) };
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
