//! Input pipelines (`ff::data`, after `tf.data`): [`Dataset::from_tensor_slices`] converts
//! its inputs to tensors once; `shuffle`, `batch`, `map`, `repeat`, `take`, `skip` and
//! `prefetch` build a pipeline that iteration runs, one element at a time.
//!
//! Nothing here converts host data again. Until a stage needs the values, an element of a
//! sliced dataset is only a row index (`Item::Row`): shuffling and repeating move indices,
//! and `batch` cuts the batch from the converted tensors with one op per component (a
//! `slice` for consecutive rows, the tensor itself for all rows, a `gather` otherwise).

mod pipeline;
mod structure;

pub use pipeline::DatasetIter;
pub use structure::{IntoSlices, Structure};

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::error::{Error, Loc, Result};
use crate::tensor::Tensor;
use pipeline::{Pipeline, Source, Stage};

/// A pipeline of elements of type `E` (a `Tensor`, a tuple of tensors or a `Vec`).
/// Cheap to clone (the stages are shared); iterate it with `for x in &ds` or `ds.iter()`,
/// as many times as you like: each iteration is one epoch. Items are `Result<E>`; after
/// an `Err` the iteration ends.
pub struct Dataset<E> {
    p: Arc<Pipeline>,
    _e: PhantomData<fn() -> E>,
}

impl<E> Clone for Dataset<E> {
    fn clone(&self) -> Self {
        Dataset { p: self.p.clone(), _e: PhantomData }
    }
}

/// How many times `repeat` runs through its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// This many epochs.
    Times(usize),
    /// Until the consumer stops (`take`, `break`).
    Forever,
}

impl From<usize> for Repeat {
    fn from(n: usize) -> Self {
        Repeat::Times(n)
    }
}
impl From<Option<usize>> for Repeat {
    fn from(n: Option<usize>) -> Self {
        n.map_or(Repeat::Forever, Repeat::Times)
    }
}

impl<E: Structure> Dataset<E> {
    /// A dataset whose elements are the rows (slices along axis 0) of `x`, or, for a tuple
    /// `(x, y)`, the pairs of rows `(x[i], y[i])`. Each input is converted to a tensor here,
    /// once: a `Tensor` is shared, an owned `Array` or `Vec` is moved, a view is copied.
    ///
    /// Errors: `InvalidArgument` for a rank-0 input, `ShapeMismatch` when the inputs have
    /// different numbers of rows, `SymbolicTensor` inside a traced function.
    #[track_caller]
    pub fn from_tensor_slices<S: IntoSlices<Element = E>>(inputs: S) -> Result<Dataset<E>> {
        let loc = Loc::caller();
        let comps = inputs.into_components().map_err(|e| e.at(loc))?;
        let op = "Dataset::from_tensor_slices";
        let mut rows = None;
        for (i, c) in comps.iter().enumerate() {
            if c.is_symbolic() {
                return Err(c.symbolic_error(op).at(loc));
            }
            if c.rank() == 0 {
                return Err(Error::InvalidArgument {
                    op,
                    message: format!("input {i} is a scalar: expected rank >= 1 (elements are the rows along axis 0)"),
                    location: Some(loc),
                });
            }
            let n = c.shape()[0];
            match rows {
                None => rows = Some(n),
                Some(r) if r != n => {
                    return Err(Error::ShapeMismatch {
                        op,
                        expected: format!("every input with {r} rows (as input 0)"),
                        found: format!("input {i} of shape {}", c.shape()),
                        fix: None,
                        location: Some(loc),
                    });
                }
                Some(_) => {}
            }
        }
        let rows = rows.unwrap_or(0);
        let comps = comps.into_iter().map(|c| c.strong()).collect();
        Ok(Dataset { p: Arc::new(Pipeline::new(Source { comps, rows })), _e: PhantomData })
    }

    fn with(&self, stage: Stage) -> Self {
        Dataset { p: Arc::new(self.p.push(stage)), _e: PhantomData }
    }

    fn with_as<E2>(&self, stage: Stage) -> Dataset<E2> {
        Dataset { p: Arc::new(self.p.push(stage)), _e: PhantomData }
    }

