//! Building models (`ff::nn`): the [`Layer`] trait, [`Dense`], [`Sequential`],
//! activations, losses and seeded weight initialisers.
//!
//! A layer owns `Variable`s and maps a tensor to a tensor with ordinary ops, so the same
//! layer runs eagerly, under a `GradientTape`, and inside a traced function (where its
//! variable reads become graph nodes).

mod activation;
mod dense;
pub mod init;
mod losses;
mod sequential;

pub use activation::{Activation, gelu, log_softmax, relu, sigmoid, softmax, tanh};
pub use dense::{Dense, DenseOptions};
pub use init::{Initializer, glorot_normal, glorot_uniform, he_normal, he_uniform};
pub use losses::{mse, softmax_cross_entropy_with_logits, sparse_softmax_cross_entropy_with_logits};
pub use sequential::Sequential;

use crate::error::Result;
use crate::tensor::Tensor;
use crate::variable::Variable;

/// A piece of a model: maps a tensor to a tensor and owns variables (`tf.Module` /
/// `keras.Layer`). `Send + Sync` so a model can move into a traced function or a thread.
pub trait Layer: Send + Sync {
    /// The layer applied to `x`.
    fn call(&self, x: &Tensor) -> Result<Tensor>;

    /// Every variable with a path-like name unique within the layer (`kernel`,
    /// `0/bias`): what `ff::io::save_variables` writes and `restore_variables` checks.
    fn named_variables(&self) -> Vec<(String, Variable)>;

    /// Every variable, trainable or not, in `named_variables` order.
    fn variables(&self) -> Vec<Variable> {
        self.named_variables().into_iter().map(|(_, v)| v).collect()
    }

    /// The variables an optimizer updates (those created trainable).
    fn trainable_variables(&self) -> Vec<Variable> {
        self.variables().into_iter().filter(Variable::trainable).collect()
    }
}

impl<L: Layer + ?Sized> Layer for std::sync::Arc<L> {
    fn call(&self, x: &Tensor) -> Result<Tensor> {
        (**self).call(x)
    }
    fn named_variables(&self) -> Vec<(String, Variable)> {
        (**self).named_variables()
    }
}

impl<L: Layer + ?Sized> Layer for Box<L> {
    fn call(&self, x: &Tensor) -> Result<Tensor> {
        (**self).call(x)
    }
    fn named_variables(&self) -> Vec<(String, Variable)> {
        (**self).named_variables()
    }
}
