//! The sparse ops (`ff::sparse::*` and the same names as `SparseTensor` methods), written
//! once over primitives so that eager and traced calls share them: `to_dense`,
//! `from_dense`, `reorder`, `coalesce`, `add` (sparse + dense, sparse + sparse), `matmul`
//! (sparse x dense), `reduce_sum`, `map_values` and `transpose`. Also the argument traits
//! of `SparseTensor::new`: `IntoIndices` and `IntoDenseShape`.

use super::SparseTensor;
use crate::dispatch::apply;
use crate::dtype::{DType, Element};
use crate::error::{Error, Loc, Result};
use crate::interop::ndarray::IntoTensor;
use crate::ops::math::{binary, cast_to};
use crate::prim::{BinaryOp, PrimOp, ReduceOp, SparseOp};
use crate::shape::{Shape, UNKNOWN, normalize_axes};
use crate::tensor::Tensor;

// ---- arguments ------------------------------------------------------------------------

/// What `SparseTensor::new` accepts as indices: anything [`IntoTensor`] (a tensor or an
/// ndarray array of shape `[nnz, rank]`), or rows of coordinates: `&[[0, 1], [2, 3]]`,
/// `[[0, 1]]`, a `Vec<[i64; 2]>`.
pub trait IntoIndices {
    /// Converts to a tensor of shape `[nnz, rank]`.
    #[doc(hidden)]
    fn into_indices(self) -> Result<Tensor>;
}

impl<X: IntoTensor> IntoIndices for X {
    fn into_indices(self) -> Result<Tensor> {
        self.into_tensor()
    }
}

fn rows<I: Element, const R: usize>(rows: &[[I; R]]) -> Tensor {
    let v: Vec<I> = rows.iter().flatten().copied().collect();
    Tensor::from_vec_unchecked(v, Shape::new(&[rows.len(), R]))
}

impl<I: Element, const R: usize> IntoIndices for &[[I; R]] {
    fn into_indices(self) -> Result<Tensor> {
        Ok(rows(self))
    }
}
impl<I: Element, const R: usize, const N: usize> IntoIndices for &[[I; R]; N] {
    fn into_indices(self) -> Result<Tensor> {
        Ok(rows(self))
    }
}
impl<I: Element, const R: usize, const N: usize> IntoIndices for [[I; R]; N] {
    fn into_indices(self) -> Result<Tensor> {
        Ok(rows(&self))
    }
}
impl<I: Element, const R: usize> IntoIndices for Vec<[I; R]> {
    fn into_indices(self) -> Result<Tensor> {
        Ok(rows(&self))
    }
}
impl<I: Element, const R: usize> IntoIndices for &Vec<[I; R]> {
    fn into_indices(self) -> Result<Tensor> {
        Ok(rows(self))
    }
}

/// What `SparseTensor::new` accepts as the dense shape: dims as `usize`, `i64` or `i32`
/// (`[3, 4]`, `&[3, 4]`, a `Vec`), a `&Shape`, or a concrete integer tensor of rank 1.
pub trait IntoDenseShape {
    /// Converts to a fully known shape.
    #[doc(hidden)]
    fn into_dense_shape(self) -> Result<Shape>;
}

const NEW: &str = "SparseTensor::new";

fn dims_from<I: Copy + Into<i64>>(d: &[I]) -> Result<Shape> {
    let mut out = Vec::with_capacity(d.len());
    for (i, &x) in d.iter().enumerate() {
        let x: i64 = x.into();
        if x < 0 {
            return Err(Error::invalid(NEW, format!("dense_shape dims must be >= 0, found {x} at position {i}")));
        }
        out.push(x as usize);
    }
    Shape::checked_num_elements(NEW, &out)?;
    Ok(out.into())
}

macro_rules! dense_shape_from_ints {
    ($($t:ty),*) => {$(
        impl IntoDenseShape for &[$t] {
            fn into_dense_shape(self) -> Result<Shape> {
                dims_from(self)
            }
        }
        impl<const N: usize> IntoDenseShape for [$t; N] {
            fn into_dense_shape(self) -> Result<Shape> {
                dims_from(&self)
            }
        }
        impl<const N: usize> IntoDenseShape for &[$t; N] {
            fn into_dense_shape(self) -> Result<Shape> {
                dims_from(self)
            }
        }
        impl IntoDenseShape for Vec<$t> {
            fn into_dense_shape(self) -> Result<Shape> {
                dims_from(&self)
            }
        }
        impl IntoDenseShape for &Vec<$t> {
            fn into_dense_shape(self) -> Result<Shape> {
                dims_from(self)
            }
        }
    )*};
}
dense_shape_from_ints!(i64, i32);

