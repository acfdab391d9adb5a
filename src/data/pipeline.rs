//! The type-erased pipeline behind `Dataset`: the converted source tensors, the list of
//! stages, and one iterator per stage over `Item`s (a row index of the source, or
//! computed tensors). Opening the pipeline builds the iterators from the source up; a
//! `repeat` reopens what is before it, a `prefetch` opens it on its own thread.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};

use crate::data::{Repeat, Structure};
use crate::error::{Error, Loc, Result};
use crate::random::philox;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The inputs of `from_tensor_slices`, converted once.
pub(crate) struct Source {
    pub(crate) comps: Vec<Tensor>,
    pub(crate) rows: usize,
}

pub(crate) type MapFn = Arc<dyn Fn(Vec<Tensor>) -> Result<Vec<Tensor>> + Send + Sync>;

#[derive(Clone)]
pub(crate) enum Stage {
    Shuffle {
        buffer: usize,
        seed: u64,
        epoch: Arc<AtomicU64>,
    },
    Batch {
        n: usize,
        drop_remainder: bool,
        loc: Loc,
    },
    Map(MapFn),
    Repeat(Repeat),
    Take(usize),
    Skip(usize),
    Prefetch(usize),
    /// A builder argument that was wrong: iterating yields this error.
    Invalid {
        op: &'static str,
        message: &'static str,
        loc: Loc,
    },
}

impl Stage {
    pub(crate) fn invalid(op: &'static str, message: &'static str, loc: Loc) -> Stage {
        Stage::Invalid { op, message, loc }
    }
}

pub(crate) struct Pipeline {
    source: Arc<Source>,
    stages: Vec<Stage>,
}

/// One element in flight: a row of the source not cut out yet, or tensors.
enum Item {
    Row(usize),
    Values(Vec<Tensor>),
}

type Stream = Box<dyn Iterator<Item = Result<Item>> + Send>;

impl Pipeline {
    pub(crate) fn new(source: Source) -> Pipeline {
        Pipeline { source: Arc::new(source), stages: Vec::new() }
    }

    pub(crate) fn push(&self, stage: Stage) -> Pipeline {
        let mut stages = self.stages.clone();
        stages.push(stage);
        Pipeline { source: self.source.clone(), stages }
    }

    pub(crate) fn cardinality(&self) -> Option<usize> {
        let mut n = Some(self.source.rows);
        for s in &self.stages {
            n = match s {
                Stage::Shuffle { .. } | Stage::Map(_) | Stage::Prefetch(_) | Stage::Invalid { .. } => n,
                Stage::Batch { n: b, drop_remainder, .. } => {
                    n.map(|k| if *drop_remainder { k / b } else { k.div_ceil(*b) })
                }
                Stage::Repeat(Repeat::Times(t)) => n.and_then(|k| k.checked_mul(*t)),
                Stage::Repeat(Repeat::Forever) => match n {
                    Some(0) => Some(0),
                    _ => None,
                },
                Stage::Take(t) => Some(n.map_or(*t, |k| k.min(*t))),
                Stage::Skip(t) => n.map(|k| k.saturating_sub(*t)),
            };
        }
        n
    }

