//! `GradientTape`: records the primitives that run while it is alive (eager or traced, at the
//! one seam `dispatch::apply`), then walks them backwards applying each primitive's rule from
//! `rules.rs`. Tapes live on a per-thread stack; a tape records only ops connected to what it
//! watches, and only in the trace (or eager context) it was created in.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use smallvec::SmallVec;

use super::rules;
use crate::dispatch::tape::{EntryOp, State, TAPES, TapeInner, set_recording};
use crate::error::{Error, Loc, Result};
use crate::tensor::Tensor;
use crate::variable::Variable;

/// What `gradient` returns for a source the target does not depend on
/// (`tf.UnconnectedGradients`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum UnconnectedGradients {
    /// `None` (the default, as in TensorFlow).
    #[default]
    None,
    /// A tensor of zeros of the source's shape and dtype.
    Zero,
}

/// Options of [`GradientTape::gradient_with`].
#[derive(Clone, Debug, Default)]
pub struct GradientOptions {
    /// What an unconnected source gets.
    pub unconnected: UnconnectedGradients,
    /// The gradient flowing into each target (one per target, its shape and dtype); `None`
    /// means ones, so a non-scalar target is differentiated as the sum of its elements.
    pub output_gradients: Option<Vec<Tensor>>,
}

/// Options of [`GradientTape::with_options`].
#[derive(Clone, Copy, Debug)]
pub struct TapeOptions {
    /// Whether `gradient` may be called more than once.
    pub persistent: bool,
    /// Whether trainable variables read while the tape records are watched automatically.
    pub watch_accessed_variables: bool,
}

impl Default for TapeOptions {
    fn default() -> Self {
        TapeOptions { persistent: false, watch_accessed_variables: true }
    }
}

/// What a gradient source is: a tensor (by handle) or a variable (all its reads).
#[derive(Clone, Copy)]
pub enum GradSourceRef<'a> {
    /// A tensor: its gradient is the one flowing into this handle.
    Tensor(&'a Tensor),
    /// A variable: the sum of the gradients of every read of it the tape saw.
    Variable(&'a Variable),
}

/// Anything `watch` and `gradient` accept as a source: `Tensor`, `Variable`, references to
/// them and `dyn GradSource` (for mixed lists: `&[&w as &dyn GradSource, &x]`).
pub trait GradSource {
    /// The tensor or variable this source stands for.
    fn grad_source(&self) -> GradSourceRef<'_>;
}

impl GradSource for Tensor {
    fn grad_source(&self) -> GradSourceRef<'_> {
        GradSourceRef::Tensor(self)
    }
}
impl GradSource for Variable {
    fn grad_source(&self) -> GradSourceRef<'_> {
        GradSourceRef::Variable(self)
    }
}
impl<T: GradSource + ?Sized> GradSource for &T {
    fn grad_source(&self) -> GradSourceRef<'_> {
        (**self).grad_source()
    }
}

/// Records operations for automatic differentiation, as `tf.GradientTape`.
///
/// A tape records from [`GradientTape::new`] until it is dropped. It records an op when one
/// of its inputs is connected to something the tape watches: a tensor passed to
/// [`watch`](GradientTape::watch), or a read of a trainable [`Variable`] (watched
/// automatically). [`gradient`](GradientTape::gradient) then walks the recorded ops backwards.
///
/// A tape records in the context it was created in: eagerly, or inside the traced function
/// whose body created it (then `gradient` adds the backward ops to the same graph). Calling a
/// traced function under an eager tape records the call as one op. Tapes nest: an outer tape
/// records the ops an inner tape's `gradient` runs, which gives second derivatives.
/// A tape is tied to its thread (`!Send`).
///
/// ```
/// use ferroflow as ff;
/// # fn main() -> ff::Result<()> {
/// let w = ff::Variable::new(ff::Tensor::from_slice(&[2.0f32], &[1])?)?;
/// let x = ff::Tensor::from_slice(&[3.0f32], &[1])?;
/// let tape = ff::GradientTape::new();
/// let y = (&w.value() * &x)?.square()?; // (w x)^2
/// let g = tape.gradient(&y, &[&w])?;    // 2 (w x) x = 36
/// assert_eq!(g[0].as_ref().unwrap().to_ndarray::<f32>()?.into_raw_vec_and_offset().0, vec![36.0]);
/// # Ok(()) }
/// ```
pub struct GradientTape {
    inner: Rc<TapeInner>,
}