fn usize_dims(d: &[usize]) -> Result<Shape> {
    if d.contains(&UNKNOWN) {
        return Err(Error::invalid(NEW, format!("dense_shape {} has an unknown dim", Shape::new(d))));
    }
    Shape::checked_num_elements(NEW, d)?;
    Ok(Shape::new(d))
}

impl IntoDenseShape for &[usize] {
    fn into_dense_shape(self) -> Result<Shape> {
        usize_dims(self)
    }
}
impl<const N: usize> IntoDenseShape for [usize; N] {
    fn into_dense_shape(self) -> Result<Shape> {
        usize_dims(&self)
    }
}
impl<const N: usize> IntoDenseShape for &[usize; N] {
    fn into_dense_shape(self) -> Result<Shape> {
        usize_dims(self)
    }
}
impl IntoDenseShape for Vec<usize> {
    fn into_dense_shape(self) -> Result<Shape> {
        usize_dims(&self)
    }
}
impl IntoDenseShape for &Vec<usize> {
    fn into_dense_shape(self) -> Result<Shape> {
        usize_dims(self)
    }
}
impl IntoDenseShape for &Shape {
    fn into_dense_shape(self) -> Result<Shape> {
        usize_dims(self)
    }
}
impl IntoDenseShape for Shape {
    fn into_dense_shape(self) -> Result<Shape> {
        usize_dims(&self)
    }
}
impl IntoDenseShape for &Tensor {
    fn into_dense_shape(self) -> Result<Shape> {
        if self.is_symbolic() {
            return Err(Error::InvalidArgument {
                op: NEW,
                message: format!(
                    "dense_shape must be known when the SparseTensor is made, found symbolic tensor {}; pass the dims as a slice such as &[3, 4] (a traced function keys its cache on them)",
                    self.symbol().map(|s| s.name.as_str()).unwrap_or("?")
                ),
                location: None,
            });
        }
        if self.rank() != 1 {
            return Err(Error::shape(NEW, "a dense_shape tensor of rank 1", format!("shape {}", self.shape())));
        }
        match self.dtype() {
            DType::I64 => dims_from(self.host_slice::<i64>(NEW)?),
            DType::I32 => dims_from(self.host_slice::<i32>(NEW)?),
            DType::U8 => dims_from(self.host_slice::<u8>(NEW)?),
            d => Err(Error::dtype(NEW, "an integer dense_shape (i64, i32 or u8)", d.name(), None)),
        }
    }
}
impl IntoDenseShape for Tensor {
    fn into_dense_shape(self) -> Result<Shape> {
        (&self).into_dense_shape()
    }
}

// ---- helpers ----------------------------------------------------------------------------

/// A rank-0 zero of `dtype` (false for bool).
fn zero(dtype: DType) -> Tensor {
    crate::with_dtype!(dtype, T => Tensor::from_vec_unchecked(vec![T::default()], Shape::scalar()))
}

/// An i64 vector constant.
/// A small i64 index vector (which coordinates to keep), made on the device `like` lives
/// on: an explicit copy to a GPU, so the op works under `DevicePolicy::Explicit`.
fn i64s(v: Vec<i64>, like: &Tensor) -> Result<Tensor> {
    let n = v.len();
    Tensor::from_vec_unchecked(v, Shape::new(&[n])).to_device(like.device())
}

fn gather(x: &Tensor, idx: &Tensor, axis: usize, loc: Loc) -> Result<Tensor> {
    apply(PrimOp::Gather(axis), &[x, idx], loc)
}

fn same_shape(op: &'static str, what: &str, a: &Shape, b: &Shape, loc: Loc) -> Result<()> {
    if a == b {
        return Ok(());
    }
    Err(Error::ShapeMismatch {
        op,
        expected: format!("{what} of the sparse tensor's dense shape {a}"),
        found: format!("shape {b}"),
        fix: None,
        location: Some(loc),
    })
}

