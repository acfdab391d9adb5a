//! `Variable`'s state: a shared cell around an immutable tensor, with a fixed shape and
//! dtype, and the updates a graph step or an eager assignment makes to it (in place when
//! nothing else holds the buffer). Creation, reads and assignments as the user writes
//! them (eager or traced) are in `crate::variable`.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use crate::dtype::DType;
use crate::error::Result;
use crate::prim::{BinaryOp, PrimOp};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// How an assignment combines the new value with the old one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum AssignKind {
    Set,
    Add,
    Sub,
}

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) value: RwLock<Tensor>,
    pub(crate) shape: Shape,
    pub(crate) dtype: DType,
    pub(crate) trainable: bool,
}

/// A mutable tensor-valued cell, shared by its clones (as `tf.Variable`).
#[derive(Clone)]
pub struct Variable(pub(crate) Arc<Inner>);

pub(crate) static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Variable {
    /// The variable's shape (fixed at creation).
    pub fn shape(&self) -> &Shape {
        &self.0.shape
    }
    /// The variable's dtype (fixed at creation).
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    /// Whether gradient tapes watch it automatically.
    pub fn trainable(&self) -> bool {
        self.0.trainable
    }
    /// A process-unique id (graph text shows it as `var3`).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The stored value (never symbolic).
    pub(crate) fn current(&self) -> Tensor {
        self.0.value.read().map(|v| v.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Combines and stores a concrete value (eagerly, and when a graph's assign node runs).
    pub(crate) fn apply(&self, x: &Tensor, kind: AssignKind) -> Result<()> {
        let op = match kind {
            AssignKind::Set => {
                *self.0.value.write().unwrap_or_else(|p| p.into_inner()) = x.clone();
                return Ok(());
            }
            AssignKind::Add => BinaryOp::Add,
            AssignKind::Sub => BinaryOp::Sub,
        };
        let mut v = self.0.value.write().unwrap_or_else(|p| p.into_inner());
        // When the variable holds the only handle to its buffer (no earlier read is still
        // alive), the update is written over it, as TensorFlow's ResourceApply* kernels do:
        // a training step's update then allocates nothing. Otherwise a new tensor.
        let cur = std::mem::replace(&mut *v, Tensor::scalar(false));
        let cur = match crate::backend::host::binary_inplace(op, cur, x, false) {
            Ok(updated) => {
                *v = updated;
                return Ok(());
            }
            Err(cur) => cur,
        };
        let new = crate::runtime::placement::execute(&PrimOp::Binary(op), &[&cur, x]);
        *v = cur;
        *v = new?;
        Ok(())
    }

    /// `v += beta · op(a) · op(b)`: a training step's update with the gradient's matmul
    /// accumulated straight into the variable's buffer when nothing else holds it (one
    /// pass, no gradient tensor); otherwise the product is computed and added as usual.
    pub(crate) fn apply_matmul(&self, a: &Tensor, b: &Tensor, ta: bool, tb: bool, beta: f64) -> Result<()> {
        {
            let mut v = self.0.value.write().unwrap_or_else(|p| p.into_inner());
            let mut cur = std::mem::replace(&mut *v, Tensor::scalar(false));
            let done = match cur.host_buffer_mut() {
                Some(buf) => crate::backend::host::matmul_accumulate(buf, a, b, ta, tb, beta),
                None => Ok(false),
            };
            *v = cur;
            if done? {
                return Ok(());
            }
        }
        let p = crate::runtime::placement::execute(&PrimOp::MatMul { transpose_a: ta, transpose_b: tb }, &[a, b])?;
        let k = crate::with_dtype!(p.dtype(), T => Tensor::scalar(<T as crate::dtype::Element>::from_f64(beta)));
        let p = crate::runtime::placement::execute(&PrimOp::Binary(BinaryOp::Mul), &[&p, &k])?;
        self.apply(&p, AssignKind::Add)
    }
}

impl std::fmt::Debug for Variable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Variable(var{}, value={})", self.0.id, self.current())
    }
}
