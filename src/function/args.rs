//! How a traced function's arguments and outputs cross the boundary: each closure parameter
//! is a `&Tensor` (traced by dtype and shape), a `&SparseTensor` (its indices and values
//! traced like two tensors, its dense shape part of the key by value) or a host value (part
//! of the cache key by value, like a Python argument of `tf.function`); outputs are a
//! `Tensor`, a `SparseTensor`, a tuple of them or a `Vec` of tensors.
//!
//! `Body` is implemented for closures of 1 to 6 parameters with bevy's marker trick: the
//! bound `Fn(P0, P1)` lets the compiler infer each parameter's kind, and the second bound
//! `for<'a> Fn(P0::Item<'a>, ...)` lets us call the closure with borrowed tensors.

use std::any::Any;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};

use crate::error::{Error, Result};
use crate::sparse::SparseTensor;
use crate::tensor::Tensor;

/// A host argument: hashable, comparable and cloneable, so it can key the trace cache.
pub trait HostValue: Any + Send + Sync + Debug {
    #[doc(hidden)]
    fn dyn_eq(&self, other: &dyn HostValue) -> bool;
    #[doc(hidden)]
    fn dyn_hash(&self, h: &mut dyn Hasher);
    #[doc(hidden)]
    fn clone_box(&self) -> Box<dyn HostValue>;
    #[doc(hidden)]
    fn as_any(&self) -> &dyn Any;
    /// The Rust type's name, for messages.
    #[doc(hidden)]
    fn type_name(&self) -> &'static str;
}

impl<T: Hash + Eq + Clone + Send + Sync + Debug + 'static> HostValue for T {
    fn dyn_eq(&self, other: &dyn HostValue) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
    fn dyn_hash(&self, mut h: &mut dyn Hasher) {
        std::any::TypeId::of::<T>().hash(&mut h);
        self.hash(&mut h);
    }
    fn clone_box(&self) -> Box<dyn HostValue> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

/// One argument of a call, borrowed.
#[derive(Clone, Copy)]
pub enum ArgRef<'a> {
    /// A tensor argument.
    Tensor(&'a Tensor),
    /// A host argument.
    Host(&'a dyn HostValue),
    /// A tensor argument given only by its spec (`get_concrete_function`).
    Spec(&'a super::TensorSpec),
    /// A sparse tensor argument: its indices and values are two graph inputs.
    Sparse(&'a SparseTensor),
}

impl<'a> ArgRef<'a> {
    /// The tensors this argument hands to a graph: itself, a sparse tensor's indices and
    /// values, or none (a host value or a spec).
    pub(crate) fn tensors(&self) -> smallvec::SmallVec<[&'a Tensor; 2]> {
        match *self {
            ArgRef::Tensor(t) => smallvec::smallvec![t],
            ArgRef::Sparse(s) => smallvec::smallvec![s.indices(), s.values()],
            ArgRef::Host(_) | ArgRef::Spec(_) => smallvec::SmallVec::new(),
        }
    }
}

/// A closure parameter type: `&Tensor` or a host value.
pub trait Param: 'static {
    /// The type the closure receives, for any borrow.
    type Item<'a>;
    /// Whether this parameter is a tensor.
    const IS_TENSOR: bool;
    #[doc(hidden)]
    fn extract<'a>(a: &ArgRef<'a>) -> Option<Self::Item<'a>>;
    /// The parameter's type, for messages.
    #[doc(hidden)]
    fn name() -> &'static str {
        std::any::type_name::<Self>()
    }
}

impl Param for &'static Tensor {
    type Item<'a> = &'a Tensor;
    const IS_TENSOR: bool = true;
    fn extract<'a>(a: &ArgRef<'a>) -> Option<&'a Tensor> {
        match a {
            ArgRef::Tensor(t) => Some(t),
            ArgRef::Host(_) | ArgRef::Spec(_) | ArgRef::Sparse(_) => None,
        }
    }
}

