//! Losses. Like TensorFlow's, they return one loss per example (the batch shape); reduce
//! them with `reduce_mean` yourself, so the choice of mean or sum stays visible.
//!
//! The cross-entropies work on logits through `log_softmax` (`x - max - log(sum(exp(x -
//! max)))`), never `log(softmax(x))`: a logit of 1000 gives an exact loss instead of
//! `inf` or `nan`.

use crate::dtype::DType;
use crate::error::{Error, Loc, Result};
use crate::interop::ndarray::IntoTensor;
use crate::ops::arg;
use crate::ops::math::{binary, cast_to, unary};
use crate::ops::reduce::reduce;
use crate::prim::{BinaryOp, ReduceOp, UnaryOp};
use crate::tensor::Tensor;

fn float_logits(op: &'static str, logits: &Tensor, loc: Loc) -> Result<()> {
    if !logits.dtype().is_float() || logits.rank() == 0 {
        return Err(Error::DTypeMismatch {
            op,
            expected: "float logits of rank >= 1 ([batch.., classes])".into(),
            found: format!("{} logits of shape {}", logits.dtype(), logits.shape()),
            fix: Some("cast the logits to f32 (and give them a class axis)".into()),
            location: Some(loc),
        });
    }
    Ok(())
}

/// Cross-entropy between a distribution `labels` (one-hot or soft, same shape and dtype as
/// `logits`) and `softmax(logits)` over the last axis, one value per example:
/// `-sum(labels * log_softmax(logits), -1)` (`tf.nn.softmax_cross_entropy_with_logits`).
#[track_caller]
pub fn softmax_cross_entropy_with_logits(labels: impl IntoTensor, logits: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    let op = "softmax_cross_entropy_with_logits";
    let (labels, logits) = (arg(labels, loc)?, arg(logits, loc)?);
    float_logits(op, &logits, loc)?;
    if labels.shape() != logits.shape() {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("labels of the logits' shape {}", logits.shape()),
            found: format!("shape {}", labels.shape()),
            fix: Some("for integer class labels use sparse_softmax_cross_entropy_with_logits, or one_hot them".into()),
            location: Some(loc),
        });
    }
    if labels.dtype() != logits.dtype() {
        return Err(Error::DTypeMismatch {
            op,
            expected: format!("labels of the logits' dtype {}", logits.dtype()),
            found: labels.dtype().to_string(),
            fix: Some(format!("cast the labels: labels.cast(DType::{:?})", logits.dtype())),
            location: Some(loc),
        });
    }
    let lsm = crate::ops::nn::soft(&logits, -1, true, loc)?;
    let prod = binary(BinaryOp::Mul, &labels, &lsm, loc)?;
    let s = reduce(ReduceOp::Sum, &prod, Some(&[-1]), false, loc)?;
    unary(UnaryOp::Neg, &s, loc)
}

/// Cross-entropy for integer class labels (`[batch..]`, i32 or i64, each in
/// `0..classes`) against `logits` `[batch.., classes]`, one value per example
/// (`tf.nn.sparse_softmax_cross_entropy_with_logits`). A label outside `0..classes` is
/// `Error::IndexOutOfBounds`.
#[track_caller]
pub fn sparse_softmax_cross_entropy_with_logits(labels: impl IntoTensor, logits: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    let op = "sparse_softmax_cross_entropy_with_logits";
    let (labels, logits) = (arg(labels, loc)?, arg(logits, loc)?);
    float_logits(op, &logits, loc)?;
    if !matches!(labels.dtype(), DType::I32 | DType::I64) {
        return Err(Error::DTypeMismatch {
            op,
            expected: "i32 or i64 class labels".into(),
            found: labels.dtype().to_string(),
            fix: Some("for one-hot or soft labels use softmax_cross_entropy_with_logits".into()),
            location: Some(loc),
        });
    }
    let r = logits.rank();
    if labels.rank() + 1 != r || labels.shape()[..] != logits.shape()[..r - 1] {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!(
                "labels of shape {:?} (the logits' shape {} without the class axis)",
                &logits.shape()[..r - 1],
                logits.shape()
            ),
            found: format!("shape {}", labels.shape()),
            fix: None,
            location: Some(loc),
        });
    }
    let classes = logits.shape()[r - 1];
    let hot = crate::ops::shape::one_hot_impl(&labels, classes, loc)?;
    let hot = cast_to(&hot, logits.dtype(), loc)?;
    let lsm = crate::ops::nn::soft(&logits, -1, true, loc)?;
    let prod = binary(BinaryOp::Mul, &hot, &lsm, loc)?;
    let s = reduce(ReduceOp::Sum, &prod, Some(&[-1]), false, loc)?;
    unary(UnaryOp::Neg, &s, loc)
}

/// Mean squared error over the last axis, one value per example (Keras's
/// `mean_squared_error`): `reduce_mean(square(y_true - y_pred), -1)`. Shapes broadcast.
#[track_caller]
pub fn mse(y_true: impl IntoTensor, y_pred: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    let (t, p) = (arg(y_true, loc)?, arg(y_pred, loc)?);
    let d = binary(BinaryOp::Sub, &t, &p, loc)?;
    let sq = unary(UnaryOp::Square, &d, loc)?;
    if sq.rank() == 0 {
        return Ok(sq);
    }
    reduce(ReduceOp::Mean, &sq, Some(&[-1]), false, loc)
}
