//! [`matmul_accumulate`]: a product added into an existing buffer (a variable's, in a
//! training step's fused update) instead of a new tensor, on the float path of the module.

use super::{float_mm_into, operand};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::tensor::storage::Buffer;

/// `dst += beta · op(a) · op(b)` for 2-D f32/f64 operands, written over `dst`'s buffer (a
/// variable's, in a training step's fused update). `Ok(false)` when the operands do not
/// qualify (other dtypes or ranks, a size that does not match `dst`); nothing is written then.
pub(crate) fn matmul_accumulate(
    dst: &mut Buffer,
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
    beta: f64,
) -> Result<bool> {
    if a.rank() != 2 || b.rank() != 2 || a.dtype() != b.dtype() {
        return Ok(false);
    }
    let (ma, mb) = (operand(a.shape(), ta), operand(b.shape(), tb));
    if ma.cols != mb.rows {
        return Ok(false);
    }
    let offs = [(0, 0)];
    match dst {
        Buffer::F32(d) if a.dtype() == DType::F32 && d.len() == ma.rows * mb.cols => {
            let (x, y) = (a.host_slice::<f32>("matmul")?, b.host_slice::<f32>("matmul")?);
            float_mm_into(d, x, y, ma, mb, &offs, Some(beta as f32), None);
        }
        Buffer::F64(d) if a.dtype() == DType::F64 && d.len() == ma.rows * mb.cols => {
            let (x, y) = (a.host_slice::<f64>("matmul")?, b.host_slice::<f64>("matmul")?);
            float_mm_into(d, x, y, ma, mb, &offs, Some(beta), None);
        }
        _ => return Ok(false),
    }
    Ok(true)
}