    /// The iterator of the first `upto` stages.
    fn open(self: &Arc<Self>, upto: usize) -> Stream {
        if upto == 0 {
            return Box::new((0..self.source.rows).map(|i| Ok(Item::Row(i))));
        }
        let src = self.source.clone();
        match &self.stages[upto - 1] {
            Stage::Shuffle { buffer, seed, epoch } => {
                // Each opening is a new epoch: its order comes from (seed, epoch).
                let e = epoch.fetch_add(1, Ordering::Relaxed);
                let w = philox(e, *seed);
                let key = (w[0] as u64) << 32 | w[1] as u64;
                Box::new(Shuffle {
                    up: self.open(upto - 1),
                    buf: Vec::new(),
                    size: *buffer,
                    key,
                    draws: 0,
                    filled: false,
                })
            }
            Stage::Batch { n, drop_remainder, loc } => {
                Box::new(Batch { up: self.open(upto - 1), n: *n, drop: *drop_remainder, src, loc: *loc, done: false })
            }
            Stage::Map(f) => {
                let f = f.clone();
                Box::new(self.open(upto - 1).map(move |it| f(materialize(&src, it?)?).map(Item::Values)))
            }
            Stage::Repeat(r) => {
                let count = match r {
                    Repeat::Times(t) => Some(*t),
                    Repeat::Forever => None,
                };
                Box::new(RepeatIter { p: self.clone(), upto: upto - 1, count, passes: 0, cur: None, yielded: false })
            }
            Stage::Take(n) => Box::new(self.open(upto - 1).take(*n)),
            Stage::Skip(n) => Box::new(self.open(upto - 1).skip(*n)),
            Stage::Prefetch(n) => {
                let (tx, rx) = sync_channel::<Result<Item>>(*n);
                let p = self.clone();
                let up = upto - 1;
                // The thread owns its own handle on the pipeline; it ends when the input
                // ends or when the receiver is gone (the send fails).
                std::thread::Builder::new()
                    .name("ff-data-prefetch".into())
                    .spawn(move || {
                        for it in p.open(up) {
                            let it = it.and_then(|x| materialize(&p.source, x).map(Item::Values));
                            let stop = it.is_err();
                            if tx.send(it).is_err() || stop {
                                break;
                            }
                        }
                    })
                    .map_or_else(
                        |e| -> Stream {
                            let err = Error::Unsupported {
                                op: "Dataset::prefetch",
                                message: format!("could not start the prefetch thread: {e}"),
                                location: None,
                            };
                            Box::new(std::iter::once(Err(err)))
                        },
                        |_| Box::new(Prefetched { rx }),
                    )
            }
            Stage::Invalid { op, message, loc } => Box::new(std::iter::once(Err(Error::InvalidArgument {
                op,
                message: message.to_string(),
                location: Some(*loc),
            }))),
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "from_tensor_slices([")?;
        for (i, c) in self.source.comps.iter().enumerate() {
            let sep = if i > 0 { ", " } else { "" };
            write!(f, "{sep}{} {}", c.shape(), c.dtype())?;
        }
        write!(f, "])")?;
        for s in &self.stages {
            match s {
                Stage::Shuffle { buffer, seed, .. } => write!(f, ".shuffle({buffer}, seed {seed})")?,
                Stage::Batch { n, drop_remainder: false, .. } => write!(f, ".batch({n})")?,
                Stage::Batch { n, drop_remainder: true, .. } => write!(f, ".batch_drop_remainder({n})")?,
                Stage::Map(_) => write!(f, ".map(..)")?,
                Stage::Repeat(Repeat::Times(t)) => write!(f, ".repeat({t})")?,
                Stage::Repeat(Repeat::Forever) => write!(f, ".repeat(forever)")?,
                Stage::Take(n) => write!(f, ".take({n})")?,
                Stage::Skip(n) => write!(f, ".skip({n})")?,
                Stage::Prefetch(n) => write!(f, ".prefetch({n})")?,
                Stage::Invalid { op, .. } => write!(f, ".<invalid {op}>")?,
            }
        }
        Ok(())
    }
}

/// Row `i` of each source component: a one-row slice, reshaped (no copy) to drop axis 0.
fn row(src: &Source, i: usize, loc: Loc) -> Result<Vec<Tensor>> {
    src.comps
        .iter()
        .map(|c| {
            let mut begin = vec![0usize; c.rank()];
            begin[0] = i;
            let mut size = vec![-1isize; c.rank()];
            size[0] = 1;
            let s = crate::ops::shape::slice_impl(c, &begin, &size, loc)?;
            let dims: Vec<isize> = c.shape()[1..].iter().map(|&d| d as isize).collect();
            crate::ops::shape::reshape_impl(&s, &dims, loc)
        })
        .collect()
}

fn materialize(src: &Source, it: Item) -> Result<Vec<Tensor>> {
    match it {
        Item::Values(v) => Ok(v),
        Item::Row(i) => row(src, i, Loc::caller()),
    }
}

/// Rows `idx` of each source component, with one op per component. Components on a GPU
/// gather there, with the row order sent once per batch and device (an explicit copy of 8
/// bytes per row, so the strict device policy has nothing to refuse).
fn rows(src: &Source, idx: &[usize], loc: Loc) -> Result<Vec<Tensor>> {
    let consecutive = idx.windows(2).all(|w| w[1] == w[0] + 1);
    let mut orders: Vec<Tensor> = Vec::new();
    src.comps
        .iter()
        .map(|c| {
            if consecutive && idx.len() == src.rows {
                return Ok(c.clone()); // every row in order: the converted tensor itself
            }
            if consecutive {
                let mut begin = vec![0usize; c.rank()];
                begin[0] = idx[0];
                let mut size = vec![-1isize; c.rank()];
                size[0] = idx.len() as isize;
                return crate::ops::shape::slice_impl(c, &begin, &size, loc);
            }
            let ix = match orders.iter().find(|o| o.device() == c.device()) {
                Some(o) => o.clone(),
                None => {
                    let ix: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
                    let ix = Tensor::from_vec_unchecked(ix, Shape::new(&[idx.len()]));
                    let ix = ix.to_device(c.device()).map_err(|e| e.at(loc))?;
                    orders.push(ix.clone());
                    ix
                }
            };
            crate::ops::shape::gather_impl(c, &ix, 0, loc)
        })
        .collect()
}

struct Shuffle {
    up: Stream,
    buf: Vec<Item>,
    size: usize,
    key: u64,
    draws: u64,
    filled: bool,
}

