//! `Dense`: `activation(x @ kernel + bias)`, kernel `[in, out]`, bias `[out]` (Keras's
//! `Dense`). Sizes are given at creation, so the variables exist before the first call:
//! an optimizer, a checkpoint restore or a traced step can see them at once, and creating
//! them never depends on which trace runs first (Keras builds lazily on the first call
//! instead; in Rust the sizes are at hand when the model is written).

use crate::dtype::DType;
use crate::error::{Error, Loc, Result};
use crate::nn::init::{Initializer, init_impl};
use crate::nn::{Activation, Layer};
use crate::tensor::Tensor;
use crate::variable::Variable;

/// How to build a [`Dense`] layer; `DenseOptions::default()` is Keras's default: no
/// activation, a bias, glorot-uniform kernel, zero bias, f32, a seed from the global one.
#[derive(Clone, Debug)]
pub struct DenseOptions {
    /// Applied to the output.
    pub activation: Activation,
    /// Whether the layer adds a bias.
    pub use_bias: bool,
    /// How the kernel starts.
    pub kernel_initializer: Initializer,
    /// How the bias starts.
    pub bias_initializer: Initializer,
    /// The dtype of the variables (and of the inputs the layer accepts).
    pub dtype: DType,
    /// The kernel initialiser's seed (`None`: drawn from `ff::random::set_seed`'s).
    pub seed: Option<u64>,
    /// Whether the variables are trainable.
    pub trainable: bool,
}

impl Default for DenseOptions {
    fn default() -> Self {
        DenseOptions {
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            dtype: DType::F32,
            seed: None,
            trainable: true,
        }
    }
}

/// A fully connected layer: `activation(x @ kernel + bias)` over the last axis of `x`
/// (any leading dims). Cloning shares the variables.
#[derive(Clone, Debug)]
pub struct Dense {
    kernel: Variable,
    bias: Option<Variable>,
    activation: Activation,
    units_in: usize,
    units_out: usize,
}

impl Dense {
    /// A layer from `units_in` to `units_out` features with Keras's defaults (glorot-uniform
    /// kernel from `seed`, zero bias, f32, no activation).
    #[track_caller]
    pub fn new(units_in: usize, units_out: usize, seed: Option<u64>) -> Result<Dense> {
        Dense::build(units_in, units_out, DenseOptions { seed, ..Default::default() }, Loc::caller())
    }

    /// A layer with every option chosen.
    #[track_caller]
    pub fn with_options(units_in: usize, units_out: usize, options: DenseOptions) -> Result<Dense> {
        Dense::build(units_in, units_out, options, Loc::caller())
    }

    /// The same layer (same variables) with `activation` applied to its output.
    pub fn with_activation(mut self, activation: Activation) -> Dense {
        self.activation = activation;
        self
    }

    fn build(units_in: usize, units_out: usize, o: DenseOptions, loc: Loc) -> Result<Dense> {
        if units_in == 0 || units_out == 0 {
            return Err(Error::InvalidArgument {
                op: "Dense::new",
                message: format!("expected positive sizes, found units_in {units_in}, units_out {units_out}"),
                location: Some(loc),
            });
        }
        let make = |t: Tensor| if o.trainable { Variable::new(t) } else { Variable::non_trainable(t) };
        let kernel = make(init_impl(o.kernel_initializer, &[units_in, units_out], o.dtype, o.seed, loc)?)?;
        let bias = if o.use_bias {
            // The bias gets its own seed so a random bias initialiser does not repeat the kernel.
            let seed = o.seed.map(|s| s ^ 0xB1A5);
            Some(make(init_impl(o.bias_initializer, &[units_out], o.dtype, seed, loc)?)?)
        } else {
            None
        };
        Ok(Dense { kernel, bias, activation: o.activation, units_in, units_out })
    }

    /// The `[in, out]` weight matrix.
    pub fn kernel(&self) -> &Variable {
        &self.kernel
    }
    /// The `[out]` bias, when the layer has one.
    pub fn bias(&self) -> Option<&Variable> {
        self.bias.as_ref()
    }
    /// The activation applied to the output.
    pub fn activation(&self) -> Activation {
        self.activation
    }
    /// `(units_in, units_out)`.
    pub fn units(&self) -> (usize, usize) {
        (self.units_in, self.units_out)
    }

    pub(crate) fn call_at(&self, x: &Tensor, loc: Loc) -> Result<Tensor> {
        if x.rank() < 2 || x.shape()[x.rank() - 1] != self.units_in && x.shape()[x.rank() - 1] != crate::shape::UNKNOWN
        {
            return Err(Error::ShapeMismatch {
                op: "Dense::call",
                expected: format!("an input of shape [batch.., {}]", self.units_in),
                found: format!("shape {}", x.shape()),
                fix: Some(if x.rank() < 2 {
                    "add a batch axis: x.expand_dims(0)".into()
                } else {
                    format!("the layer was created for {} input features", self.units_in)
                }),
                location: Some(loc),
            });
        }
        let mut y = crate::ops::nn::mm(x, &self.kernel.value(), false, false, loc)?;
        if let Some(b) = &self.bias {
            y = crate::ops::math::binary(crate::prim::BinaryOp::Add, &y, &b.value(), loc)?;
        }
        self.activation.apply_at(&y, loc)
    }
}

impl Layer for Dense {
    #[track_caller]
    fn call(&self, x: &Tensor) -> Result<Tensor> {
        self.call_at(x, Loc::caller())
    }
    fn named_variables(&self) -> Vec<(String, Variable)> {
        let mut v = vec![("kernel".to_string(), self.kernel.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }
}
