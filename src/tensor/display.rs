//! `Display` and `Debug` for tensors, TensorFlow-like: the values (NumPy-style elision of
//! long axes, through ndarray's formatter), then shape, dtype and device.

use std::fmt;

use crate::tensor::Tensor;

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tensor(")?;
        let values = crate::with_dtype!(self.dtype(), T => self.as_ndarray::<T>().map(|v| {
            // ndarray elides axes longer than a few entries with "...", as NumPy does.
            let s = format!("{v}");
            s
        }));
        match values {
            Ok(v) => {
                if v.contains('\n') {
                    // Align continuation lines under the opening bracket.
                    f.write_str(&v.replace('\n', "\n       "))?;
                } else {
                    f.write_str(&v)?;
                }
            }
            Err(_) => f.write_str("<no host values>")?,
        }
        write!(f, ", shape={}, dtype={}, device={})", self.shape(), self.dtype(), self.device())
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