impl Iterator for Shuffle {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        if !self.filled {
            self.filled = true;
            while self.buf.len() < self.size {
                match self.up.next() {
                    Some(Ok(x)) => self.buf.push(x),
                    Some(Err(e)) => return Some(Err(e)),
                    None => break,
                }
            }
        }
        if self.buf.is_empty() {
            return None;
        }
        let w = philox(self.draws, self.key);
        self.draws += 1;
        let r = (w[0] as u64) << 32 | w[1] as u64;
        let j = ((r as u128 * self.buf.len() as u128) >> 64) as usize;
        match self.up.next() {
            Some(Ok(x)) => Some(Ok(std::mem::replace(&mut self.buf[j], x))),
            Some(Err(e)) => Some(Err(e)),
            None => Some(Ok(self.buf.swap_remove(j))),
        }
    }
}

struct Batch {
    up: Stream,
    n: usize,
    drop: bool,
    src: Arc<Source>,
    loc: Loc,
    done: bool,
}

impl Iterator for Batch {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        if self.done {
            return None;
        }
        let mut items = Vec::with_capacity(self.n);
        while items.len() < self.n {
            match self.up.next() {
                Some(Ok(x)) => items.push(x),
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        if items.is_empty() || (self.drop && items.len() < self.n) {
            return None;
        }
        Some(self.make(items).map(Item::Values))
    }
}

impl Batch {
    fn make(&self, items: Vec<Item>) -> Result<Vec<Tensor>> {
        let idx: Option<Vec<usize>> = items
            .iter()
            .map(|x| match x {
                Item::Row(i) => Some(*i),
                Item::Values(_) => None,
            })
            .collect();
        if let Some(idx) = idx {
            return rows(&self.src, &idx, self.loc);
        }
        let elems: Vec<Vec<Tensor>> = items.into_iter().map(|x| materialize(&self.src, x)).collect::<Result<_>>()?;
        let k = elems[0].len();
        (0..k)
            .map(|c| {
                let parts: Vec<Tensor> = elems
                    .iter()
                    .map(|e| {
                        e.get(c)
                            .cloned()
                            .ok_or_else(|| Error::invalid("Dataset::batch", "elements of different structure"))
                    })
                    .collect::<Result<_>>()?;
                let first = parts[0].shape().clone();
                if let Some(bad) = parts.iter().find(|p| p.shape() != &first) {
                    return Err(Error::ShapeMismatch {
                        op: "Dataset::batch",
                        expected: format!("elements of one shape {first} (component {c})"),
                        found: format!("shape {}", bad.shape()),
                        fix: Some("make the elements the same shape in map (pad or crop) before batch".into()),
                        location: Some(self.loc),
                    });
                }
                let ex: Vec<Tensor> =
                    parts.iter().map(|p| crate::ops::shape::expand_dims_impl(p, 0, self.loc)).collect::<Result<_>>()?;
                crate::ops::shape::concat_impl(&ex, 0, self.loc)
            })
            .collect()
    }
}

struct RepeatIter {
    p: Arc<Pipeline>,
    upto: usize,
    count: Option<usize>,
    passes: usize,
    cur: Option<Stream>,
    yielded: bool,
}

impl Iterator for RepeatIter {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        loop {
            if self.count.is_some_and(|c| self.passes >= c) {
                return None;
            }
            let cur = self.cur.get_or_insert_with(|| self.p.open(self.upto));
            if let Some(x) = cur.next() {
                self.yielded = true;
                return Some(x);
            }
            self.cur = None;
            self.passes += 1;
            // An empty input repeated forever would spin: it ends instead (as tf.data).
            if !self.yielded && self.count.is_none() {
                return None;
            }
            self.yielded = false;
        }
    }
}

struct Prefetched {
    rx: Receiver<Result<Item>>,
}

impl Iterator for Prefetched {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        self.rx.recv().ok()
    }
}

/// The iterator over a `Dataset<E>`: one epoch, yielding `Result<E>`; it ends after an
/// `Err`.
pub struct DatasetIter<E> {
    src: Arc<Source>,
    stream: Option<Stream>,
    _e: PhantomData<fn() -> E>,
}

impl<E: Structure> DatasetIter<E> {
    pub(crate) fn new(p: Arc<Pipeline>) -> Self {
        let stream = p.open(p.stages.len());
        DatasetIter { src: p.source.clone(), stream: Some(stream), _e: PhantomData }
    }
}

impl<E: Structure> Iterator for DatasetIter<E> {
    type Item = Result<E>;
    fn next(&mut self) -> Option<Result<E>> {
        let it = self.stream.as_mut()?.next()?;
        let out = it.and_then(|x| materialize(&self.src, x)).and_then(E::unflatten);
        if out.is_err() {
            self.stream = None;
        }
        Some(out)
    }
}
