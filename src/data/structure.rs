//! The shapes a dataset element can take: one tensor, a tuple of tensors (features and
//! labels), or a `Vec` of them. Internally a pipeline carries elements flattened to a
//! `Vec<Tensor>`; [`Structure`] converts at the edges (what `map` closures and iteration
//! see), and [`IntoSlices`] says what `from_tensor_slices` accepts.

use crate::error::{Error, Result};
use crate::interop::ndarray::IntoTensor;
use crate::tensor::Tensor;

/// A dataset element: one tensor or a fixed group of them.
pub trait Structure: Sized + Send + 'static {
    /// The components, in order.
    fn flatten(self) -> Vec<Tensor>;
    /// Rebuilds an element from its components (`InvalidArgument` on a count mismatch,
    /// which only a `map` closure returning another structure's count can cause).
    fn unflatten(parts: Vec<Tensor>) -> Result<Self>;
}

fn count_error(expected: usize, found: usize) -> Error {
    Error::invalid("Dataset", format!("expected an element of {expected} tensors, found {found}"))
}

impl Structure for Tensor {
    fn flatten(self) -> Vec<Tensor> {
        vec![self]
    }
    fn unflatten(parts: Vec<Tensor>) -> Result<Self> {
        let n = parts.len();
        let mut it = parts.into_iter();
        match (it.next(), it.next()) {
            (Some(t), None) => Ok(t),
            _ => Err(count_error(1, n)),
        }
    }
}

impl Structure for Vec<Tensor> {
    fn flatten(self) -> Vec<Tensor> {
        self
    }
    fn unflatten(parts: Vec<Tensor>) -> Result<Self> {
        Ok(parts)
    }
}

macro_rules! tuple_structure {
    ($n:literal; $($v:ident),+) => {
        impl Structure for ($(tensor_of!($v),)+) {
            fn flatten(self) -> Vec<Tensor> {
                let ($($v,)+) = self;
                vec![$($v),+]
            }
            fn unflatten(parts: Vec<Tensor>) -> Result<Self> {
                let found = parts.len();
                let mut it = parts.into_iter();
                $(let $v = it.next();)+
                match (($($v,)+), it.next()) {
                    (($(Some($v),)+), None) => Ok(($($v,)+)),
                    _ => Err(count_error($n, found)),
                }
            }
        }
    };
}

macro_rules! tensor_of {
    ($v:ident) => {
        Tensor
    };
}

tuple_structure!(1; a);
tuple_structure!(2; a, b);
tuple_structure!(3; a, b, c);
tuple_structure!(4; a, b, c, d);

/// What `Dataset::from_tensor_slices` accepts: anything [`IntoTensor`] (an element per
/// row), or a tuple of up to 4 of them with the same number of rows.
pub trait IntoSlices {
    /// The element type of the dataset.
    type Element: Structure;
    /// Converts every component to a tensor (once).
    fn into_components(self) -> Result<Vec<Tensor>>;
}

impl<X: IntoTensor> IntoSlices for X {
    type Element = Tensor;
    fn into_components(self) -> Result<Vec<Tensor>> {
        Ok(vec![self.into_tensor()?])
    }
}

macro_rules! tuple_slices {
    ($($A:ident),+; $E:ty) => {
        impl<$($A: IntoTensor),+> IntoSlices for ($($A,)+) {
            type Element = $E;
            fn into_components(self) -> Result<Vec<Tensor>> {
                #[allow(non_snake_case)]
                let ($($A,)+) = self;
                Ok(vec![$($A.into_tensor()?),+])
            }
        }
    };
}

tuple_slices!(A, B; (Tensor, Tensor));
tuple_slices!(A, B, C; (Tensor, Tensor, Tensor));
tuple_slices!(A, B, C, D; (Tensor, Tensor, Tensor, Tensor));