impl Default for GradientTape {
    fn default() -> Self {
        GradientTape::new()
    }
}

impl GradientTape {
    /// A tape that allows one `gradient` call.
    pub fn new() -> GradientTape {
        GradientTape::with_options(TapeOptions::default())
    }

    /// A tape that allows any number of `gradient` calls (it keeps what it recorded until it
    /// is dropped).
    pub fn persistent() -> GradientTape {
        GradientTape::with_options(TapeOptions { persistent: true, ..TapeOptions::default() })
    }

    /// A tape with explicit options (`watch_accessed_variables: false` watches only what
    /// `watch` is given).
    pub fn with_options(options: TapeOptions) -> GradientTape {
        let inner = Rc::new(TapeInner {
            persistent: options.persistent,
            watch_accessed_variables: options.watch_accessed_variables,
            context: crate::graph::trace::active_id(),
            recording: Cell::new(false),
            used: Cell::new(false),
            st: RefCell::new(State::default()),
        });
        TAPES.with(|s| s.borrow_mut().push(inner.clone()));
        set_recording(&inner, true);
        GradientTape { inner }
    }

    /// Whether `gradient` may be called more than once.
    pub fn is_persistent(&self) -> bool {
        self.inner.persistent
    }

    /// Watches a tensor (ops on it are recorded from now on) or a variable (its reads from
    /// now on are). A tensor that is not a float cannot have a gradient: it is not watched,
    /// and a warning is logged.
    pub fn watch<S: GradSource + ?Sized>(&self, x: &S) {
        let Ok(mut st) = self.inner.st.try_borrow_mut() else { return };
        match x.grad_source() {
            GradSourceRef::Tensor(t) => {
                if !t.dtype().is_float() {
                    warn_dtype(t.dtype());
                    return;
                }
                st.tracked.insert(t.handle_id());
                st.held.push(t.clone());
            }
            GradSourceRef::Variable(v) => {
                if !v.dtype().is_float() {
                    warn_dtype(v.dtype());
                    return;
                }
                st.watched_vars.insert(v.id(), v.clone());
            }
        }
    }

    /// The variables this tape watches (explicitly, or because a trainable one was read),
    /// in no particular order.
    pub fn watched_variables(&self) -> Vec<Variable> {
        self.inner.st.try_borrow().map(|st| st.watched_vars.values().cloned().collect()).unwrap_or_default()
    }