    /// Shuffles with a buffer of `buffer_size` elements, as `tf.data`: the buffer is filled
    /// with the first elements, then each output is a random element of the buffer, whose
    /// place the next input takes. A buffer as large as the dataset gives a uniform
    /// shuffle. Every iteration (epoch) draws a new order, deterministically from `seed`
    /// (`None`: a seed drawn from `ff::random::set_seed`'s). A zero buffer is an
    /// `InvalidArgument` when iterated.
    #[track_caller]
    pub fn shuffle(&self, buffer_size: usize, seed: Option<u64>) -> Self {
        let loc = Loc::caller();
        if buffer_size == 0 {
            return self.with(Stage::invalid("Dataset::shuffle", "expected buffer_size >= 1, found 0", loc));
        }
        let seed = crate::random::op_seed(seed);
        self.with(Stage::Shuffle { buffer: buffer_size, seed, epoch: Arc::new(AtomicU64::new(0)) })
    }

    /// Groups `n` consecutive elements into one, stacking each component along a new axis
    /// 0; the last batch may be smaller. Elements must have equal shapes
    /// (`ShapeMismatch` otherwise). `n == 0` is an `InvalidArgument` when iterated.
    #[track_caller]
    pub fn batch(&self, n: usize) -> Self {
        self.batch_impl(n, false, Loc::caller())
    }

    /// `batch(n)` without the last, smaller batch: every batch has exactly `n` elements
    /// (static shapes, so a traced step traces once).
    #[track_caller]
    pub fn batch_drop_remainder(&self, n: usize) -> Self {
        self.batch_impl(n, true, Loc::caller())
    }

    fn batch_impl(&self, n: usize, drop_remainder: bool, loc: Loc) -> Self {
        if n == 0 {
            return self.with(Stage::invalid("Dataset::batch", "expected a batch size >= 1, found 0", loc));
        }
        self.with(Stage::Batch { n, drop_remainder, loc })
    }

    /// Applies `f` to every element. `f` may call ops eagerly or a traced function
    /// (`move |(x, y)| Ok((f.call((&x,))?, y))`); with `prefetch` after it, it runs on the
    /// prefetch thread. An `Err` from `f` ends the iteration with that error.
    pub fn map<E2, F>(&self, f: F) -> Dataset<E2>
    where
        E2: Structure,
        F: Fn(E) -> Result<E2> + Send + Sync + 'static,
    {
        let g = move |parts: Vec<Tensor>| -> Result<Vec<Tensor>> { Ok(f(E::unflatten(parts)?)?.flatten()) };
        self.with_as(Stage::Map(Arc::new(g)))
    }

    /// Runs through the input `count` times (`2`, `Repeat::Forever` or `None` = forever).
    /// Each pass reopens the input, so a `shuffle` before `repeat` draws a new order each
    /// pass (as `tf.data`); a `shuffle` after it mixes elements across passes.
    pub fn repeat(&self, count: impl Into<Repeat>) -> Self {
        self.with(Stage::Repeat(count.into()))
    }

    /// The first `n` elements.
    pub fn take(&self, n: usize) -> Self {
        self.with(Stage::Take(n))
    }

    /// All but the first `n` elements.
    pub fn skip(&self, n: usize) -> Self {
        self.with(Stage::Skip(n))
    }

    /// Computes up to `n` elements ahead on a background thread (a bounded channel of `n`),
    /// so the work of the stages before it overlaps the consumer's. Errors arrive in order
    /// as `Err` items; dropping the iterator stops the thread. `n == 0` is an
    /// `InvalidArgument` when iterated.
    #[track_caller]
    pub fn prefetch(&self, n: usize) -> Self {
        let loc = Loc::caller();
        if n == 0 {
            return self.with(Stage::invalid("Dataset::prefetch", "expected a buffer of >= 1 elements, found 0", loc));
        }
        self.with(Stage::Prefetch(n))
    }

    /// The number of elements one iteration yields, when it is known without running the
    /// pipeline (`None` after `repeat(Forever)`; an upper bound is not given).
    pub fn cardinality(&self) -> Option<usize> {
        self.p.cardinality()
    }

    /// Iterates once (one epoch).
    pub fn iter(&self) -> DatasetIter<E> {
        DatasetIter::new(self.p.clone())
    }
}

impl<E: Structure> IntoIterator for &Dataset<E> {
    type Item = Result<E>;
    type IntoIter = DatasetIter<E>;
    fn into_iter(self) -> DatasetIter<E> {
        self.iter()
    }
}

impl<E: Structure> IntoIterator for Dataset<E> {
    type Item = Result<E>;
    type IntoIter = DatasetIter<E>;
    fn into_iter(self) -> DatasetIter<E> {
        self.iter()
    }
}

impl<E> std::fmt::Debug for Dataset<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dataset({})", self.p)
    }
}
