//! Scalar functions behind the elementwise tables, per element type. Integers wrap (as in
//! TensorFlow); `f16`/`bf16` compute in `f32` and round once. The method names are the
//! `scalar_fn` column of `prim::elementwise`.

use half::{bf16, f16};

use crate::dtype::Element;

/// Arithmetic every numeric dtype has.
pub(crate) trait NumK: Element {
    fn zero() -> Self;
    fn one() -> Self;
    /// The smallest value (negative infinity for floats), the identity of max.
    fn lowest() -> Self;
    /// The largest value (infinity for floats), the identity of min.
    fn highest() -> Self;
    fn add(self, b: Self) -> Self;
    fn sub(self, b: Self) -> Self;
    fn mul(self, b: Self) -> Self;
    fn floor_div(self, b: Self) -> Self;
    fn pow(self, b: Self) -> Self;
    fn maximum(self, b: Self) -> Self;
    fn minimum(self, b: Self) -> Self;
    fn neg(self) -> Self;
    fn abs(self) -> Self;
    #[inline(always)]
    fn square(self) -> Self {
        self.mul(self)
    }
    fn relu(self) -> Self;
    /// ReLU's gradient (TensorFlow's `ReluGrad`): `self` (the upstream gradient) where the
    /// ReLU's output `y` is positive, else 0. Internal: the tape's rule for relu.
    #[inline(always)]
    fn relu_grad(self, y: Self) -> Self {
        if y > Self::zero() { self } else { Self::zero() }
    }
    /// Division by a count, for reduce_mean (integer division truncates, as in TensorFlow).
    fn div_count(self, n: usize) -> Self;
}