impl<H: Hash + Eq + Clone + Send + Sync + Debug + 'static> Param for H {
    type Item<'a> = H;
    const IS_TENSOR: bool = false;
    fn extract(a: &ArgRef<'_>) -> Option<H> {
        match a {
            ArgRef::Host(h) => h.as_any().downcast_ref::<H>().cloned(),
            ArgRef::Tensor(_) | ArgRef::Spec(_) | ArgRef::Sparse(_) => None,
        }
    }
}

/// The outputs of a traced function: a `Tensor`, a `SparseTensor`, a tuple of them or a
/// `Vec` of tensors.
pub trait Outputs: Sized + 'static {
    #[doc(hidden)]
    fn flatten(self) -> Vec<Tensor>;
    #[doc(hidden)]
    fn unflatten(v: Vec<Tensor>) -> Result<Self>;
}

/// An output that is a fixed number of tensors, so it can sit in a tuple: a `Tensor` (one)
/// or a `SparseTensor` (its indices, values and dense shape).
pub trait OutputPart: Outputs {
    /// How many tensors it flattens to.
    #[doc(hidden)]
    const WIDTH: usize;
}

impl OutputPart for Tensor {
    const WIDTH: usize = 1;
}

fn arity_error(want: usize, got: usize) -> Error {
    Error::invalid("function", format!("the graph returned {got} outputs, the function's output type holds {want}"))
}

impl Outputs for Tensor {
    fn flatten(self) -> Vec<Tensor> {
        vec![self]
    }
    fn unflatten(v: Vec<Tensor>) -> Result<Self> {
        let n = v.len();
        let mut it = v.into_iter();
        match (it.next(), n) {
            (Some(t), 1) => Ok(t),
            _ => Err(arity_error(1, n)),
        }
    }
}

impl Outputs for Vec<Tensor> {
    fn flatten(self) -> Vec<Tensor> {
        self
    }
    fn unflatten(v: Vec<Tensor>) -> Result<Self> {
        Ok(v)
    }
}

macro_rules! tuple_outputs {
    ($($v:ident: $T:ident),*) => {
        impl<$($T: OutputPart),*> Outputs for ($($T,)*) {
            fn flatten(self) -> Vec<Tensor> {
                let ($($v,)*) = self;
                let mut out = Vec::with_capacity(0 $(+ $T::WIDTH)*);
                $(out.extend($v.flatten());)*
                out
            }
            fn unflatten(v: Vec<Tensor>) -> Result<Self> {
                let (want, n) = (0 $(+ $T::WIDTH)*, v.len());
                if n != want {
                    return Err(arity_error(want, n));
                }
                let mut it = v.into_iter();
                $(let $v = $T::unflatten(it.by_ref().take($T::WIDTH).collect())?;)*
                Ok(($($v,)*))
            }
        }
    };
}
tuple_outputs!(a: A, b: B);
tuple_outputs!(a: A, b: B, c: C);
tuple_outputs!(a: A, b: B, c: C, d: D);

