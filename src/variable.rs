//! `Variable`: mutable state around an immutable tensor. Eagerly, reads and assignments
//! happen at once; inside a traced function they become graph nodes that read and assign
//! on every call, in program order. The type, its state and its in-place updates are
//! `runtime::variable`'s (graph steps use them); this file is the user's side: creation,
//! reads and assignments, eager or traced.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use smallvec::smallvec;

use crate::error::{Error, Loc, Result};
use crate::graph::ir::NodeOp;
use crate::graph::trace::active;
use crate::interop::ndarray::IntoTensor;
pub use crate::runtime::variable::Variable;
use crate::runtime::variable::{AssignKind, Inner, NEXT_ID};
use crate::tensor::Tensor;

impl Variable {
    /// A trainable variable holding `initial` (a concrete value). Inside a traced function
    /// this is only allowed on the function's first trace (`VariableCreatedOnNonFirstCall`
    /// otherwise): create variables once, outside the function or on its first call.
    #[track_caller]
    pub fn new(initial: impl IntoTensor) -> Result<Variable> {
        Variable::create(initial, true, Loc::caller())
    }

    /// A variable that gradient tapes do not watch automatically.
    #[track_caller]
    pub fn non_trainable(initial: impl IntoTensor) -> Result<Variable> {
        Variable::create(initial, false, Loc::caller())
    }

    fn create(initial: impl IntoTensor, trainable: bool, loc: Loc) -> Result<Variable> {
        if let Some(t) = active()
            && !t.first_trace
        {
            return Err(Error::VariableCreatedOnNonFirstCall {
                function: "traced function".into(),
                location: Some(loc),
            });
        }
        let t = initial.into_tensor().map_err(|e| e.at(loc))?.strong();
        if t.is_symbolic() {
            return Err(Error::InvalidArgument {
                op: "Variable::new",
                message: format!(
                    "the initial value must be concrete, found symbolic tensor {}: create the variable outside the function, or from a concrete value",
                    t.symbol().map(|s| s.name.clone()).unwrap_or_default()
                ),
                location: Some(loc),
            });
        }
        Ok(Variable(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape: t.shape().clone(),
            dtype: t.dtype(),
            value: RwLock::new(t),
            trainable,
        })))
    }

    /// The current value; inside a traced function, a node reading it on every call.
    #[track_caller]
    pub fn value(&self) -> Tensor {
        let t = match active() {
            Some(t) => t.add_node(
                NodeOp::ReadVariable(self.clone()),
                smallvec![],
                self.0.shape.clone(),
                self.0.dtype,
                Some(Loc::caller()),
            ),
            None => self.current(),
        };
        // A read while a gradient tape records: the tape may watch it (trainable variables
        // are watched automatically), which gives the read its own handle.
        if crate::dispatch::tape::is_recording() { crate::dispatch::tape::on_read(self, t) } else { t }
    }

    /// Replaces the value. Errors: `ShapeMismatch` or `DTypeMismatch` naming both.
    #[track_caller]
    pub fn assign(&self, value: impl IntoTensor) -> Result<()> {
        self.assign_kind(value, AssignKind::Set, Loc::caller())
    }
    /// Adds to the value (`v += x`).
    #[track_caller]
    pub fn assign_add(&self, value: impl IntoTensor) -> Result<()> {
        self.assign_kind(value, AssignKind::Add, Loc::caller())
    }
    /// Subtracts from the value (`v -= x`).
    #[track_caller]
    pub fn assign_sub(&self, value: impl IntoTensor) -> Result<()> {
        self.assign_kind(value, AssignKind::Sub, Loc::caller())
    }

    fn assign_kind(&self, value: impl IntoTensor, kind: AssignKind, loc: Loc) -> Result<()> {
        let op = match kind {
            AssignKind::Set => "assign",
            AssignKind::Add => "assign_add",
            AssignKind::Sub => "assign_sub",
        };
        let mut x = value.into_tensor().map_err(|e| e.at(loc))?;
        // A host scalar takes the variable's dtype (weak typing), a tensor must match.
        if x.is_weak() {
            // The same rule as eager ops: `1.5` cannot take an integer variable's dtype.
            let d = crate::prim::promote::weak_dtype(op, x.dtype(), self.0.dtype).map_err(|e| e.at(loc))?;
            if d != self.0.dtype {
                return Err(Error::DTypeMismatch {
                    op,
                    expected: format!("a value of the variable's dtype {}", self.0.dtype),
                    found: format!("a {} host scalar", x.dtype()),
                    fix: Some("pass a scalar the variable's dtype can hold".into()),
                    location: Some(loc),
                });
            }
            x = crate::ops::math::cast_to(&x, self.0.dtype, loc)
                .and_then(|s| crate::ops::shape::reshape_impl(&s, &[], loc))?;
            if self.0.shape.rank() > 0 {
                let dims: Vec<usize> = self.0.shape.to_vec();
                x = x.broadcast_to(&dims)?;
            }
        }
        if x.dtype() != self.0.dtype {
            return Err(Error::DTypeMismatch {
                op,
                expected: format!("a value of the variable's dtype {}", self.0.dtype),
                found: x.dtype().to_string(),
                fix: Some(format!("cast the value first: x.cast(DType::{:?})", self.0.dtype)),
                location: Some(loc),
            });
        }
        let fits = x.rank() == self.0.shape.rank()
            && x.shape().iter().zip(self.0.shape.iter()).all(|(a, b)| a == b || *a == crate::shape::UNKNOWN);
        if !fits {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("a value of the variable's shape {}", self.0.shape),
                found: format!("shape {}", x.shape()),
                fix: None,
                location: Some(loc),
            });
        }
        if let Some(t) = active() {
            let id = t.node_of(&x, op).map_err(|e| e.at(loc))?;
            t.add_node(
                NodeOp::AssignVariable(self.clone(), kind),
                smallvec![id],
                self.0.shape.clone(),
                self.0.dtype,
                Some(loc),
            );
            return Ok(());
        }
        self.apply(&x, kind).map_err(|e| e.at(loc))
    }
}