/// Float-only math.
pub(crate) trait FloatK: NumK {
    fn div(self, b: Self) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn rsqrt(self) -> Self;
    fn sigmoid(self) -> Self;
    fn tanh(self) -> Self;
    fn gelu(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
}

/// Comparisons, for every dtype.
pub(crate) trait CmpK: Element {
    #[inline(always)]
    fn eq(self, b: Self) -> bool {
        self == b
    }
    #[inline(always)]
    fn ne(self, b: Self) -> bool {
        self != b
    }
    #[inline(always)]
    fn lt(self, b: Self) -> bool {
        self < b
    }
    #[inline(always)]
    fn le(self, b: Self) -> bool {
        self <= b
    }
    #[inline(always)]
    fn gt(self, b: Self) -> bool {
        self > b
    }
    #[inline(always)]
    fn ge(self, b: Self) -> bool {
        self >= b
    }
}
impl<T: Element> CmpK for T {}

/// Boolean logic.
pub(crate) trait BoolK: Copy {
    fn not(self) -> Self;
    fn and(self, b: Self) -> Self;
    fn or(self, b: Self) -> Self;
}
impl BoolK for bool {
    #[inline(always)]
    fn not(self) -> bool {
        !self
    }
    #[inline(always)]
    fn and(self, b: bool) -> bool {
        self & b
    }
    #[inline(always)]
    fn or(self, b: bool) -> bool {
        self | b
    }
}

macro_rules! float_native {
    ($t:ty, $exp:path) => {
        impl NumK for $t {
            #[inline(always)]
            fn zero() -> Self {
                0.0
            }
            #[inline(always)]
            fn one() -> Self {
                1.0
            }
            #[inline(always)]
            fn lowest() -> Self {
                <$t>::NEG_INFINITY
            }
            #[inline(always)]
            fn highest() -> Self {
                <$t>::INFINITY
            }
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                self + b
            }
            #[inline(always)]
            fn sub(self, b: Self) -> Self {
                self - b
            }
            #[inline(always)]
            fn mul(self, b: Self) -> Self {
                self * b
            }
            #[inline(always)]
            fn floor_div(self, b: Self) -> Self {
                (self / b).floor()
            }
            #[inline(always)]
            fn pow(self, b: Self) -> Self {
                self.powf(b)
            }
            // NaN propagates, as in NumPy's maximum and TensorFlow's.
            #[inline(always)]
            fn maximum(self, b: Self) -> Self {
                if self > b || self.is_nan() { self } else { b }
            }
            #[inline(always)]
            fn minimum(self, b: Self) -> Self {
                if self < b || self.is_nan() { self } else { b }
            }
            #[inline(always)]
            fn neg(self) -> Self {
                -self
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            // `x < 0` is false for NaN, so NaN passes through as in max(x, 0).
            #[inline(always)]
            fn relu(self) -> Self {
                if self < 0.0 { 0.0 } else { self }
            }
            #[inline(always)]
            fn div_count(self, n: usize) -> Self {
                self / n as $t
            }
        }
        impl FloatK for $t {
            #[inline(always)]
            fn div(self, b: Self) -> Self {
                self / b
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn rsqrt(self) -> Self {
                1.0 / <$t>::sqrt(self)
            }
            #[inline(always)]
            fn sigmoid(self) -> Self {
                // Stable on both sides: exp of a non-positive number only.
                if self >= 0.0 {
                    1.0 / (1.0 + $exp(-self))
                } else {
                    let e = $exp(self);
                    e / (1.0 + e)
                }
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn gelu(self) -> Self {
                0.5 * self * (1.0 + libm::erf(self as f64 * std::f64::consts::FRAC_1_SQRT_2) as $t)
            }
            #[inline(always)]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline(always)]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
        }
    };
}

float_native!(f32, crate::backend::cpu::fastmath::exp_f32);
float_native!(f64, f64::exp);

macro_rules! float_half {
    ($t:ty) => {
        impl NumK for $t {
            #[inline(always)]
            fn zero() -> Self {
                <$t>::ZERO
            }
            #[inline(always)]
            fn one() -> Self {
                <$t>::ONE
            }
            #[inline(always)]
            fn lowest() -> Self {
                <$t>::NEG_INFINITY
            }
            #[inline(always)]
            fn highest() -> Self {
                <$t>::INFINITY
            }
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                <$t>::from_f32(self.to_f32() + b.to_f32())
            }
            #[inline(always)]
            fn sub(self, b: Self) -> Self {
                <$t>::from_f32(self.to_f32() - b.to_f32())
            }
            #[inline(always)]
            fn mul(self, b: Self) -> Self {
                <$t>::from_f32(self.to_f32() * b.to_f32())
            }
            #[inline(always)]
            fn floor_div(self, b: Self) -> Self {
                <$t>::from_f32(NumK::floor_div(self.to_f32(), b.to_f32()))
            }
            #[inline(always)]
            fn pow(self, b: Self) -> Self {
                <$t>::from_f32(self.to_f32().powf(b.to_f32()))
            }
            #[inline(always)]
            fn maximum(self, b: Self) -> Self {
                <$t>::from_f32(NumK::maximum(self.to_f32(), b.to_f32()))
            }
            #[inline(always)]
            fn minimum(self, b: Self) -> Self {
                <$t>::from_f32(NumK::minimum(self.to_f32(), b.to_f32()))
            }
            #[inline(always)]
            fn neg(self) -> Self {
                -self
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::from_f32(self.to_f32().abs())
            }
            #[inline(always)]
            fn relu(self) -> Self {
                if self < <$t>::ZERO { <$t>::ZERO } else { self }
            }
            #[inline(always)]
            fn div_count(self, n: usize) -> Self {
                <$t>::from_f32(self.to_f32() / n as f32)
            }
        }
        impl FloatK for $t {
            #[inline(always)]
            fn div(self, b: Self) -> Self {
                <$t>::from_f32(self.to_f32() / b.to_f32())
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::from_f32(FloatK::exp(self.to_f32()))
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::from_f32(self.to_f32().ln())
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::from_f32(self.to_f32().sqrt())
            }
            #[inline(always)]
            fn rsqrt(self) -> Self {
                <$t>::from_f32(1.0 / self.to_f32().sqrt())
            }
            #[inline(always)]
            fn sigmoid(self) -> Self {
                <$t>::from_f32(FloatK::sigmoid(self.to_f32()))
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::from_f32(self.to_f32().tanh())
            }
            #[inline(always)]
            fn gelu(self) -> Self {
                <$t>::from_f32(FloatK::gelu(self.to_f32()))
            }
            #[inline(always)]
            fn sin(self) -> Self {
                <$t>::from_f32(self.to_f32().sin())
            }
            #[inline(always)]
            fn cos(self) -> Self {
                <$t>::from_f32(self.to_f32().cos())
            }
        }
    };
}

float_half!(f16);
float_half!(bf16);

macro_rules! int_impl {
    ($t:ty, signed: $signed:literal) => {
        impl NumK for $t {
            #[inline(always)]
            fn zero() -> Self {
                0
            }
            #[inline(always)]
            fn one() -> Self {
                1
            }
            #[inline(always)]
            fn lowest() -> Self {
                <$t>::MIN
            }
            #[inline(always)]
            fn highest() -> Self {
                <$t>::MAX
            }
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                self.wrapping_add(b)
            }
            #[inline(always)]
            fn sub(self, b: Self) -> Self {
                self.wrapping_sub(b)
            }
            #[inline(always)]
            fn mul(self, b: Self) -> Self {
                self.wrapping_mul(b)
            }
            // Floor division; division by zero gives 0 rather than a trap (TensorFlow's CPU
            // kernel raises, XLA returns a fixed value: ferroflow documents 0).
            #[allow(unused_comparisons)]
            #[inline(always)]
            fn floor_div(self, b: Self) -> Self {
                if b == 0 {
                    return 0;
                }
                let q = self.wrapping_div(b);
                if $signed && (self.wrapping_rem(b) != 0) && ((self < 0) != (b < 0)) { q.wrapping_sub(1) } else { q }
            }
            // Negative exponents truncate toward zero: 1 and -1 keep a value, others give 0.
            #[inline(always)]
            fn pow(self, b: Self) -> Self {
                #[allow(unused_comparisons)]
                if b < 0 {
                    return if self == 1 {
                        1
                    } else if $signed && self.wrapping_add(1) == 0 {
                        if b.wrapping_rem(2) == 0 { 1 } else { self }
                    } else {
                        0
                    };
                }
                // Saturate through i64 (`u32::MAX as i32` would be -1).
                self.wrapping_pow((b as i64).min(u32::MAX as i64) as u32)
            }
            #[inline(always)]
            fn maximum(self, b: Self) -> Self {
                if self > b { self } else { b }
            }
            #[inline(always)]
            fn minimum(self, b: Self) -> Self {
                if self < b { self } else { b }
            }
            #[inline(always)]
            fn neg(self) -> Self {
                (0 as $t).wrapping_sub(self)
            }
            #[allow(unused_comparisons)]
            #[inline(always)]
            fn abs(self) -> Self {
                if self < 0 { (0 as $t).wrapping_sub(self) } else { self }
            }
            #[allow(unused_comparisons)]
            #[inline(always)]
            fn relu(self) -> Self {
                if self < 0 { 0 } else { self }
            }
            #[inline(always)]
            fn div_count(self, n: usize) -> Self {
                if n == 0 { 0 } else { (self as i64 / n as i64) as $t }
            }
        }
    };
}

int_impl!(i32, signed: true);
int_impl!(i64, signed: true);
int_impl!(u8, signed: false);
