//! The ndarray boundary of sparse tensors: there is no `to_ndarray` on a `SparseTensor`
//! (host code expects dense arrays, and densifying is a cost to make visible), only the
//! shortcut `to_ndarray_dense`, which is `to_dense()?.to_ndarray()`.

use ndarray::ArrayD;

use crate::dtype::Element;
use crate::error::{Loc, Result};
use crate::sparse::SparseTensor;

impl SparseTensor {
    /// The dense tensor (zeros where nothing is stored) copied into an owned array: the
    /// same as `to_dense()?.to_ndarray::<T>()`. Errors: `DTypeMismatch` when `T` is not the
    /// values' dtype, `SymbolicTensor` inside a traced function.
    #[track_caller]
    pub fn to_ndarray_dense<T: Element>(&self) -> Result<ArrayD<T>> {
        let loc = Loc::caller();
        let d = self.to_dense().map_err(|e| e.at(loc))?;
        d.into_ndarray::<T>().map_err(|e| e.at(loc))
    }
}