    /// Runs `f` without recording on this tape (`tape.stop_recording()` in TensorFlow).
    pub fn stop_recording<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a TapeInner, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                set_recording(self.0, self.1);
            }
        }
        let _restore = Restore(&self.inner, self.inner.recording.get());
        set_recording(&self.inner, false);
        f()
    }

    /// The gradient of `target` with respect to each source (`None` where it does not depend
    /// on the source). A non-scalar target is differentiated as the sum of its elements.
    /// Errors: `TapeExhausted` on a second call to a non-persistent tape; `NoGradient` when
    /// the gradient must flow through an op that has none.
    #[track_caller]
    pub fn gradient<S: GradSource>(&self, target: &Tensor, sources: &[S]) -> Result<Vec<Option<Tensor>>> {
        self.gradient_impl(&[target], sources, &GradientOptions::default(), Loc::caller())
    }

    /// `gradient` of the sum of several targets, with options: what unconnected sources
    /// get, and the gradients flowing into the targets (`output_gradients`, e.g. for a
    /// vector-Jacobian product). Errors as [`gradient`](GradientTape::gradient), plus
    /// `InvalidArgument` / `ShapeMismatch` / `DTypeMismatch` for output gradients that do not
    /// fit their targets.
    #[track_caller]
    pub fn gradient_with<S: GradSource>(
        &self,
        targets: &[&Tensor],
        sources: &[S],
        options: &GradientOptions,
    ) -> Result<Vec<Option<Tensor>>> {
        self.gradient_impl(targets, sources, options, Loc::caller())
    }

    pub(crate) fn gradient_impl<S: GradSource>(
        &self,
        targets: &[&Tensor],
        sources: &[S],
        options: &GradientOptions,
        loc: Loc,
    ) -> Result<Vec<Option<Tensor>>> {
        let t = &self.inner;
        if t.used.get() && !t.persistent {
            return Err(Error::TapeExhausted { location: Some(loc) });
        }
        t.used.set(true);
        // This tape does not record its own backward pass; outer tapes do (second order).
        let was = t.recording.get();
        set_recording(t, false);
        let out = self.backward(targets, sources, options, loc);
        if t.persistent {
            set_recording(t, was);
        } else if let Ok(mut st) = t.st.try_borrow_mut() {
            // One set of gradients: what was recorded is released now.
            *st = State::default();
        }
        out
    }

    fn backward<S: GradSource>(
        &self,
        targets: &[&Tensor],
        sources: &[S],
        options: &GradientOptions,
        loc: Loc,
    ) -> Result<Vec<Option<Tensor>>> {
        let st = self.inner.st.try_borrow().map_err(|_| {
            Error::invalid("gradient", "the tape is busy (gradient called from inside its own gradient computation)")
        })?;
        // The handles each source stands for.
        let src_ids: Vec<SmallVec<[usize; 2]>> = sources
            .iter()
            .map(|s| match s.grad_source() {
                GradSourceRef::Tensor(x) => {
                    if !x.dtype().is_float() {
                        warn_dtype(x.dtype());
                        return SmallVec::new();
                    }
                    // A tensor the tape never connected (not watched, not computed from a
                    // watched one) has no gradient, even if recorded ops read it.
                    if st.tracked.contains(&x.handle_id()) {
                        smallvec::smallvec![x.handle_id()]
                    } else {
                        SmallVec::new()
                    }
                }
                GradSourceRef::Variable(v) => {
                    if !v.dtype().is_float() {
                        warn_dtype(v.dtype());
                        return SmallVec::new();
                    }
                    st.reads.get(&v.id()).map(|r| r.iter().map(Tensor::handle_id).collect()).unwrap_or_default()
                }
            })
            .collect();
        let out_grads = self.check_output_gradients(targets, options, loc)?;

        // Forward sweep: which handles depend on a source. Only those get gradients.
        let mut needed: HashSet<usize> = src_ids.iter().flatten().copied().collect();
        let keep = needed.clone();
        let mut entry_needed = vec![false; st.entries.len()];
        for (i, e) in st.entries.iter().enumerate() {
            if e.inputs.iter().any(|x| needed.contains(&x.handle_id())) {
                entry_needed[i] = true;
                for o in &e.outputs {
                    needed.insert(o.handle_id());
                }
            }
        }

        // Seeds: ones (the gradient of the sum) or the given output gradients.
        let mut grads: HashMap<usize, Tensor> = HashMap::new();
        for (k, target) in targets.iter().enumerate() {
            if !target.dtype().is_float() || !needed.contains(&target.handle_id()) {
                continue;
            }
            let seed = match &out_grads {
                Some(g) => g[k].clone(),
                None => rules::ones_like(target, loc)?,
            };
            accumulate(&mut grads, target.handle_id(), seed, loc)?;
        }

        // Backward sweep, newest entry first.
        for (i, e) in st.entries.iter().enumerate().rev() {
            if !entry_needed[i] {
                continue;
            }
            let dys: SmallVec<[Option<Tensor>; 1]> =
                e.outputs.iter().map(|o| grads.get(&o.handle_id()).cloned()).collect();
            if dys.iter().all(Option::is_none) {
                continue;
            }
            let need: SmallVec<[bool; 3]> = e.inputs.iter().map(|x| needed.contains(&x.handle_id())).collect();
            let gs: SmallVec<[Option<Tensor>; 3]> = match &e.op {
                EntryOp::Prim(op) => match &dys[0] {
                    Some(dy) => rules::vjp(op, &e.inputs, &e.outputs[0], dy, &need, loc).map_err(|e| e.at(loc))?,
                    None => continue,
                },
                EntryOp::Custom { backward } => {
                    backward(&e.inputs, &e.outputs, &dys, &need, loc).map_err(|e| e.at(loc))?.into()
                }
            };
            for o in &e.outputs {
                if !keep.contains(&o.handle_id()) {
                    grads.remove(&o.handle_id());
                }
            }
            for ((x, g), n) in e.inputs.iter().zip(gs).zip(&need) {
                if let (Some(g), true) = (g, n) {
                    check_rule_output(&e.op, x, &g)?;
                    accumulate(&mut grads, x.handle_id(), g, loc)?;
                }
            }
        }

        // One result per source: a variable sums the gradients of its reads.
        sources
            .iter()
            .zip(&src_ids)
            .map(|(s, ids)| {
                let mut acc: Option<Tensor> = None;
                for id in ids {
                    if let Some(g) = grads.get(id) {
                        acc = Some(match acc {
                            None => g.clone(),
                            Some(a) => crate::ops::math::binary(crate::prim::BinaryOp::Add, &a, g, loc)?,
                        });
                    }
                }
                match (acc, options.unconnected) {
                    (Some(g), _) => Ok(Some(g)),
                    (None, UnconnectedGradients::None) => Ok(None),
                    (None, UnconnectedGradients::Zero) => match s.grad_source() {
                        GradSourceRef::Tensor(x) => rules::zeros_like(x, loc).map(Some),
                        GradSourceRef::Variable(v) => rules::zeros_like(&v.current(), loc).map(Some),
                    },
                }
            })
            .collect()
    }

    fn check_output_gradients(
        &self,
        targets: &[&Tensor],
        options: &GradientOptions,
        loc: Loc,
    ) -> Result<Option<Vec<Tensor>>> {
        let Some(given) = &options.output_gradients else { return Ok(None) };
        if given.len() != targets.len() {
            return Err(Error::InvalidArgument {
                op: "gradient",
                message: format!("expected one output gradient per target ({}), found {}", targets.len(), given.len()),
                location: Some(loc),
            });
        }
        for (k, (g, t)) in given.iter().zip(targets).enumerate() {
            let fits = g.rank() == t.rank()
                && g.shape()
                    .iter()
                    .zip(t.shape().iter())
                    .all(|(a, b)| a == b || *a == crate::shape::UNKNOWN || *b == crate::shape::UNKNOWN);
            if !fits {
                return Err(Error::ShapeMismatch {
                    op: "gradient",
                    expected: format!("output gradient {k} of its target's shape {}", t.shape()),
                    found: format!("shape {}", g.shape()),
                    fix: None,
                    location: Some(loc),
                });
            }
            if g.dtype() != t.dtype() {
                return Err(Error::DTypeMismatch {
                    op: "gradient",
                    expected: format!("output gradient {k} of its target's dtype {}", t.dtype()),
                    found: g.dtype().to_string(),
                    fix: Some(format!("cast it first: g.cast(DType::{:?})", t.dtype())),
                    location: Some(loc),
                });
            }
        }
        Ok(Some(given.clone()))
    }
}

