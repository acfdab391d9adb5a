//! Which dtype an op of several inputs computes in: TensorFlow's strict mode (different
//! dtypes are an error), weak host scalars (they adopt the other operand's dtype), and the
//! NumPy-style promotion table.

use crate::config::{PromotionMode, promotion_mode};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The strict-mode error for two different dtypes.
pub(crate) fn mismatch(op: &'static str, a: DType, b: DType) -> Error {
    Error::dtype(
        op,
        format!("both inputs to have one dtype ({a})"),
        format!("{a} and {b}"),
        Some(format!(
            "cast one input first, e.g. y.cast(DType::{:?}), or switch to NumPy-style promotion with ff::config::set_promotion_mode(PromotionMode::Numpy)",
            a
        )),
    )
}

#[derive(PartialEq, PartialOrd, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Float,
}

fn kind(d: DType) -> Kind {
    if d == DType::Bool {
        Kind::Bool
    } else if d.is_int() {
        Kind::Int
    } else {
        Kind::Float
    }
}

/// NumPy's promotion of two dtypes (`bf16` placed as JAX does). The table in the book's
/// dtype chapter is generated from this function by a test.
pub fn numpy_promote(a: DType, b: DType) -> DType {
    use DType::*;
    if a == b {
        return a;
    }
    match (kind(a), kind(b)) {
        (Kind::Bool, _) => b,
        (_, Kind::Bool) => a,
        (Kind::Int, Kind::Int) => {
            if a == I64 || b == I64 {
                I64
            } else {
                I32
            }
        }
        (Kind::Float, Kind::Float) => match (a, b) {
            (F64, _) | (_, F64) => F64,
            (F32, _) | (_, F32) => F32,
            _ => F32, // f16 with bf16: neither holds the other
        },
        (Kind::Int, Kind::Float) => int_float(a, b),
        (Kind::Float, Kind::Int) => int_float(b, a),
    }
}

fn int_float(i: DType, f: DType) -> DType {
    use DType::*;
    match (i, f) {
        (U8, _) => f,
        (_, F64) => F64,
        // i32 and i64 do not fit in f16, bf16 or f32 without loss: NumPy goes to f64.
        _ => F64,
    }
}

/// The dtype that `a` and `b` are cast to before an op that needs one dtype.
pub(crate) fn unify(op: &'static str, a: &Tensor, b: &Tensor) -> Result<DType> {
    let (da, db) = (a.dtype(), b.dtype());
    if da == db {
        return Ok(da);
    }
    let mode = promotion_mode();
    match (a.is_weak(), b.is_weak()) {
        (true, false) => weak_into(op, da, db, mode),
        (false, true) => weak_into(op, db, da, mode),
        _ => match mode {
            PromotionMode::Strict if !(a.is_weak() && b.is_weak()) => Err(mismatch(op, da, db)),
            _ => Ok(numpy_promote(da, db)),
        },
    }
}

/// The dtype a weak host scalar of dtype `w` takes next to a tensor of dtype `s`, or the
/// error strict mode gives (a float literal for an integer tensor).
pub(crate) fn weak_dtype(op: &'static str, w: DType, s: DType) -> Result<DType> {
    weak_into(op, w, s, promotion_mode())
}

/// A weak host scalar of dtype `w` meets a tensor of dtype `s`.
fn weak_into(op: &'static str, w: DType, s: DType, mode: PromotionMode) -> Result<DType> {
    match (kind(w), kind(s)) {
        // Same kind, or an integer literal meeting a float tensor: the tensor's dtype wins.
        (kw, ks) if kw == ks => Ok(s),
        (Kind::Int, Kind::Float) => Ok(s),
        _ if mode == PromotionMode::Numpy => Ok(numpy_promote(w, s)),
        _ => Err(Error::dtype(
            op,
            format!("a host scalar that fits the tensor's dtype ({s})"),
            format!("a {w} scalar"),
            Some(match (kind(w), kind(s)) {
                (Kind::Float, Kind::Int) => {
                    "a float literal cannot take an integer dtype: cast the tensor first (x.cast(DType::F32)) or use an integer literal".into()
                }
                _ => format!("cast the tensor first, or pass a scalar of type {s}"),
            }),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_table_matches_numpy() {
        use DType::*;
        assert_eq!(numpy_promote(I32, F32), F64);
        assert_eq!(numpy_promote(U8, F16), F16);
        assert_eq!(numpy_promote(U8, I32), I32);
        assert_eq!(numpy_promote(I32, I64), I64);
        assert_eq!(numpy_promote(F16, F32), F32);
        assert_eq!(numpy_promote(Bool, U8), U8);
        assert_eq!(numpy_promote(I64, F16), F64);
        for &a in &DType::ALL {
            for &b in &DType::ALL {
                assert_eq!(numpy_promote(a, b), numpy_promote(b, a), "{a} {b}");
            }
        }
    }
}