// ---- to_dense / from_dense ----------------------------------------------------------------

fn to_dense_impl(sp: &SparseTensor, default: Option<Tensor>, loc: Loc) -> Result<Tensor> {
    const OP: &str = "sparse::to_dense";
    let default = match default {
        None => zero(sp.dtype()),
        Some(d) => d,
    };
    if default.rank() != 0 {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: "a rank-0 default_value".into(),
            found: format!("shape {}", default.shape()),
            fix: None,
            location: Some(loc),
        });
    }
    let (values, default) = if default.dtype() == sp.dtype() && !default.is_weak() {
        (sp.values.clone(), default)
    } else {
        let d = crate::prim::promote::unify(OP, &sp.values, &default).map_err(|e| e.at(loc))?;
        (cast_to(&sp.values, d, loc)?, cast_to(&default, d, loc)?)
    };
    apply(PrimOp::Sparse(SparseOp::ToDense(sp.shape.clone())), &[&sp.indices, &values, &default], loc)
}

/// The dense tensor: `default_value` (a rank-0 tensor or host scalar, which takes the
/// values' dtype) everywhere, each entry's value at its index. Entries repeated in an
/// unvalidated tensor add up (bool: or), as `tf.scatter_nd` does.
#[track_caller]
pub fn to_dense(sp: &SparseTensor, default_value: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    let d = crate::ops::arg(default_value, loc)?;
    to_dense_impl(sp, Some(d), loc)
}

fn from_dense_impl(x: &Tensor, loc: Loc) -> Result<SparseTensor> {
    if !x.shape().is_fully_known() {
        return Err(Error::InvalidArgument {
            op: "sparse::from_dense",
            message: format!(
                "the dense shape must be known when the sparse tensor is made, found {}; give the function's input_signature fixed dims",
                x.shape()
            ),
            location: Some(loc),
        });
    }
    let x = x.strong();
    let indices = apply(PrimOp::Sparse(SparseOp::NonZero), &[&x], loc)?;
    let offsets = flat_offsets(&indices, x.shape(), loc)?;
    let flat = crate::ops::shape::reshape_impl(&x, &[-1], loc)?;
    let values = gather(&flat, &offsets, 0, loc)?;
    Ok(SparseTensor::from_parts(indices, values, x.shape().clone()))
}

/// Each entry's flat (row-major) offset in a tensor of `shape`: column `d` of the indices
/// times stride `d`, added up. The strides are host scalars, so on a GPU they are kernel
/// parameters and nothing is copied there (a vector of strides would be an upload, and an
/// error under `DevicePolicy::Explicit`).
fn flat_offsets(indices: &Tensor, shape: &Shape, loc: Loc) -> Result<Tensor> {
    let mut acc: Option<Tensor> = None;
    for (d, &stride) in shape.strides().iter().enumerate() {
        let slice = PrimOp::Slice { begin: smallvec::smallvec![0, d], size: smallvec::smallvec![-1, 1] };
        let col = apply(slice, &[indices], loc)?;
        let term = if stride == 1 {
            col
        } else {
            apply(PrimOp::Binary(BinaryOp::Mul), &[&col, &Tensor::scalar(stride as i64)], loc)?
        };
        acc = Some(match acc {
            None => term,
            Some(a) => apply(PrimOp::Binary(BinaryOp::Add), &[&a, &term], loc)?,
        });
    }
    match acc {
        Some(a) => crate::ops::shape::reshape_impl(&a, &[-1], loc),
        // Rank 0: offset 0 for each of the (0 or 1) entries, the sum of no columns.
        None => {
            let sum = PrimOp::Reduce { op: ReduceOp::Sum, axes: smallvec::smallvec![1], keepdims: false };
            apply(sum, &[indices], loc)
        }
    }
}

/// The non-zero elements of a dense tensor as a sparse tensor, in canonical order (NaN
/// counts as non-zero, `-0.0` as zero; for bool, the `true` elements).
#[track_caller]
pub fn from_dense(x: impl IntoTensor) -> Result<SparseTensor> {
    let loc = Loc::caller();
    from_dense_impl(&crate::ops::arg(x, loc)?, loc)
}

