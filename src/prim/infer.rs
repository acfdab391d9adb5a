//! Shape and dtype inference for every primitive, and every user error that can be known
//! before data is read. Shared by eager execution, tracing and the graph executor, so every
//! mode accepts and rejects the same calls with the same errors.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::prim::{Accepts, PrimOp};
use crate::shape::{Shape, UNKNOWN, broadcast_shapes};
use crate::tensor::Tensor;

fn same_dtype(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() == b.dtype() { Ok(()) } else { Err(crate::prim::promote::mismatch(op, a.dtype(), b.dtype())) }
}

/// The output shape and dtype of `op` applied to `inputs`, or the user error.
pub(crate) fn infer(op: &PrimOp, inputs: &[&Tensor]) -> Result<(Shape, DType)> {
    let name = op.name();
    let arity = op.arity();
    if !arity.admits(inputs.len()) {
        return Err(Error::invalid(name, format!("expected {arity} inputs, found {}", inputs.len())));
    }
    let x = inputs[0];
    match op {
        PrimOp::Unary(u) => {
            u.accepts().check(name, x.dtype())?;
            Ok((x.shape().clone(), x.dtype()))
        }
        PrimOp::Binary(b) => {
            let y = inputs[1];
            same_dtype(name, x, y)?;
            b.accepts().check(name, x.dtype())?;
            let shape = broadcast_shapes(name, x.shape(), y.shape())?;
            Ok((shape, if b.is_comparison() { DType::Bool } else { x.dtype() }))
        }
        PrimOp::Select => {
            let (c, a, b) = (inputs[0], inputs[1], inputs[2]);
            if c.dtype() != DType::Bool {
                return Err(Error::dtype(
                    name,
                    "a bool condition",
                    c.dtype().name(),
                    Some("build the condition with a comparison such as x.greater(0)".into()),
                ));
            }
            same_dtype(name, a, b)?;
            let s = broadcast_shapes(name, c.shape(), a.shape())?;
            let s = broadcast_shapes(name, &s, b.shape())?;
            Ok((s, a.dtype()))
        }
        PrimOp::Cast(d) => Ok((x.shape().clone(), *d)),
        PrimOp::Reduce { axes, keepdims, .. } => {
            Accepts::Num.check(name, x.dtype())?;
            Ok((reduced_shape(x.shape(), axes, *keepdims), x.dtype()))
        }
        PrimOp::ArgReduce { axis, keepdims, .. } => {
            Accepts::Num.check(name, x.dtype())?;
            let red: smallvec::SmallVec<[usize; 4]> = match axis {
                Some(a) => smallvec::smallvec![*a],
                None => (0..x.rank()).collect(),
            };
            let reduced_len: usize = red.iter().map(|&a| x.shape()[a]).product();
            if reduced_len == 0 {
                return Err(Error::invalid(name, format!("cannot take {name} of an empty axis (shape {})", x.shape())));
            }
            Ok((reduced_shape(x.shape(), &red, *keepdims), DType::I64))
        }
        PrimOp::Reshape(spec) => Ok((reshape_target(x, spec)?, x.dtype())),
        PrimOp::Transpose(perm) => {
            let mut seen = vec![false; x.rank()];
            let ok =
                perm.len() == x.rank() && perm.iter().all(|&p| p < x.rank() && !std::mem::replace(&mut seen[p], true));
            if !ok {
                return Err(Error::invalid(
                    name,
                    format!("perm {perm:?} is not a permutation of 0..{} (input shape {})", x.rank(), x.shape()),
                ));
            }
            Ok((perm.iter().map(|&p| x.shape()[p]).collect::<Vec<_>>().into(), x.dtype()))
        }
        PrimOp::BroadcastTo(target) => {
            let b = broadcast_shapes(name, x.shape(), target)?;
            if &b != target {
                return Err(Error::shape(name, format!("a shape that broadcasts to {target}"), x.shape().to_string()));
            }
            Ok((target.clone(), x.dtype()))
        }
        PrimOp::Concat(axis) => {
            if inputs.is_empty() {
                return Err(Error::invalid(name, "expected at least one tensor, found none"));
            }
            let mut out = x.shape().clone();
            for (i, t) in inputs.iter().enumerate().skip(1) {
                same_dtype(name, x, t)?;
                let agree = |d: usize| {
                    d == *axis || t.shape()[d] == x.shape()[d] || t.shape()[d] == UNKNOWN || x.shape()[d] == UNKNOWN
                };
                if t.rank() != x.rank() || !(0..x.rank()).all(agree) {
                    return Err(Error::shape(
                        name,
                        format!("tensors whose dims match {} except on axis {axis}", x.shape()),
                        format!("{} at position {i}", t.shape()),
                    ));
                }
                let (a, b) = (out.0[*axis], t.shape()[*axis]);
                out.0[*axis] = if a == UNKNOWN || b == UNKNOWN { UNKNOWN } else { a + b };
            }
            Ok((out, x.dtype()))
        }
        PrimOp::Slice { begin, size } => {
            if begin.len() != x.rank() || size.len() != x.rank() {
                return Err(Error::invalid(
                    name,
                    format!(
                        "begin and size need {} entries (rank of {}), found {} and {}",
                        x.rank(),
                        x.shape(),
                        begin.len(),
                        size.len()
                    ),
                ));
            }
            let mut out = Shape::default();
            for d in 0..x.rank() {
                let dim = x.shape()[d];
                let len = match size[d] {
                    -1 if dim == UNKNOWN => UNKNOWN,
                    -1 => dim.saturating_sub(begin[d]),
                    s if s >= 0 => s as usize,
                    s => {
                        return Err(Error::invalid(
                            name,
                            format!("size must be >= 0 or -1 (to the end), found {s} on axis {d}"),
                        ));
                    }
                };
                let fits = dim == UNKNOWN
                    || (len != UNKNOWN && begin[d].checked_add(len).is_some_and(|end| end <= dim) && begin[d] <= dim);
                if !fits {
                    return Err(Error::invalid(
                        name,
                        format!(
                            "slice [{}, {}) of axis {d} is out of bounds for shape {}",
                            begin[d],
                            begin[d].saturating_add(len),
                            x.shape()
                        ),
                    ));
                }
                out.0.push(len);
            }
            Ok((out, x.dtype()))
        }
        PrimOp::Gather(axis) => {
            let idx = inputs[1];
            if !matches!(idx.dtype(), DType::I32 | DType::I64) {
                return Err(Error::dtype(
                    name,
                    "i32 or i64 indices",
                    idx.dtype().name(),
                    Some("cast the indices with cast(DType::I64)".into()),
                ));
            }
            let mut dims: Vec<usize> = x.shape()[..*axis].to_vec();
            dims.extend_from_slice(idx.shape());
            dims.extend_from_slice(&x.shape()[axis + 1..]);
            Ok((dims.into(), x.dtype()))
        }
        PrimOp::OneHot { depth, dtype } => {
            if !matches!(x.dtype(), DType::I32 | DType::I64 | DType::U8) {
                return Err(Error::dtype(
                    name,
                    "integer indices (i32, i64 or u8)",
                    x.dtype().name(),
                    Some("cast the indices with cast(DType::I64)".into()),
                ));
            }
            let mut dims = x.shape().to_vec();
            dims.push(*depth);
            Ok((dims.into(), *dtype))
        }
        PrimOp::MatMul { transpose_a, transpose_b } => {
            let y = inputs[1];
            same_dtype(name, x, y)?;
            Accepts::Num.check(name, x.dtype())?;
            if x.rank() < 2 || y.rank() < 2 {
                return Err(Error::InvalidArgument {
                    op: name,
                    message: format!(
                        "both inputs need rank >= 2, found shapes {} and {}; use expand_dims to make a vector a [1, n] or [n, 1] matrix",
                        x.shape(),
                        y.shape()
                    ),
                    location: None,
                });
            }
            let (ra, rb) = (x.rank(), y.rank());
            let (m, ka) = if *transpose_a {
                (x.shape()[ra - 1], x.shape()[ra - 2])
            } else {
                (x.shape()[ra - 2], x.shape()[ra - 1])
            };
            let (kb, n) = if *transpose_b {
                (y.shape()[rb - 1], y.shape()[rb - 2])
            } else {
                (y.shape()[rb - 2], y.shape()[rb - 1])
            };
            if ka != kb && ka != UNKNOWN && kb != UNKNOWN {
                return Err(Error::ShapeMismatch {
                    op: name,
                    expected: format!(
                        "the inner dims to agree (a has k = {ka}{})",
                        if *transpose_a { ", transposed" } else { "" }
                    ),
                    found: format!(
                        "b with k = {kb}{} (shapes {} and {})",
                        if *transpose_b { ", transposed" } else { "" },
                        x.shape(),
                        y.shape()
                    ),
                    fix: Some("transpose one operand (transpose_a / transpose_b flags)".into()),
                    location: None,
                });
            }
            let batch = broadcast_shapes(name, &x.shape()[..ra - 2], &y.shape()[..rb - 2])?;
            let mut dims = batch.to_vec();
            dims.push(m);
            dims.push(n);
            Ok((dims.into(), x.dtype()))
        }
        PrimOp::Softmax { .. } => {
            Accepts::Float.check(name, x.dtype())?;
            Ok((x.shape().clone(), x.dtype()))
        }
        PrimOp::Sparse(s) => super::sparse::infer(s, inputs),
    }
}

