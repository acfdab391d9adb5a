//! Stochastic gradient descent, as `tf.keras.optimizers.SGD`: `w -= lr * g`; with
//! momentum `m`, `velocity = m * velocity - lr * g; w += velocity`; Nesterov
//! `w += m * velocity - lr * g`.

use std::borrow::Borrow;

use crate::error::{Loc, Result};
use crate::optim::{Optimizer, SharedSlots, check_hyper, pairs};
use crate::tensor::Tensor;
use crate::variable::Variable;

/// Gradient descent with optional (Nesterov) momentum. Cloning shares the momentum slots.
#[derive(Clone)]
pub struct Sgd {
    learning_rate: f64,
    momentum: f64,
    nesterov: bool,
    slots: SharedSlots,
}

impl Sgd {
    /// Plain gradient descent: `w -= learning_rate * g`.
    pub fn new(learning_rate: f64) -> Sgd {
        Sgd { learning_rate, momentum: 0.0, nesterov: false, slots: Default::default() }
    }

    /// With momentum in `[0, 1]` (0.9 is usual): one velocity slot per variable.
    pub fn with_momentum(learning_rate: f64, momentum: f64) -> Sgd {
        Sgd { momentum, ..Sgd::new(learning_rate) }
    }

    /// Nesterov momentum on or off.
    pub fn nesterov(mut self, on: bool) -> Sgd {
        self.nesterov = on;
        self
    }

    /// The learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }
    /// The momentum (0 for plain descent).
    pub fn momentum(&self) -> f64 {
        self.momentum
    }
}

impl Optimizer for Sgd {
    #[track_caller]
    fn apply_gradients<V: Borrow<Variable>>(&self, grads: &[Option<Tensor>], vars: &[V]) -> Result<()> {
        let loc = Loc::caller();
        let op = "Sgd::apply_gradients";
        check_hyper(op, "learning_rate", self.learning_rate, 0.0, f64::MAX, false, loc)?;
        check_hyper(op, "momentum", self.momentum, 0.0, 1.0, false, loc)?;
        let ps = pairs(op, grads, vars, loc)?;
        let (lr, m) = (self.learning_rate, self.momentum);
        for (g, var) in ps {
            let at = |e: crate::Error| e.at(loc);
            let step = (g * lr).map_err(at)?;
            if m == 0.0 {
                var.assign_sub(&step).map_err(at)?;
                continue;
            }
            let velocity = &self.slots.get(var, 1, loc)?[0];
            let new_v = ((&velocity.value() * m).map_err(at)? - &step).map_err(at)?;
            velocity.assign(&new_v).map_err(at)?;
            if self.nesterov {
                var.assign_add(((&new_v * m).map_err(at)? - &step).map_err(at)?).map_err(at)?;
            } else {
                var.assign_add(&new_v).map_err(at)?;
            }
        }
        self.slots.step(loc)?.assign_add(1i64).map_err(|e| e.at(loc))
    }

    fn iterations(&self) -> Option<Variable> {
        self.slots.step_if_created()
    }
}