// ---- reorder / coalesce -----------------------------------------------------------------

fn reorder_impl(sp: &SparseTensor, loc: Loc) -> Result<SparseTensor> {
    let perm = apply(PrimOp::Sparse(SparseOp::Reorder), &[&sp.indices], loc)?;
    let indices = gather(&sp.indices, &perm, 0, loc)?;
    let values = gather(&sp.values, &perm, 0, loc)?;
    Ok(SparseTensor::from_parts(indices, values, sp.shape.clone()))
}

/// The same entries sorted into canonical row-major order (stable: repeated indices keep
/// their relative order), as `tf.sparse.reorder`.
#[track_caller]
pub fn reorder(sp: &SparseTensor) -> Result<SparseTensor> {
    reorder_impl(sp, Loc::caller())
}

fn coalesce_impl(sp: &SparseTensor, loc: Loc) -> Result<SparseTensor> {
    let indices = apply(PrimOp::Sparse(SparseOp::Unique), &[&sp.indices], loc)?;
    let values = apply(PrimOp::Sparse(SparseOp::SegmentSum), &[&sp.indices, &sp.values], loc)?;
    Ok(SparseTensor::from_parts(indices, values, sp.shape.clone()))
}

/// The entries sorted into canonical order with repeated indices merged, their values
/// added (bool: or): a tensor that passes validation whenever its indices are in bounds.
#[track_caller]
pub fn coalesce(sp: &SparseTensor) -> Result<SparseTensor> {
    coalesce_impl(sp, Loc::caller())
}

// ---- add ----------------------------------------------------------------------------------

/// The right-hand side of [`add`]: a sparse tensor (the sum is sparse) or anything
/// [`IntoTensor`] (the sum is dense).
pub trait AddOperand {
    /// `SparseTensor` or `Tensor`.
    type Output;
    #[doc(hidden)]
    fn add_to(self, a: &SparseTensor, loc: Loc) -> Result<Self::Output>;
}

fn add_sparse(a: &SparseTensor, b: &SparseTensor, loc: Loc) -> Result<SparseTensor> {
    const OP: &str = "sparse::add";
    same_shape(OP, "a sparse tensor", &a.shape, &b.shape, loc)?;
    let (av, bv) = if a.dtype() == b.dtype() {
        (a.values.clone(), b.values.clone())
    } else {
        let d = crate::prim::promote::unify(OP, &a.values, &b.values).map_err(|e| e.at(loc))?;
        (cast_to(&a.values, d, loc)?, cast_to(&b.values, d, loc)?)
    };
    let indices = apply(PrimOp::Concat(0), &[&a.indices, &b.indices], loc)?;
    let values = apply(PrimOp::Concat(0), &[&av, &bv], loc)?;
    coalesce_impl(&SparseTensor::from_parts(indices, values, a.shape.clone()), loc)
}

impl AddOperand for &SparseTensor {
    type Output = SparseTensor;
    fn add_to(self, a: &SparseTensor, loc: Loc) -> Result<SparseTensor> {
        add_sparse(a, self, loc)
    }
}
impl AddOperand for SparseTensor {
    type Output = SparseTensor;
    fn add_to(self, a: &SparseTensor, loc: Loc) -> Result<SparseTensor> {
        add_sparse(a, &self, loc)
    }
}
impl<X: IntoTensor> AddOperand for X {
    type Output = Tensor;
    fn add_to(self, a: &SparseTensor, loc: Loc) -> Result<Tensor> {
        let b = crate::ops::arg(self, loc)?;
        same_shape("sparse::add", "a dense tensor", &a.shape, b.shape(), loc)?;
        let d = to_dense_impl(a, None, loc)?;
        binary(BinaryOp::Add, &d, &b, loc)
    }
}

/// `a + b`, as `tf.sparse.add`: with a sparse `b` the sum is sparse (the union of the
/// entries, coinciding ones added, in canonical order); with a dense `b` (anything
/// [`IntoTensor`] of the same shape) it is dense. Dtypes follow the dense ops' rules.
#[track_caller]
pub fn add<B: AddOperand>(a: &SparseTensor, b: B) -> Result<B::Output> {
    b.add_to(a, Loc::caller())
}

// ---- matmul -------------------------------------------------------------------------------

