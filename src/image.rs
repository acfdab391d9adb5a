//! Image helpers, as `tf.image`.

use crate::dtype::DType;
use crate::error::{Error, Loc, Result};
use crate::interop::ndarray::IntoTensor;
use crate::ops::arg;
use crate::tensor::Tensor;

/// Luma weights for R, G, B (ITU-R BT.601, as TensorFlow).
pub const GRAYSCALE_WEIGHTS: [f32; 3] = [0.2989, 0.5870, 0.1140];

/// Converts `[..., 3]` RGB images to `[..., 1]` grayscale, as `tf.image.rgb_to_grayscale`:
/// the weighted sum is computed in f32 and converted back to the input dtype. Integer
/// images are scaled as `convert_image_dtype` does (to `[0, 1]` by the dtype's maximum,
/// and back by `max + 0.5`, truncating), so a u8 red 255 becomes 76.
///
/// Errors: `InvalidArgument` naming the shape when the last dim is not 3 (TensorFlow
/// reports a matmul error there); `DTypeMismatch` for bool images.
#[track_caller]
pub fn rgb_to_grayscale(images: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    let x = arg(images, loc)?;
    if x.rank() == 0 || x.shape()[x.rank() - 1] != 3 {
        return Err(Error::InvalidArgument {
            op: "rgb_to_grayscale",
            message: format!("expected images of shape [..., 3] (RGB channels last), found shape {}", x.shape()),
            location: Some(loc),
        });
    }
    let dt = x.dtype();
    let max = match dt {
        DType::U8 => Some(u8::MAX as f64),
        DType::I32 => Some(i32::MAX as f64),
        DType::I64 => Some(i64::MAX as f64),
        DType::Bool => {
            return Err(Error::DTypeMismatch {
                op: "rgb_to_grayscale",
                expected: "a numeric image dtype".into(),
                found: "bool".into(),
                fix: Some("cast the image to u8 or f32 first".into()),
                location: Some(loc),
            });
        }
        _ => None,
    };
    let f = x.cast(DType::F32)?;
    let f = match max {
        Some(m) => f.mul((1.0 / m) as f32)?,
        None => f,
    };
    let w = Tensor::from_slice(&GRAYSCALE_WEIGHTS, &[3])?;
    let gray = f.mul(&w)?.reduce_sum(Some(&[-1]), true)?;
    match max {
        Some(m) => gray.mul((m + 0.5) as f32)?.cast(dt),
        None => gray.cast(dt),
    }
}
