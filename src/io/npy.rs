//! The `.npy` format for one tensor. ndarray-npy reads and writes the header (magic,
//! version 1 to 3, the Python-literal dict with `descr`, `fortran_order` and `shape`); the
//! data is the tensor's elements as raw bytes, little-endian, row-major, which is why a
//! round trip is bit-exact (NaN payloads and `-0.0` included).

use std::io::{Read, Write};

use half::f16;
use ndarray_npy::npy::header::{Header, Layout};
use py_literal::Value as PyValue;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The NumPy type descriptor of a dtype (little-endian), or `None` for bf16, which NumPy
/// has no type for.
pub(crate) fn descr(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
        DType::BF16 => return None,
    })
}

/// A reading or writing problem that is not the operating system's: the message only.
pub(crate) struct Bad(pub(crate) String);

/// Writes `t` as a complete `.npy` file to `w`.
pub(crate) fn write(t: &Tensor, op: &'static str, w: &mut impl Write) -> std::result::Result<(), WriteError> {
    let Some(d) = descr(t.dtype()) else {
        return Err(WriteError::Ff(Error::unsupported(
            op,
            "bf16 tensors: NumPy's .npy format has no bfloat16 type; cast to f32 first (exact) and back after loading",
        )));
    };
    if t.is_symbolic() {
        return Err(WriteError::Ff(t.symbolic_error(op)));
    }
    let header =
        Header { type_descriptor: PyValue::String(d.into()), layout: Layout::Standard, shape: t.shape().to_vec() };
    let bytes = header.to_bytes().map_err(|e| WriteError::Ff(Error::invalid(op, format!("npy header: {e}"))))?;
    w.write_all(&bytes).map_err(WriteError::Io)?;
    w.write_all(&le_bytes(t, op).map_err(WriteError::Ff)?).map_err(WriteError::Io)
}

/// The elements' bytes, little-endian, through each type's bit pattern (a float never
/// passes through an arithmetic conversion, which could quiet a signalling NaN).
fn le_bytes(t: &Tensor, op: &'static str) -> Result<Vec<u8>> {
    Ok(match t.dtype() {
        DType::F32 => t.host_slice::<f32>(op)?.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        DType::F64 => t.host_slice::<f64>(op)?.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        DType::F16 => t.host_slice::<f16>(op)?.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        DType::I32 => t.host_slice::<i32>(op)?.iter().flat_map(|x| x.to_le_bytes()).collect(),
        DType::I64 => t.host_slice::<i64>(op)?.iter().flat_map(|x| x.to_le_bytes()).collect(),
        DType::U8 => t.host_slice::<u8>(op)?.to_vec(),
        DType::Bool => t.host_slice::<bool>(op)?.iter().map(|&x| x as u8).collect(),
        DType::BF16 => return Err(Error::unsupported(op, "bf16 has no .npy type")),
    })
}

pub(crate) enum WriteError {
    Io(std::io::Error),
    Ff(Error),
}

/// Reads a complete `.npy` file; the dtype and shape come from its header.
pub(crate) fn read(r: &mut impl Read, op: &'static str) -> std::result::Result<Tensor, ReadError> {
    let header = Header::from_reader(r).map_err(|e| match e {
        ndarray_npy::npy::header::ReadHeaderError::Io(e) => ReadError::Io(e),
        other => ReadError::Bad(Bad(format!("not a valid .npy header: {other}"))),
    })?;
    let PyValue::String(d) = &header.type_descriptor else {
        return Err(ReadError::Ff(Error::unsupported(
            op,
            format!("structured arrays (descr {}): save each field as its own array", header.type_descriptor),
        )));
    };
    let (big, code) = match d.as_bytes().first() {
        Some(b'>') => (true, &d[1..]),
        Some(b'<' | b'|' | b'=') => (false, &d[1..]),
        _ => (false, &d[..]),
    };
    let dtype = match code {
        "f4" => DType::F32,
        "f8" => DType::F64,
        "f2" => DType::F16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" | "B" => DType::U8,
        "b1" | "?" => DType::Bool,
        _ => {
            return Err(ReadError::Ff(Error::unsupported(
                op,
                format!(
                    "NumPy dtype '{d}': ferroflow holds f32, f64, f16, i32, i64, u8 and bool; convert in NumPy first (a.astype(np.float32) or np.int64)"
                ),
            )));
        }
    };
    let n = Shape::checked_num_elements(op, &header.shape).map_err(ReadError::Ff)?;
    let size = dtype.size_of();
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).map_err(ReadError::Io)?;
    let want = n.checked_mul(size).ok_or_else(|| ReadError::Bad(Bad("the shape overflows".into())))?;
    if bytes.len() != want {
        return Err(ReadError::Bad(Bad(format!(
            "expected {want} data bytes for shape {:?} of '{d}', found {}",
            header.shape,
            bytes.len()
        ))));
    }
    let fortran = header.layout.is_fortran() && header.shape.len() > 1;
    let dims: Vec<usize> = if fortran { header.shape.iter().rev().copied().collect() } else { header.shape.clone() };
    let t = decode(&bytes, dtype, big, &dims).map_err(ReadError::Bad)?;
    if fortran {
        // Column-major data: the tensor of the reversed shape, transposed back (one copy).
        let perm: Vec<usize> = (0..header.shape.len()).rev().collect();
        return crate::ops::shape::transpose_impl(&t, &perm, crate::error::Loc::caller()).map_err(ReadError::Ff);
    }
    Ok(t)
}

pub(crate) enum ReadError {
    Io(std::io::Error),
    Bad(Bad),
    Ff(Error),
}

fn decode(b: &[u8], dtype: DType, big: bool, dims: &[usize]) -> std::result::Result<Tensor, Bad> {
    let shape = Shape::new(dims);
    macro_rules! words {
        ($t:ty, $n:literal, $from:expr) => {{
            let v: Vec<$t> = b
                .chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    if big {
                        a.reverse();
                    }
                    $from(a)
                })
                .collect();
            v
        }};
    }
    Ok(match dtype {
        DType::F32 => Tensor::from_vec_unchecked(words!(f32, 4, |a| f32::from_bits(u32::from_le_bytes(a))), shape),
        DType::F64 => Tensor::from_vec_unchecked(words!(f64, 8, |a| f64::from_bits(u64::from_le_bytes(a))), shape),
        DType::F16 => Tensor::from_vec_unchecked(words!(f16, 2, |a| f16::from_bits(u16::from_le_bytes(a))), shape),
        DType::I32 => Tensor::from_vec_unchecked(words!(i32, 4, i32::from_le_bytes), shape),
        DType::I64 => Tensor::from_vec_unchecked(words!(i64, 8, i64::from_le_bytes), shape),
        DType::U8 => Tensor::from_vec_unchecked(b.to_vec(), shape),
        DType::Bool => {
            if let Some(bad) = b.iter().find(|&&x| x > 1) {
                return Err(Bad(format!("bool data holds byte {bad:#04x}: expected 0 or 1")));
            }
            Tensor::from_vec_unchecked(b.iter().map(|&x| x == 1).collect::<Vec<bool>>(), shape)
        }
        DType::BF16 => return Err(Bad("bf16 cannot come from a .npy file".into())),
    })
}