fn matmul_impl(a: &SparseTensor, b: &Tensor, loc: Loc) -> Result<Tensor> {
    const OP: &str = "sparse::matmul";
    if a.rank() != 2 {
        return Err(Error::InvalidArgument {
            op: OP,
            message: format!("the sparse operand needs rank 2, found dense shape {}", a.shape),
            location: Some(loc),
        });
    }
    let (av, b) = if a.dtype() == b.dtype() && !b.is_weak() {
        (a.values.clone(), b.clone())
    } else {
        let d = crate::prim::promote::unify(OP, &a.values, b).map_err(|e| e.at(loc))?;
        (cast_to(&a.values, d, loc)?, cast_to(b, d, loc)?)
    };
    apply(PrimOp::Sparse(SparseOp::MatMul(a.shape.clone())), &[&a.indices, &av, &b], loc)
}

/// The sparse `[m, k]` matrix `a` times the dense `[k, n]` matrix `b`: dense `[m, n]`, as
/// `tf.sparse.sparse_dense_matmul`. Work and memory follow the stored entries, not `m * k`;
/// rows run in parallel. Repeated entries of an unvalidated `a` add up.
#[track_caller]
pub fn matmul(a: &SparseTensor, b: impl IntoTensor) -> Result<Tensor> {
    let loc = Loc::caller();
    matmul_impl(a, &crate::ops::arg(b, loc)?, loc)
}

// ---- reduce_sum ---------------------------------------------------------------------------

fn reduce_sum_impl(sp: &SparseTensor, axes: Option<&[isize]>, keepdims: bool, loc: Loc) -> Result<Tensor> {
    const OP: &str = "sparse::reduce_sum";
    if sp.dtype() == DType::Bool {
        return Err(Error::DTypeMismatch {
            op: OP,
            expected: "numeric values".into(),
            found: "bool".into(),
            fix: Some("cast the values first: sp.map_values(|v| v.cast(DType::I32))".into()),
            location: Some(loc),
        });
    }
    let axes = normalize_axes(OP, axes, sp.rank()).map_err(|e| e.at(loc))?;
    if matches!(sp.dtype(), DType::F16 | DType::BF16) {
        // Half types add up in f32 and round once, as the dense reductions do.
        let wide =
            SparseTensor::from_parts(sp.indices.clone(), cast_to(&sp.values, DType::F32, loc)?, sp.shape.clone());
        let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        return cast_to(&reduce_sum_impl(&wide, Some(&axes), keepdims, loc)?, sp.dtype(), loc);
    }
    let kept: Vec<i64> = (0..sp.rank()).filter(|d| !axes.contains(d)).map(|d| d as i64).collect();
    let out = crate::prim::infer::reduced_shape(&sp.shape, &axes, false);
    // Dropping the reduced coordinates maps each entry to its output element; the scatter
    // adds the entries that land on one element.
    let kept = gather(&sp.indices, &i64s(kept, &sp.indices).map_err(|e| e.at(loc))?, 1, loc)?;
    let dense = apply(PrimOp::Sparse(SparseOp::ToDense(out)), &[&kept, &sp.values, &zero(sp.dtype())], loc)?;
    if !keepdims {
        return Ok(dense);
    }
    let dims: Vec<isize> =
        crate::prim::infer::reduced_shape(&sp.shape, &axes, true).iter().map(|&d| d as isize).collect();
    crate::ops::shape::reshape_impl(&dense, &dims, loc)
}

/// The sum of the elements of the dense tensor over `axes` (`None` = all, negative axes
/// count from the end), as a dense tensor; `keepdims` keeps reduced axes as size 1. Work
/// follows the stored entries. As `tf.sparse.reduce_sum`.
#[track_caller]
pub fn reduce_sum(sp: &SparseTensor, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
    reduce_sum_impl(sp, axes, keepdims, Loc::caller())
}

// ---- map_values / transpose ------------------------------------------------------------

