//! `Sequential`: layers applied one after another. Variable names are the layer's index
//! and the variable's own name (`0/kernel`, `1/bias`, `2/0/kernel` for a nested model), so
//! a checkpoint of a model restores into any model built the same way.

use std::sync::Arc;

use crate::error::{Loc, Result};
use crate::nn::Layer;
use crate::tensor::Tensor;
use crate::variable::Variable;

/// A stack of layers; `call` feeds each layer's output to the next. Cloning shares the
/// layers (and so the variables), which is how a model moves into a traced function.
#[derive(Clone, Default)]
pub struct Sequential {
    layers: Vec<Arc<dyn Layer>>,
}

impl Sequential {
    /// A model from boxed layers, applied in order.
    pub fn new(layers: Vec<Box<dyn Layer>>) -> Sequential {
        Sequential { layers: layers.into_iter().map(Arc::from).collect() }
    }

    /// Appends `layer` (Keras's `model.add`).
    pub fn add(&mut self, layer: impl Layer + 'static) {
        self.layers.push(Arc::new(layer));
    }

    /// The model with `layer` appended, for building in one expression.
    pub fn with(mut self, layer: impl Layer + 'static) -> Sequential {
        self.add(layer);
        self
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Arc<dyn Layer>] {
        &self.layers
    }

    /// The number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the model has no layers (then `call` returns its input).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Layer for Sequential {
    #[track_caller]
    fn call(&self, x: &Tensor) -> Result<Tensor> {
        let loc = Loc::caller();
        let mut y = x.clone();
        for l in &self.layers {
            y = l.call(&y).map_err(|e| e.at(loc))?;
        }
        Ok(y)
    }
    fn named_variables(&self) -> Vec<(String, Variable)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            out.extend(l.named_variables().into_iter().map(|(n, v)| (format!("{i}/{n}"), v)));
        }
        out
    }
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sequential({} layers, variables [", self.layers.len())?;
        for (i, (n, v)) in self.named_variables().iter().enumerate() {
            let sep = if i > 0 { ", " } else { "" };
            write!(f, "{sep}{n}: {} {}", v.shape(), v.dtype())?;
        }
        write!(f, "])")
    }
}
