//! `Shape` (dims stored inline for rank <= 4), NumPy broadcasting and axis normalisation.

use std::fmt;
use std::ops::Deref;

use smallvec::SmallVec;

use crate::error::{Error, Result};

/// An unknown dim of a symbolic tensor (from an `input_signature` with `None`, or
/// `reduce_retracing`); shown as `?`. Concrete tensors never have one.
pub const UNKNOWN: usize = usize::MAX;

/// The dimensions of a tensor. Rank <= 4 lives inline, without a heap allocation.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub(crate) SmallVec<[usize; 4]>);

impl Shape {
    /// A shape from its dims.
    pub fn new(dims: &[usize]) -> Shape {
        Shape(SmallVec::from_slice(dims))
    }
    /// The shape of a scalar: no dims.
    pub fn scalar() -> Shape {
        Shape(SmallVec::new())
    }
    /// The number of dims.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// The product of the dims (1 for a scalar; saturates at `usize::MAX` when a dim is
    /// unknown).
    pub fn num_elements(&self) -> usize {
        self.0.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }
    /// Whether every dim is known (always, for a concrete tensor).
    pub fn is_fully_known(&self) -> bool {
        !self.0.contains(&UNKNOWN)
    }
    /// Dim `i`, or `None` when it is unknown or out of range.
    pub fn dim(&self, i: usize) -> Option<usize> {
        self.0.get(i).copied().filter(|&d| d != UNKNOWN)
    }
    /// The dims as a slice.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// Row-major (C order) strides, in elements.
    pub fn strides(&self) -> SmallVec<[usize; 4]> {
        let mut s: SmallVec<[usize; 4]> = SmallVec::from_elem(1, self.rank());
        for i in (0..self.rank().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }
    /// The product of dims, or an error when it overflows `usize` (user-given shapes).
    pub(crate) fn checked_num_elements(op: &'static str, dims: &[usize]) -> Result<usize> {
        dims.iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::invalid(op, format!("shape {} has more elements than fit in memory", fmt_dims(dims))))
    }
}

impl Deref for Shape {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.0
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Shape {
        Shape::new(d)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Shape {
        Shape::new(&d)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Shape {
        Shape(SmallVec::from_vec(d))
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_dims(&self.0))
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `[2, 3]` style text for a list of dims.
pub(crate) fn fmt_dims(d: &[usize]) -> String {
    let mut s = String::from("[");
    for (i, x) in d.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        if *x == UNKNOWN {
            s.push('?');
        } else {
            s.push_str(&x.to_string());
        }
    }
    s.push(']');
    s
}

/// The NumPy broadcast of two shapes, or `ShapeMismatch` naming both.
pub(crate) fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Shape> {
    if a == b {
        return Ok(Shape::new(a));
    }
    let rank = a.len().max(b.len());
    let mut out: SmallVec<[usize; 4]> = SmallVec::from_elem(0, rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        // An unknown dim takes the other one (checked again when the graph runs).
        out[i] = if da == db || db == 1 || db == UNKNOWN {
            da
        } else if da == 1 || da == UNKNOWN {
            db
        } else {
            return Err(Error::ShapeMismatch {
                op,
                expected: "shapes that broadcast (each dim equal, or one of them 1)".into(),
                found: format!("{} and {} (dim {} of the result: {} vs {})", fmt_dims(a), fmt_dims(b), i, da, db),
                fix: Some("reshape or expand_dims one operand so the dims line up from the right".into()),
                location: None,
            });
        };
    }
    Ok(Shape(out))
}

/// Normalises a possibly negative axis into `0..rank`.
#[inline]
pub(crate) fn normalize_axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    if axis < -r || axis >= r {
        return Err(Error::axis(op, axis, rank));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// Normalises a list of axes (`None` = all), sorted, rejecting repeats.
pub(crate) fn normalize_axes(op: &'static str, axes: Option<&[isize]>, rank: usize) -> Result<SmallVec<[usize; 4]>> {
    let mut out: SmallVec<[usize; 4]> = match axes {
        None => (0..rank).collect(),
        Some(a) => a.iter().map(|&x| normalize_axis(op, x, rank)).collect::<Result<_>>()?,
    };
    out.sort_unstable();
    for w in out.windows(2) {
        if w[0] == w[1] {
            return Err(Error::invalid(op, format!("axis {} is listed twice in {:?}", w[0], axes.unwrap_or(&[]))));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes("t", &[2, 1, 3], &[4, 1]).unwrap().dims(), &[2, 4, 3]);
        assert_eq!(broadcast_shapes("t", &[], &[5]).unwrap().dims(), &[5]);
        assert!(matches!(broadcast_shapes("t", &[2, 3], &[4, 3]), Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn axes_normalise_and_reject() {
        assert_eq!(normalize_axis("t", -1, 3).unwrap(), 2);
        assert!(matches!(normalize_axis("t", 3, 3), Err(Error::AxisOutOfRange { .. })));
        assert!(matches!(normalize_axes("t", Some(&[0, -3]), 3), Err(Error::InvalidArgument { .. })));
        assert_eq!(Shape::new(&[2, 3, 4]).strides().as_slice(), &[12, 4, 1]);
    }
}
