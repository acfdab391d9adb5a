//! `DType`, the runtime element type of a tensor, and the sealed `Element` trait that maps
//! each dtype to its Rust type (`f32`, `f64`, `half::f16`, `half::bf16`, `i32`, `i64`, `u8`,
//! `bool`), and `Buffer`, the host elements of a tensor (one `Vec` per dtype).

use std::fmt;

use half::{bf16, f16};

/// The element type of a tensor, known at run time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I32,
    I64,
    U8,
    Bool,
}

impl DType {
    /// Every dtype, in a fixed order (used by tests and tables).
    pub const ALL: [DType; 8] =
        [DType::F32, DType::F64, DType::F16, DType::BF16, DType::I32, DType::I64, DType::U8, DType::Bool];

    /// The short name (`f32`, `bf16`, `bool`, ...), as in `Display`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }

    /// Size of one element in bytes.
    pub fn size_of(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::U8 | DType::Bool => 1,
        }
    }

    /// `f16`, `bf16`, `f32` or `f64`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// `i32`, `i64` or `u8`.
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::I64 | DType::U8)
    }

    /// Every dtype but `bool`.
    pub fn is_numeric(self) -> bool {
        self != DType::Bool
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that is the element of one [`DType`]. Sealed: implemented for `f32`, `f64`,
/// `half::f16`, `half::bf16`, `i32`, `i64`, `u8` and `bool` only.
pub trait Element:
    sealed::Sealed + Copy + Send + Sync + Default + PartialEq + PartialOrd + fmt::Debug + fmt::Display + 'static
{
    /// The dtype of this element type.
    const DTYPE: DType;
    #[doc(hidden)]
    fn to_f64(self) -> f64;
    #[doc(hidden)]
    fn from_f64(v: f64) -> Self;
    #[doc(hidden)]
    fn to_i64(self) -> i64;
    /// Integer to this type with wrapping (as TensorFlow casts and adds integers).
    #[doc(hidden)]
    fn from_i64(v: i64) -> Self;
    #[doc(hidden)]
    fn into_buffer(v: Vec<Self>) -> Buffer;
    #[doc(hidden)]
    fn slice(b: &Buffer) -> Option<&[Self]>;
    #[doc(hidden)]
    fn slice_mut(b: &mut Buffer) -> Option<&mut Vec<Self>>;
}

macro_rules! element {
    ($t:ty, $dt:ident, $to_f64:expr, $from_f64:expr, $to_i64:expr, $from_i64:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                let f: fn($t) -> f64 = $to_f64;
                f(self)
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                let f: fn(f64) -> $t = $from_f64;
                f(v)
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                let f: fn($t) -> i64 = $to_i64;
                f(self)
            }
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                let f: fn(i64) -> $t = $from_i64;
                f(v)
            }
            #[inline]
            fn into_buffer(v: Vec<Self>) -> Buffer {
                Buffer::$dt(v)
            }
            #[inline]
            fn slice(b: &Buffer) -> Option<&[Self]> {
                match b {
                    Buffer::$dt(v) => Some(v),
                    _ => None,
                }
            }
            #[inline]
            fn slice_mut(b: &mut Buffer) -> Option<&mut Vec<Self>> {
                match b {
                    Buffer::$dt(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

element!(f32, F32, |x| x as f64, |v| v as f32, |x| x as i64, |v| v as f32);
element!(f64, F64, |x| x, |v| v, |x| x as i64, |v| v as f64);
element!(f16, F16, |x| x.to_f64(), f16::from_f64, |x| x.to_f32() as i64, |v| f16::from_f64(v as f64));
element!(bf16, BF16, |x| x.to_f64(), bf16::from_f64, |x| x.to_f32() as i64, |v| bf16::from_f64(v as f64));
element!(i32, I32, |x| x as f64, |v| v as i32, |x| x as i64, |v| v as i32);
element!(i64, I64, |x| x as f64, |v| v as i64, |x| x, |v| v);
element!(u8, U8, |x| x as f64, |v| v as u8, |x| x as i64, |v| v as u8);
element!(bool, Bool, |x| if x { 1.0 } else { 0.0 }, |v| v != 0.0, |x| x as i64, |v| v != 0);

/// Runs `$body` with `$T` bound to the Rust type of `$dtype`, over every dtype.
#[macro_export]
#[doc(hidden)]
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::DType::F16 => {
                type $T = half::f16;
                $body
            }
            $crate::DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::DType::Bool => {
                type $T = bool;
                $body
            }
        }
    };
}

/// The elements of a host tensor, row-major and contiguous.
#[derive(Clone, Debug)]
pub enum Buffer {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

macro_rules! each_buffer {
    ($b:expr, $v:ident => $body:expr) => {
        match $b {
            Buffer::F32($v) => $body,
            Buffer::F64($v) => $body,
            Buffer::F16($v) => $body,
            Buffer::BF16($v) => $body,
            Buffer::I32($v) => $body,
            Buffer::I64($v) => $body,
            Buffer::U8($v) => $body,
            Buffer::Bool($v) => $body,
        }
    };
}

impl Buffer {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) => DType::F32,
            Buffer::F64(_) => DType::F64,
            Buffer::F16(_) => DType::F16,
            Buffer::BF16(_) => DType::BF16,
            Buffer::I32(_) => DType::I32,
            Buffer::I64(_) => DType::I64,
            Buffer::U8(_) => DType::U8,
            Buffer::Bool(_) => DType::Bool,
        }
    }
    pub(crate) fn len(&self) -> usize {
        each_buffer!(self, v => v.len())
    }
    pub(crate) fn capacity_bytes(&self) -> usize {
        each_buffer!(self, v => v.capacity()) * self.dtype().size_of()
    }
    pub(crate) fn take(&mut self) -> Buffer {
        each_buffer!(self, v => Element::into_buffer(std::mem::take(v)))
    }
    /// Address of the first element, for zero-copy proofs in tests.
    pub(crate) fn as_ptr(&self) -> *const u8 {
        each_buffer!(self, v => v.as_ptr().cast::<u8>())
    }
}