fn map_values_impl(sp: &SparseTensor, f: impl FnOnce(&Tensor) -> Result<Tensor>, loc: Loc) -> Result<SparseTensor> {
    let v = f(&sp.values)?;
    let (n, m) = (sp.values.shape()[0], v.shape().first().copied().unwrap_or(0));
    if v.rank() != 1 || !(n == m || n == UNKNOWN || m == UNKNOWN) {
        return Err(Error::ShapeMismatch {
            op: "sparse::map_values",
            expected: format!("f to return one value per entry (shape {})", sp.values.shape()),
            found: format!("shape {}", v.shape()),
            fix: Some("map the values elementwise (ops that keep the shape)".into()),
            location: Some(loc),
        });
    }
    Ok(SparseTensor::from_parts(sp.indices.clone(), v.strong(), sp.shape.clone()))
}

/// The same indices with `f` applied to the values (an elementwise op such as
/// `|v| v * 2.0f32` or `|v| v.cast(DType::F64)`), as `tf.sparse.map_values`. Zeros of the
/// dense tensor stay zeros, whatever `f` does to zero.
#[track_caller]
pub fn map_values(sp: &SparseTensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<SparseTensor> {
    map_values_impl(sp, f, Loc::caller())
}

fn transpose_impl(sp: &SparseTensor, perm: &[usize], loc: Loc) -> Result<SparseTensor> {
    let r = sp.rank();
    let mut seen = vec![false; r];
    if perm.len() != r || !perm.iter().all(|&p| p < r && !std::mem::replace(&mut seen[p], true)) {
        return Err(Error::InvalidArgument {
            op: "sparse::transpose",
            message: format!("perm {perm:?} is not a permutation of 0..{r} (dense shape {})", sp.shape),
            location: Some(loc),
        });
    }
    let perm_idx = i64s(perm.iter().map(|&p| p as i64).collect(), &sp.indices).map_err(|e| e.at(loc))?;
    let indices = gather(&sp.indices, &perm_idx, 1, loc)?;
    let shape: Shape = perm.iter().map(|&p| sp.shape[p]).collect::<Vec<_>>().into();
    reorder_impl(&SparseTensor::from_parts(indices, sp.values.clone(), shape), loc)
}

/// Permutes the dims (output dim `i` is dim `perm[i]`) and reorders the entries into
/// canonical order, as `tf.sparse.transpose`.
#[track_caller]
pub fn transpose(sp: &SparseTensor, perm: &[usize]) -> Result<SparseTensor> {
    transpose_impl(sp, perm, Loc::caller())
}

// ---- methods ------------------------------------------------------------------------------

impl SparseTensor {
    /// The dense tensor, zero where no entry is stored. See [`to_dense`] for a default value.
    #[track_caller]
    pub fn to_dense(&self) -> Result<Tensor> {
        to_dense_impl(self, None, Loc::caller())
    }
    /// See [`from_dense`].
    #[track_caller]
    pub fn from_dense(x: impl IntoTensor) -> Result<SparseTensor> {
        let loc = Loc::caller();
        from_dense_impl(&crate::ops::arg(x, loc)?, loc)
    }
    /// See [`reorder`].
    #[track_caller]
    pub fn reorder(&self) -> Result<SparseTensor> {
        reorder_impl(self, Loc::caller())
    }
    /// See [`coalesce`].
    #[track_caller]
    pub fn coalesce(&self) -> Result<SparseTensor> {
        coalesce_impl(self, Loc::caller())
    }
    /// See [`add`].
    #[track_caller]
    pub fn add<B: AddOperand>(&self, b: B) -> Result<B::Output> {
        b.add_to(self, Loc::caller())
    }
    /// See [`matmul`].
    #[track_caller]
    pub fn matmul(&self, b: impl IntoTensor) -> Result<Tensor> {
        let loc = Loc::caller();
        matmul_impl(self, &crate::ops::arg(b, loc)?, loc)
    }
    /// See [`reduce_sum`].
    #[track_caller]
    pub fn reduce_sum(&self, axes: Option<&[isize]>, keepdims: bool) -> Result<Tensor> {
        reduce_sum_impl(self, axes, keepdims, Loc::caller())
    }
    /// See [`map_values`].
    #[track_caller]
    pub fn map_values(&self, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<SparseTensor> {
        map_values_impl(self, f, Loc::caller())
    }
    /// See [`transpose`].
    #[track_caller]
    pub fn transpose(&self, perm: &[usize]) -> Result<SparseTensor> {
        transpose_impl(self, perm, Loc::caller())
    }
}
