//! `Display` and `Debug` for tensors, as TensorFlow prints them: the values in NumPy's
//! layout (right-aligned columns; with more than 1000 elements, every axis longer than 6
//! shows its first and last 3 entries around `...`), then shape, dtype and device.

use std::fmt;

use crate::dtype::{DType, Element};
use crate::tensor::Tensor;

/// NumPy's `threshold`: above this many elements the printout is summarized.
const THRESHOLD: usize = 1000;
/// NumPy's `edgeitems`: entries kept at each end of a summarized axis.
const EDGE: usize = 3;

/// One element as NumPy writes it: integral floats as `3.`, others in the shortest form
/// that reads back, exponent form for very large or small magnitudes.
fn fmt_float<F: fmt::Display + fmt::LowerExp>(v: f64, x: F) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v != 0.0 && (v.abs() >= 1e16 || v.abs() < 1e-4) {
        format!("{x:e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}.")
    } else {
        format!("{x}")
    }
}

fn fmt_elem<T: Element>(x: T) -> String {
    match T::DTYPE {
        DType::F32 | DType::F16 | DType::BF16 => fmt_float(x.to_f64(), x.to_f64() as f32),
        DType::F64 => fmt_float(x.to_f64(), x.to_f64()),
        _ => format!("{x}"),
    }
}

/// The indices shown for an axis of length `n`: all, or the edges around a gap (`None`).
fn shown(n: usize, summarize: bool) -> Vec<Option<usize>> {
    if summarize && n > 2 * EDGE {
        (0..EDGE).map(Some).chain([None]).chain((n - EDGE..n).map(Some)).collect()
    } else {
        (0..n).map(Some).collect()
    }
}

/// Walks the shown elements in print order: `leaf` gets each element's offset; with
/// `out`, also writes the brackets and separators (cells then come from `leaf`).
struct Walk<'a> {
    dims: &'a [usize],
    strides: &'a [usize],
    summarize: bool,
}

impl Walk<'_> {
    fn go(
        &self,
        d: usize,
        off: usize,
        out: &mut Option<&mut String>,
        leaf: &mut dyn FnMut(usize, &mut Option<&mut String>),
    ) {
        if d == self.dims.len() {
            leaf(off, out);
            return;
        }
        if let Some(o) = out.as_deref_mut() {
            o.push('[');
        }
        for (k, i) in shown(self.dims[d], self.summarize).into_iter().enumerate() {
            if let Some(o) = out.as_deref_mut() {
                if k > 0 {
                    if d + 1 == self.dims.len() {
                        o.push(' ');
                    } else {
                        // One newline between rows, one more per extra dim (NumPy's blank lines).
                        o.push_str(&"\n".repeat(self.dims.len() - d - 1));
                        o.push_str(&" ".repeat(d + 1));
                    }
                }
                if i.is_none() {
                    o.push_str("...");
                }
            }
            if let Some(i) = i {
                self.go(d + 1, off + i * self.strides[d], out, leaf);
            }
        }
        if let Some(o) = out.as_deref_mut() {
            o.push(']');
        }
    }
}

fn values<T: Element>(t: &Tensor) -> String {
    let Ok(v) = t.as_ndarray::<T>() else { return "<no host values>".into() };
    let data = v.as_slice().unwrap_or(&[]);
    let strides = t.shape().strides();
    let walk = Walk { dims: t.shape(), strides: &strides, summarize: t.num_elements() > THRESHOLD };
    // Pass 1: format only the elements that will be shown, to find the column width.
    let mut cells = Vec::new();
    walk.go(0, 0, &mut None, &mut |off, _| cells.push(fmt_elem(data[off])));
    let width = cells.iter().map(|c| c.len()).max().unwrap_or(0);
    // Pass 2: the same walk, writing brackets and right-aligned cells.
    let mut out = String::new();
    let mut next = cells.into_iter();
    walk.go(0, 0, &mut Some(&mut out), &mut |_, o| {
        if let (Some(o), Some(c)) = (o.as_deref_mut(), next.next()) {
            o.push_str(&format!("{c:>width$}"));
        }
    });
    out
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.symbol() {
            // A symbolic tensor has no values: name it, as TensorFlow prints Tensor("x:0", ...).
            return write!(
                f,
                "Tensor(\"{}\", shape={}, dtype={}, device={})",
                s.name,
                self.shape(),
                self.dtype(),
                self.device()
            );
        }
        // Printing a GPU tensor reads its values back (a counted download).
        let host = if self.on_device() { self.to_host().ok() } else { None };
        let shown = host.as_ref().unwrap_or(self);
        let v = crate::with_dtype!(self.dtype(), T => values::<T>(shown));
        // Continuation lines line up under the first bracket, after "Tensor(".
        let v: Vec<String> = v
            .lines()
            .enumerate()
            .map(|(i, l)| if i == 0 || l.is_empty() { l.to_string() } else { format!("       {l}") })
            .collect();
        write!(f, "Tensor({}, shape={}, dtype={}, device={})", v.join("\n"), self.shape(), self.dtype(), self.device())
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