/// A closure that can be traced: 1 to 6 parameters, each a `&Tensor`, a `&SparseTensor` or
/// a host value.
#[diagnostic::on_unimplemented(
    message = "this closure cannot be traced by ff::function",
    note = "a traced closure takes 1 to 6 parameters, each `&Tensor`, `&SparseTensor` or a host value that is `Hash + Eq + Clone + Send + Sync + Debug + 'static` (f32/f64 are not Hash: pass numbers that change as tensors), and returns `ff::Result<T>` with T a Tensor, a SparseTensor, a tuple of up to 4 of them or a Vec<Tensor>"
)]
pub trait Body<M>: Send + Sync + 'static {
    /// What the closure returns inside `Result`.
    type Output: Outputs;
    /// Per parameter, whether it is a tensor.
    const KINDS: &'static [bool];
    #[doc(hidden)]
    fn invoke(&self, args: &[ArgRef<'_>]) -> Result<Self::Output>;
}

macro_rules! body_impl {
    ($($P:ident),*) => {
        impl<F, R, $($P: Param),*> Body<fn($($P,)*) -> R> for F
        where
            F: Fn($($P),*) -> Result<R> + for<'a> Fn($($P::Item<'a>),*) -> Result<R> + Send + Sync + 'static,
            R: Outputs,
        {
            type Output = R;
            const KINDS: &'static [bool] = &[$($P::IS_TENSOR),*];
            #[allow(non_snake_case)]
            fn invoke(&self, args: &[ArgRef<'_>]) -> Result<R> {
                let mut it = args.iter();
                let mut index = 0;
                $(
                    let a = it.next();
                    let $P = a.and_then(|a| $P::extract(a)).ok_or_else(|| Error::SignatureMismatch {
                        function: "function".into(),
                        index,
                        expected: format!("an argument of type {}", $P::name()),
                        found: match a {
                            Some(ArgRef::Host(h)) => format!("a {}", h.type_name()),
                            Some(ArgRef::Tensor(_)) | Some(ArgRef::Spec(_)) => "a tensor".into(),
                            Some(ArgRef::Sparse(_)) => "a sparse tensor".into(),
                            None => "no argument".into(),
                        },
                    })?;
                    index += 1;
                )*
                let _ = index;
                (self)($($P),*)
            }
        }
    };
}
body_impl!(P0);
body_impl!(P0, P1);
body_impl!(P0, P1, P2);
body_impl!(P0, P1, P2, P3);
body_impl!(P0, P1, P2, P3, P4);
body_impl!(P0, P1, P2, P3, P4, P5);

/// One argument as passed to `call`: a tensor (`&Tensor` or `Tensor`) or a host value.
pub trait CallArg {
    #[doc(hidden)]
    fn arg_ref(&self) -> ArgRef<'_>;
}
impl CallArg for &Tensor {
    fn arg_ref(&self) -> ArgRef<'_> {
        ArgRef::Tensor(self)
    }
}
impl CallArg for Tensor {
    fn arg_ref(&self) -> ArgRef<'_> {
        ArgRef::Tensor(self)
    }
}
impl CallArg for super::TensorSpec {
    fn arg_ref(&self) -> ArgRef<'_> {
        ArgRef::Spec(self)
    }
}
impl<H: Hash + Eq + Clone + Send + Sync + Debug + 'static> CallArg for H {
    fn arg_ref(&self) -> ArgRef<'_> {
        ArgRef::Host(self)
    }
}

/// The arguments of one call: a single `&Tensor` or `TensorSpec`, or a tuple of 1 to 6.
pub trait CallArgs {
    #[doc(hidden)]
    fn arg_refs(&self) -> Refs<'_>;
}

/// The arguments of a call, inline (no allocation for up to 6).
pub type Refs<'a> = smallvec::SmallVec<[ArgRef<'a>; 6]>;

impl CallArgs for &Tensor {
    fn arg_refs(&self) -> Refs<'_> {
        smallvec::smallvec![ArgRef::Tensor(self)]
    }
}
impl CallArgs for super::TensorSpec {
    fn arg_refs(&self) -> Refs<'_> {
        smallvec::smallvec![ArgRef::Spec(self)]
    }
}
macro_rules! call_args {
    ($($A:ident $i:tt),*) => {
        impl<$($A: CallArg),*> CallArgs for ($($A,)*) {
            fn arg_refs(&self) -> Refs<'_> {
                smallvec::smallvec![$(self.$i.arg_ref()),*]
            }
        }
    };
}
call_args!(A 0);
call_args!(A 0, B 1);
call_args!(A 0, B 1, C 2);
call_args!(A 0, B 1, C 2, D 3);
call_args!(A 0, B 1, C 2, D 3, E 4);
call_args!(A 0, B 1, C 2, D 3, E 4, G 5);