/// The shape after reducing `axes` (sorted, unique).
pub(crate) fn reduced_shape(s: &Shape, axes: &[usize], keepdims: bool) -> Shape {
    let mut out = Shape::default();
    for (d, &n) in s.iter().enumerate() {
        if axes.contains(&d) {
            if keepdims {
                out.0.push(1);
            }
        } else {
            out.0.push(n);
        }
    }
    out
}

/// The output shape of a reshape to `spec` (one entry may be -1).
fn reshape_target(x: &Tensor, spec: &[isize]) -> Result<Shape> {
    let name = "reshape";
    let mut infer_at = None;
    let mut known = 1usize;
    let mut out = Shape::default();
    for (i, &d) in spec.iter().enumerate() {
        if d == -1 {
            if infer_at.replace(i).is_some() {
                return Err(Error::invalid(name, format!("only one dim may be -1, found {spec:?}")));
            }
            out.0.push(0);
        } else if d < 0 {
            return Err(Error::invalid(name, format!("dims must be >= 0 or -1, found {d} in {spec:?}")));
        } else {
            known = known
                .checked_mul(d as usize)
                .ok_or_else(|| Error::invalid(name, format!("shape {spec:?} is too large")))?;
            out.0.push(d as usize);
        }
    }
    if !x.shape().is_fully_known() {
        // Checked again with the real shape when the graph runs.
        if let Some(i) = infer_at {
            out.0[i] = UNKNOWN;
        }
        return Ok(out);
    }
    let n = x.num_elements();
    if let Some(i) = infer_at {
        if known == 0 || !n.is_multiple_of(known) {
            return Err(Error::ShapeMismatch {
                op: name,
                expected: format!("dims whose product divides {n} (input shape {})", x.shape()),
                found: format!("{spec:?}"),
                fix: None,
                location: None,
            });
        }
        out.0[i] = n / known;
    } else if known != n {
        return Err(Error::ShapeMismatch {
            op: name,
            expected: format!("a shape of {n} elements (input shape {})", x.shape()),
            found: format!("{out} ({known} elements)"),
            fix: Some("use -1 for one dim to have it inferred".into()),
            location: None,
        });
    }
    Ok(out)
}
