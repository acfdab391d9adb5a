//! The recording half of gradient tapes: the thread's live tapes and the entries
//! `dispatch::apply` (and the few other recording hooks: traced `cond`/`while_loop`, a
//! traced function's call, a variable read) append to them. `autograd` owns the user's
//! `GradientTape` and the backward sweep over these entries.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use smallvec::SmallVec;

use crate::error::{Loc, Result};
use crate::prim::PrimOp;
use crate::runtime::variable::Variable;
use crate::tensor::Tensor;

/// The backward function of a non-primitive tape entry (a traced `cond`, a traced function
/// call): `(inputs, outputs, output gradients, which inputs need one, loc)` -> one gradient
/// per input.
pub(crate) type BackwardFn =
    Rc<dyn Fn(&[Tensor], &[Tensor], &[Option<Tensor>], &[bool], Loc) -> Result<Vec<Option<Tensor>>>>;

/// What a tape entry differentiates.
#[derive(Clone)]
pub(crate) enum EntryOp {
    Prim(PrimOp),
    Custom { backward: BackwardFn },
}

pub(crate) struct Entry {
    pub(crate) op: EntryOp,
    pub(crate) inputs: SmallVec<[Tensor; 3]>,
    pub(crate) outputs: SmallVec<[Tensor; 1]>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) entries: Vec<Entry>,
    /// Handles connected to a watched tensor or variable read (their gradients can be asked).
    pub(crate) tracked: HashSet<usize>,
    /// Clones of watched tensors: keeps their handles (and so their ids) alive.
    pub(crate) held: Vec<Tensor>,
    /// Variables watched explicitly or read while watched automatically.
    pub(crate) watched_vars: HashMap<u64, Variable>,
    /// Per variable, the handles of its reads.
    pub(crate) reads: HashMap<u64, Vec<Tensor>>,
}

pub(crate) struct TapeInner {
    pub(crate) persistent: bool,
    pub(crate) watch_accessed_variables: bool,
    /// The trace the tape was created in (`trace::active_id`, 0 = eager): it records there only.
    pub(crate) context: usize,
    pub(crate) recording: Cell<bool>,
    pub(crate) used: Cell<bool>,
    pub(crate) st: RefCell<State>,
}

thread_local! {
    /// The live tapes of this thread, oldest first.
    pub(crate) static TAPES: RefCell<Vec<Rc<TapeInner>>> = const { RefCell::new(Vec::new()) };
    /// How many of them are recording (the fast check `dispatch::apply` makes).
    static RECORDING: Cell<usize> = const { Cell::new(0) };
}

/// Whether any tape of this thread is recording (one thread-local read).
#[inline]
pub(crate) fn is_recording() -> bool {
    RECORDING.with(Cell::get) > 0
}

pub(crate) fn set_recording(t: &TapeInner, on: bool) {
    if t.recording.replace(on) != on {
        RECORDING.with(|c| c.set(if on { c.get() + 1 } else { c.get().saturating_sub(1) }));
    }
}

/// Records one op (its inputs and outputs) on every recording tape of the current context
/// for which an input is connected. Only float outputs become connected.
fn record(op: impl Fn() -> EntryOp, inputs: &[&Tensor], outputs: &[&Tensor]) {
    let ctx = crate::graph::trace::active_id();
    TAPES.with(|s| {
        for tape in s.borrow().iter() {
            if !tape.recording.get() || tape.context != ctx {
                continue;
            }
            let Ok(mut st) = tape.st.try_borrow_mut() else { continue };
            if !inputs.iter().any(|t| st.tracked.contains(&t.handle_id())) {
                continue;
            }
            let mut any = false;
            for o in outputs {
                // An output that is an input handle (an identity) needs no entry.
                if o.dtype().is_float() && !inputs.iter().any(|i| i.handle_id() == o.handle_id()) {
                    st.tracked.insert(o.handle_id());
                    any = true;
                }
            }
            if any {
                st.entries.push(Entry {
                    op: op(),
                    inputs: inputs.iter().map(|t| (*t).clone()).collect(),
                    outputs: outputs.iter().map(|t| (*t).clone()).collect(),
                });
            }
        }
    });
}

/// `dispatch::apply`'s hook: records a primitive.
pub(crate) fn record_prim(op: &PrimOp, inputs: &[&Tensor], out: &Tensor) {
    record(|| EntryOp::Prim(op.clone()), inputs, &[out]);
}

/// Records a non-primitive op with its own backward function.
pub(crate) fn record_custom(backward: BackwardFn, inputs: &[Tensor], outputs: &[Tensor]) {
    let ins: SmallVec<[&Tensor; 4]> = inputs.iter().collect();
    let outs: SmallVec<[&Tensor; 4]> = outputs.iter().collect();
    record(|| EntryOp::Custom { backward: backward.clone() }, &ins, &outs);
}

/// `Variable::value`'s hook: a read of a watched variable gets its own handle, connected,
/// and remembered as a read of that variable on each tape that watches it.
pub(crate) fn on_read(v: &Variable, t: Tensor) -> Tensor {
    if !v.dtype().is_float() {
        return t;
    }
    let ctx = crate::graph::trace::active_id();
    let mut handle: Option<Tensor> = None;
    TAPES.with(|s| {
        for tape in s.borrow().iter() {
            if !tape.recording.get() || tape.context != ctx {
                continue;
            }
            let Ok(mut st) = tape.st.try_borrow_mut() else { continue };
            let watched = (tape.watch_accessed_variables && v.trainable()) || st.watched_vars.contains_key(&v.id());
            if !watched {
                continue;
            }
            // A symbolic read is already a new handle; an eager one shares the stored tensor.
            let h = handle.get_or_insert_with(|| if t.is_symbolic() { t.clone() } else { t.fresh_handle() }).clone();
            st.tracked.insert(h.handle_id());
            st.watched_vars.entry(v.id()).or_insert_with(|| v.clone());
            st.reads.entry(v.id()).or_default().push(h);
        }
    });
    handle.unwrap_or(t)
}
