//! Activations: the functions (`relu`, `sigmoid`, `tanh`, `gelu`, `softmax`, `log_softmax`
//! are the ops of `ff`, re-exported) and `Activation`, the same set as a value a `Dense`
//! layer applies and as a layer of its own in a `Sequential`.

use crate::error::{Loc, Result};
use crate::nn::Layer;
use crate::ops::math::unary;
use crate::prim::UnaryOp;
use crate::tensor::Tensor;
use crate::variable::Variable;

pub use crate::ops::math::{gelu, relu, sigmoid, tanh};
pub use crate::ops::nn::{log_softmax, softmax};

/// What a layer applies to its output. Also a [`Layer`] with no variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// The identity (Keras's `"linear"`, the default).
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `x * Phi(x)` (the exact, erf form).
    Gelu,
    /// `softmax(x, -1)`: use it for predictions, not before a cross-entropy on logits.
    Softmax,
}

impl Activation {
    /// Applies the activation to `x`.
    #[track_caller]
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        self.apply_at(x, Loc::caller())
    }

    pub(crate) fn apply_at(&self, x: &Tensor, loc: Loc) -> Result<Tensor> {
        match self {
            Activation::Linear => Ok(x.clone()),
            Activation::Relu => unary(UnaryOp::Relu, x, loc),
            Activation::Sigmoid => unary(UnaryOp::Sigmoid, x, loc),
            Activation::Tanh => unary(UnaryOp::Tanh, x, loc),
            Activation::Gelu => unary(UnaryOp::Gelu, x, loc),
            Activation::Softmax => crate::ops::nn::soft(x, -1, false, loc),
        }
    }
}

impl Layer for Activation {
    #[track_caller]
    fn call(&self, x: &Tensor) -> Result<Tensor> {
        self.apply_at(x, Loc::caller())
    }
    fn named_variables(&self) -> Vec<(String, Variable)> {
        Vec::new()
    }
}
