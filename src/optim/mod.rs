//! Optimizers (`ff::optim`): [`Sgd`] (with momentum and Nesterov) and [`Adam`], with
//! TensorFlow's update rules and defaults.
//!
//! An update is ordinary ops plus `Variable` assignments, so inside a traced training step
//! it becomes graph nodes (reads and assignments in program order) and runs on every call.
//! Slot variables (momentum, Adam's `m` and `v`, the step count) are `Variable`s created on
//! the first `apply_gradients`, keyed by the variable's `id()`: inside a traced function
//! that is its first trace, where creating variables is allowed.

mod adam;
mod sgd;

pub use adam::Adam;
pub use sgd::Sgd;

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Loc, Result};
use crate::tensor::Tensor;
use crate::variable::Variable;

/// Something that updates variables from their gradients.
pub trait Optimizer {
    /// Applies one update step: `grads[i]` is the gradient of the loss for `vars[i]` (the
    /// order `GradientTape::gradient` returns). A `None` gradient (the variable does not
    /// affect the loss) is skipped with a logged warning, as TensorFlow does.
    ///
    /// Errors: `InvalidArgument` when the lengths differ or a hyperparameter is invalid;
    /// `ShapeMismatch` / `DTypeMismatch` when a gradient does not fit its variable.
    fn apply_gradients<V: Borrow<Variable>>(&self, grads: &[Option<Tensor>], vars: &[V]) -> Result<()>;

    /// How many steps have been applied (a variable: read it inside a traced step and it is
    /// read on every call). `None` before the first step.
    fn iterations(&self) -> Option<Variable>;
}

/// Slot variables by variable id, and the step count, shared by an optimizer's clones.
#[derive(Default)]
pub(crate) struct Slots {
    by_var: Mutex<HashMap<u64, Vec<Variable>>>,
    step: Mutex<Option<Variable>>,
}

impl Slots {
    /// The `n` zero slots of `var`, created on first use.
    pub(crate) fn get(&self, var: &Variable, n: usize, loc: Loc) -> Result<Vec<Variable>> {
        let mut m = self.by_var.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = m.get(&var.id()) {
            return Ok(s.clone());
        }
        let dims: Vec<usize> = var.shape().to_vec();
        let s = (0..n)
            .map(|_| {
                let z = crate::ops::creation::zeros(&dims, var.dtype()).map_err(|e| e.at(loc))?;
                Variable::non_trainable(z).map_err(|e| e.at(loc))
            })
            .collect::<Result<Vec<_>>>()?;
        m.insert(var.id(), s.clone());
        Ok(s)
    }

    /// The step-count variable (i64, starts at 0), created on first use.
    pub(crate) fn step(&self, loc: Loc) -> Result<Variable> {
        let mut s = self.step.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = &*s {
            return Ok(v.clone());
        }
        let v = Variable::non_trainable(Tensor::scalar(0i64)).map_err(|e| e.at(loc))?;
        *s = Some(v.clone());
        Ok(v)
    }

    pub(crate) fn step_if_created(&self) -> Option<Variable> {
        self.step.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Checks the arguments of `apply_gradients` and returns the (gradient, variable) pairs
/// with a gradient, warning about the others.
pub(crate) fn pairs<'a, V: Borrow<Variable>>(
    op: &'static str,
    grads: &'a [Option<Tensor>],
    vars: &'a [V],
    loc: Loc,
) -> Result<Vec<(&'a Tensor, &'a Variable)>> {
    if grads.len() != vars.len() {
        return Err(Error::InvalidArgument {
            op,
            message: format!(
                "expected one gradient per variable, found {} gradients for {} variables; pass the same list to tape.gradient and apply_gradients",
                grads.len(),
                vars.len()
            ),
            location: Some(loc),
        });
    }
    let mut out = Vec::with_capacity(grads.len());
    for (i, (g, v)) in grads.iter().zip(vars).enumerate() {
        let v = v.borrow();
        let Some(g) = g else {
            log::warn!(
                "{op}: no gradient for variable {i} (var{}, shape {}): it does not affect the loss; skipped",
                v.id(),
                v.shape()
            );
            continue;
        };
        if g.dtype() != v.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                expected: format!("gradient {i} of its variable's dtype {}", v.dtype()),
                found: g.dtype().to_string(),
                fix: None,
                location: Some(loc),
            });
        }
        if !v.dtype().is_float() {
            return Err(Error::DTypeMismatch {
                op,
                expected: format!("float variables (variable {i})"),
                found: v.dtype().to_string(),
                fix: Some("optimize float variables only".into()),
                location: Some(loc),
            });
        }
        let fits = g.rank() == v.shape().rank()
            && g.shape().iter().zip(v.shape().iter()).all(|(a, b)| a == b || *a == crate::shape::UNKNOWN);
        if !fits {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("gradient {i} of its variable's shape {}", v.shape()),
                found: format!("shape {}", g.shape()),
                fix: None,
                location: Some(loc),
            });
        }
        out.push((g, v));
    }
    Ok(out)
}

/// `InvalidArgument` unless `x` is finite and in `lo..=hi` (`hi` exclusive when `open`).
pub(crate) fn check_hyper(op: &'static str, name: &str, x: f64, lo: f64, hi: f64, open: bool, loc: Loc) -> Result<()> {
    let ok = x.is_finite() && x >= lo && if open { x < hi } else { x <= hi };
    if ok {
        return Ok(());
    }
    let range = if open { format!("[{lo}, {hi})") } else { format!("[{lo}, {hi}]") };
    Err(Error::InvalidArgument { op, message: format!("expected {name} in {range}, found {x}"), location: Some(loc) })
}

/// Shared state handle: clones of an optimizer update the same slots.
pub(crate) type SharedSlots = Arc<Slots>;