impl Drop for GradientTape {
    fn drop(&mut self) {
        set_recording(&self.inner, false);
        let me = &self.inner;
        let _ = TAPES.try_with(|s| s.borrow_mut().retain(|t| !Rc::ptr_eq(t, me)));
    }
}

impl std::fmt::Debug for GradientTape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.inner.st.try_borrow().map(|s| s.entries.len()).unwrap_or(0);
        write!(
            f,
            "GradientTape(persistent={}, recording={}, ops={n})",
            self.inner.persistent,
            self.inner.recording.get()
        )
    }
}

fn warn_dtype(d: crate::DType) {
    log::warn!(
        "the dtype of the watched tensor must be floating (e.g. f32), got {d}: its gradient is None; cast it to a float dtype to differentiate with respect to it"
    );
}

fn accumulate(grads: &mut HashMap<usize, Tensor>, id: usize, g: Tensor, loc: Loc) -> Result<()> {
    match grads.remove(&id) {
        None => {
            grads.insert(id, g);
        }
        Some(prev) => {
            let sum = crate::ops::math::binary(crate::prim::BinaryOp::Add, &prev, &g, loc)?;
            grads.insert(id, sum);
        }
    }
    Ok(())
}

/// A rule must return a gradient of its input's dtype and shape: anything else is a bug in
/// the rule, reported instead of silently broadcasting.
fn check_rule_output(op: &EntryOp, x: &Tensor, g: &Tensor) -> Result<()> {
    let same_shape = g.rank() == x.rank()
        && g.shape()
            .iter()
            .zip(x.shape().iter())
            .all(|(a, b)| a == b || *a == crate::shape::UNKNOWN || *b == crate::shape::UNKNOWN);
    if same_shape && g.dtype() == x.dtype() {
        return Ok(());
    }
    let name = match op {
        EntryOp::Prim(p) => p.name(),
        EntryOp::Custom { .. } => "custom",
    };
    Err(Error::invalid(
        "gradient",
        format!(
            "internal error: the gradient rule of {name} returned {}{} for an input of {}{}; please report it",
            g.dtype(),
            g.shape(),
            x.dtype(),
            x.shape()
        ),
    ))
}
