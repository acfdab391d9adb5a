//! Adam, as `tf.keras.optimizers.Adam` (TensorFlow 2.11+): with `t` the step (from 1),
//! `alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t)`, `m += (g - m) * (1 - beta1)`,
//! `v += (g^2 - v) * (1 - beta2)`, `w -= alpha * m / (sqrt(v) + epsilon)`. The bias
//! correction is folded into `alpha`, so `epsilon` is TensorFlow's "epsilon hat".

use std::borrow::Borrow;

use crate::error::{Loc, Result};
use crate::optim::{Optimizer, SharedSlots, check_hyper, pairs};
use crate::tensor::Tensor;
use crate::variable::Variable;

/// Adam with TensorFlow's defaults (`beta1 = 0.9`, `beta2 = 0.999`, `epsilon = 1e-7`).
/// Cloning shares the `m` and `v` slots and the step count.
#[derive(Clone)]
pub struct Adam {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    slots: SharedSlots,
}

impl Adam {
    /// Adam with TensorFlow's defaults and `learning_rate` (0.001 is TensorFlow's default).
    pub fn new(learning_rate: f64) -> Adam {
        Adam { learning_rate, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, slots: Default::default() }
    }

    /// Adam with every hyperparameter chosen.
    pub fn with_params(learning_rate: f64, beta1: f64, beta2: f64, epsilon: f64) -> Adam {
        Adam { learning_rate, beta1, beta2, epsilon, slots: Default::default() }
    }

    /// `(learning_rate, beta1, beta2, epsilon)`.
    pub fn params(&self) -> (f64, f64, f64, f64) {
        (self.learning_rate, self.beta1, self.beta2, self.epsilon)
    }
}

impl Optimizer for Adam {
    #[track_caller]
    fn apply_gradients<V: Borrow<Variable>>(&self, grads: &[Option<Tensor>], vars: &[V]) -> Result<()> {
        let loc = Loc::caller();
        let op = "Adam::apply_gradients";
        check_hyper(op, "learning_rate", self.learning_rate, 0.0, f64::MAX, false, loc)?;
        check_hyper(op, "beta1", self.beta1, 0.0, 1.0, true, loc)?;
        check_hyper(op, "beta2", self.beta2, 0.0, 1.0, true, loc)?;
        check_hyper(op, "epsilon", self.epsilon, 0.0, f64::MAX, false, loc)?;
        let ps = pairs(op, grads, vars, loc)?;
        let at = |e: crate::Error| e.at(loc);
        let step = self.slots.step(loc)?;
        // The step count is read once, before any assignment: every variable sees the same t.
        let t = (step.value() + 1i64).map_err(at)?;
        let (b1, b2) = (self.beta1, self.beta2);
        for (g, var) in ps {
            let slots = self.slots.get(var, 2, loc)?;
            let (m, v) = (&slots[0], &slots[1]);
            let tf = t.cast(var.dtype()).map_err(at)?;
            let one = Tensor::scalar(1.0f64).cast(var.dtype()).map_err(at)?;
            let b1_t = crate::ops::math::pow(Tensor::scalar(b1).cast(var.dtype()).map_err(at)?, &tf).map_err(at)?;
            let b2_t = crate::ops::math::pow(Tensor::scalar(b2).cast(var.dtype()).map_err(at)?, &tf).map_err(at)?;
            let alpha = (((&one - &b2_t).map_err(at)?.sqrt().map_err(at)? * self.learning_rate).map_err(at)?
                / (&one - &b1_t).map_err(at)?)
            .map_err(at)?;
            m.assign_add(((g - &m.value()).map_err(at)? * (1.0 - b1)).map_err(at)?).map_err(at)?;
            v.assign_add(((g.square().map_err(at)? - &v.value()).map_err(at)? * (1.0 - b2)).map_err(at)?)
                .map_err(at)?;
            let denom = (v.value().sqrt().map_err(at)? + self.epsilon).map_err(at)?;
            let upd = ((&m.value() * &alpha).map_err(at)? / &denom).map_err(at)?;
            var.assign_sub(&upd).map_err(at)?;
        }
        step.assign_add(1i64).map_err(at)
    }

    fn iterations(&self) -> Option<Variable> {
        self.slots.step_if_created()
    }
}
