//! `ff::function`, the `tf.function` of ferroflow: the first call with a new signature
//! traces the closure once with symbolic tensors into a graph, compiles it and caches the
//! result; later calls with the same signature run the cached graph. The cache key follows
//! TensorFlow: per tensor argument its dtype and shape, per host argument its value.

mod args;
mod spec;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use args::{ArgRef, Body, CallArg, CallArgs, HostValue, OutputPart, Outputs, Param};
pub use spec::TensorSpec;

use crate::error::{Error, Result};
use crate::graph::exec::Plan;
use crate::graph::ir::Graph;
use crate::graph::opt::OptimizationReport;
use crate::graph::trace::{TraceGraph, output_node, with_trace};
use crate::tensor::Tensor;

/// Options of a traced function (`tf.function`'s keyword arguments).
#[derive(Clone, Debug, Default)]
pub struct FunctionOptions {
    /// A name for messages and graph text (default `"function"`).
    pub name: Option<String>,
    /// When set, exactly one trace serves every call whose tensors fit these specs
    /// (`None` dims match any size); other inputs are `Error::SignatureMismatch`.
    pub input_signature: Option<Vec<TensorSpec>>,
    /// After the second distinct shape of an argument, trace with unknown dims instead of
    /// retracing for every new shape.
    pub reduce_retracing: bool,
    /// Names of the tensor arguments in graph text (`x`, `y`, ... by default).
    pub arg_names: Option<Vec<String>>,
    /// Which optimizer passes run on this function's graphs (default: the process-wide
    /// `ff::config::optimizer_options()`, every pass on).
    pub optimizer: Option<crate::graph::OptimizerOptions>,
}

/// One part of a cache key.
enum KeyPart {
    Tensor(TensorSpec),
    Host(Box<dyn HostValue>),
}

impl PartialEq for KeyPart {
    fn eq(&self, o: &KeyPart) -> bool {
        match (self, o) {
            (KeyPart::Tensor(a), KeyPart::Tensor(b)) => a == b,
            (KeyPart::Host(a), KeyPart::Host(b)) => a.dyn_eq(b.as_ref()),
            _ => false,
        }
    }
}
impl Eq for KeyPart {}
impl Hash for KeyPart {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            KeyPart::Tensor(s) => s.hash_into(h),
            KeyPart::Host(v) => v.dyn_hash(h),
        }
    }
}
impl std::fmt::Debug for KeyPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPart::Tensor(s) => write!(f, "{s}"),
            KeyPart::Host(v) => write!(f, "{v:?}"),
        }
    }
}

#[derive(PartialEq, Eq, Hash, Debug)]
struct Key(Vec<KeyPart>);

/// A traced graph for one signature, compiled and ready to run.
pub struct ConcreteFunction {
    name: String,
    specs: Vec<TensorSpec>,
    graph: Graph,
    optimized: Graph,
    report: OptimizationReport,
    plan: Plan,
    /// Compiled vector-Jacobian products of this graph, per set of needed inputs (made when
    /// a gradient tape differentiates a call).
    vjps: Mutex<HashMap<Vec<bool>, Arc<Plan>>>,
}

impl ConcreteFunction {
    /// The graph as traced (`Display` is the text IR; `to_dot()` gives Graphviz).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    /// The graph after the optimizer's passes: the one that runs.
    pub fn optimized_graph(&self) -> &Graph {
        &self.optimized
    }
    /// What each optimizer pass did: nodes before and after, the changes, the time, and
    /// the planned peak memory (`Display` prints a table).
    pub fn pass_report(&self) -> &OptimizationReport {
        &self.report
    }
    /// The memory plan's peak bytes (arguments, constants and live intermediates), when
    /// the memory pass ran and every shape is known.
    pub fn planned_peak_bytes(&self) -> Option<usize> {
        self.report.planned_peak_bytes
    }
    /// The specs of the tensor arguments this graph was traced for.
    pub fn input_specs(&self) -> &[TensorSpec] {
        &self.specs
    }
    /// Runs the graph on tensor arguments, which must fit the traced specs.
    #[track_caller]
    pub fn call(&self, args: &[&Tensor]) -> Result<Vec<Tensor>> {
        self.check(args)?;
        self.plan.run(args)
    }
    /// The compiled VJP of this graph for the inputs `mask` marks (tensor arguments, then one
    /// per variable in `vars`), traced on first use and cached. Its arguments are the
    /// inputs, then the output gradients `dys` of the float outputs.
    pub(crate) fn vjp_plan(
        &self,
        mask: &[bool],
        dys: &[Option<Tensor>],
        n_args: usize,
        vars: &[crate::variable::Variable],
        loc: crate::error::Loc,
    ) -> Result<Arc<Plan>> {
        if let Some(p) = lock(&self.vjps).get(mask) {
            return Ok(p.clone());
        }
        let specs: Vec<(crate::shape::Shape, crate::dtype::DType)> = self
            .specs
            .iter()
            .take(n_args)
            .map(|s| (s.trace_shape(), s.dtype))
            .chain(vars.iter().map(|v| (v.shape().clone(), v.dtype())))
            .collect();
        // The output gradients have the outputs' traced types (unknown dims stay unknown).
        let dy_specs: Vec<(crate::shape::Shape, crate::dtype::DType)> = self
            .graph
            .outputs
            .iter()
            .zip(dys)
            .filter(|(_, d)| d.is_some())
            .filter_map(|(o, _)| self.graph.node(*o).map(|n| (n.shape.clone(), n.dtype)))
            .collect();
        let mut g = crate::autograd::trace_vjp(&self.graph, &specs, &dy_specs, mask, n_args, vars, loc)?;
        crate::graph::opt::optimize(&mut g, &crate::config::optimizer_options())?;
        let plan = Arc::new(Plan::compile(&g)?);
        lock(&self.vjps).insert(mask.to_vec(), plan.clone());
        Ok(plan)
    }

    fn check(&self, args: &[&Tensor]) -> Result<()> {
        if args.len() != self.specs.len() {
            return Err(Error::SignatureMismatch {
                function: self.name.clone(),
                index: args.len().min(self.specs.len()),
                expected: format!("{} tensor arguments", self.specs.len()),
                found: format!("{} tensor arguments", args.len()),
            });
        }
        for (i, (t, s)) in args.iter().zip(&self.specs).enumerate() {
            if !s.fits(t) {
                return Err(Error::SignatureMismatch {
                    function: self.name.clone(),
                    index: i,
                    expected: s.to_string(),
                    found: TensorSpec::of(t).to_string(),
                });
            }
        }
        Ok(())
    }
}

/// One signature's entry: filled by its first caller, who holds the lock while tracing.
type Slot = Arc<Mutex<Option<Arc<ConcreteFunction>>>>;

struct Inner<F> {
    body: F,
    name: String,
    options: FunctionOptions,
    /// One slot per signature; the slot's lock is held while tracing, so concurrent
    /// callers with one signature trace it once.
    cache: Mutex<HashMap<Key, Slot>>,
    traces: AtomicUsize,
    /// Whether each of the last 10 calls traced (bit 0 = the latest), and how many calls
    /// have been made (up to 10), for the retracing warning.
    recent: AtomicU32,
    /// The last signature called and its concrete function: a repeat call matches it
    /// without building a key or taking the cache lock.
    last: Mutex<Option<(Vec<KeyPart>, Arc<ConcreteFunction>)>>,
    warnings: AtomicUsize,
    /// Shapes seen per tensor argument, for `reduce_retracing`.
    seen: Mutex<Vec<Vec<TensorSpec>>>,
}

/// A traced function: see the module docs. `Send + Sync`; cloning shares the cache.
pub struct Function<M, F: Body<M>> {
    inner: Arc<Inner<F>>,
    _marker: PhantomData<fn() -> M>,
}

impl<M, F: Body<M>> Clone for Function<M, F> {
    fn clone(&self) -> Self {
        Function { inner: self.inner.clone(), _marker: PhantomData }
    }
}

/// Wraps a closure of 1 to 6 arguments (each `&Tensor` or a host value) as a traced
/// function.
pub fn function<M, F: Body<M>>(body: F) -> Function<M, F> {
    function_with(FunctionOptions::default(), body)
}

/// `function` with options: an input signature, `reduce_retracing`, a name.
pub fn function_with<M, F: Body<M>>(options: FunctionOptions, body: F) -> Function<M, F> {
    let name = options.name.clone().unwrap_or_else(|| "function".to_string());
    Function {
        inner: Arc::new(Inner {
            body,
            name,
            options,
            cache: Mutex::new(HashMap::new()),
            traces: AtomicUsize::new(0),
            recent: AtomicU32::new(0),
            last: Mutex::new(None),
            warnings: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        }),
        _marker: PhantomData,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const DEFAULT_NAMES: [&str; 6] = ["x", "y", "z", "w", "u", "v"];

impl<M, F: Body<M>> Function<M, F> {
    /// How many times the body has been traced.
    pub fn tracing_count(&self) -> usize {
        self.inner.traces.load(Ordering::Relaxed)
    }

    /// Calls the function: traces on a new signature, then runs the cached graph. With
    /// `ff::config::run_functions_eagerly(true)` the body runs eagerly instead, and inside
    /// another function's trace it runs inline (its ops join the outer graph; it is not
    /// traced on its own, so its `tracing_count` does not change).
    #[track_caller]
    pub fn call(&self, args: impl CallArgs) -> Result<F::Output> {
        let refs = args.arg_refs();
        self.check_kinds(&refs)?;
        if refs.iter().any(|a| matches!(a, ArgRef::Spec(_))) {
            return Err(Error::InvalidArgument {
                op: "Function::call",
                message: "call needs tensors; pass TensorSpecs to get_concrete_function instead".into(),
                location: Some(crate::error::Loc::caller()),
            });
        }
        // Eagerly on request; inside another function's trace, inline: the body's ops join
        // the outer graph (what nested tf.function and jax.jit calls become), so variable
        // reads and writes happen each time the outer graph runs, not once while tracing.
        if crate::config::functions_run_eagerly() || crate::graph::trace::active_id() != 0 {
            return self.inner.body.invoke(&refs);
        }
        let tensors: smallvec::SmallVec<[&Tensor; 6]> = refs.iter().flat_map(ArgRef::tensors).collect();
        let cf = match self.repeat(&refs) {
            Some(cf) => {
                self.note_call(false, &refs);
                cf
            }
            None => {
                let (cf, traced) = self.concrete_for(&refs)?;
                self.note_call(traced, &refs);
                cf.check(&tensors)?;
                if !tensors.iter().any(|t| t.is_symbolic()) {
                    self.remember(&refs, &cf);
                }
                cf
            }
        };
        let mut outs = cf.plan.run(&tensors)?;
        // Under an eager gradient tape the call is one recorded op (see autograd::control).
        if crate::dispatch::tape::is_recording() && crate::graph::trace::active_id() == 0 {
            crate::autograd::record_call(&cf, &tensors, &mut outs);
        }
        F::Output::unflatten(outs)
    }

    /// Traces (without running) for tensor arguments of these specs and host values, and
    /// returns the concrete function (shared with the cache).
    pub fn get_concrete_function(&self, args: impl CallArgs) -> Result<Arc<ConcreteFunction>> {
        let refs = args.arg_refs();
        self.check_kinds(&refs)?;
        Ok(self.concrete_for(&refs)?.0)
    }

    fn check_kinds(&self, refs: &[ArgRef<'_>]) -> Result<()> {
        let kinds = F::KINDS;
        if kinds.len() == refs.len() && kinds.iter().zip(refs).all(|(k, a)| *k != matches!(a, ArgRef::Host(_))) {
            return Ok(());
        }
        let got: Vec<bool> = refs.iter().map(|a| !matches!(a, ArgRef::Host(_))).collect();
        let show =
            |k: &[bool]| k.iter().map(|t| if *t { "tensor" } else { "host value" }).collect::<Vec<_>>().join(", ");
        Err(Error::SignatureMismatch {
            function: self.inner.name.clone(),
            index: kinds.iter().zip(&got).position(|(a, b)| a != b).unwrap_or(kinds.len().min(got.len())),
            expected: format!("({})", show(kinds)),
            found: format!("({})", show(&got)),
        })
    }

    /// The key of a call, after `input_signature` and `reduce_retracing` generalisation.
    fn key(&self, refs: &[ArgRef<'_>]) -> Result<Key> {
        let opts = &self.inner.options;
        let mut parts = Vec::with_capacity(refs.len());
        let mut ti = 0;
        for a in refs {
            match a {
                ArgRef::Host(h) => parts.push(KeyPart::Host(h.clone_box())),
                ArgRef::Spec(given) => {
                    let spec = match &opts.input_signature {
                        Some(sig) => sig.get(ti).cloned().ok_or_else(|| Error::SignatureMismatch {
                            function: self.inner.name.clone(),
                            index: ti,
                            expected: format!("{} tensor arguments (the input_signature)", sig.len()),
                            found: format!("at least {} tensor arguments", ti + 1),
                        })?,
                        None => (*given).clone(),
                    };
                    parts.push(KeyPart::Tensor(spec));
                    ti += 1;
                }
                ArgRef::Sparse(sp) => {
                    // Indices and values are keyed like tensor arguments, the dense shape by value.
                    for t in [sp.indices(), sp.values()] {
                        parts.push(KeyPart::Tensor(self.tensor_spec(t, ti)?));
                        ti += 1;
                    }
                    parts.push(KeyPart::Host(Box::new(crate::sparse::DenseShapeKey(sp.shape().to_vec()))));
                }
                ArgRef::Tensor(t) => {
                    parts.push(KeyPart::Tensor(self.tensor_spec(t, ti)?));
                    ti += 1;
                }
            }
        }
        Ok(Key(parts))
    }

    /// The key spec of tensor argument number `ti` (counting graph inputs), after
    /// `input_signature` and `reduce_retracing` generalisation.
    fn tensor_spec(&self, t: &Tensor, ti: usize) -> Result<TensorSpec> {
        let opts = &self.inner.options;
        let exact = TensorSpec::of(t);
        if let Some(sig) = &opts.input_signature {
            let s = sig.get(ti).ok_or_else(|| Error::SignatureMismatch {
                function: self.inner.name.clone(),
                index: ti,
                expected: format!("{} tensor arguments (the input_signature)", sig.len()),
                found: format!("at least {} tensor arguments", ti + 1),
            })?;
            if !s.fits(t) {
                return Err(Error::SignatureMismatch {
                    function: self.inner.name.clone(),
                    index: ti,
                    expected: s.to_string(),
                    found: exact.to_string(),
                });
            }
            Ok(s.clone())
        } else if opts.reduce_retracing {
            let mut seen = lock(&self.inner.seen);
            if seen.len() <= ti {
                seen.resize(ti + 1, Vec::new());
            }
            let s = &mut seen[ti];
            if !s.contains(&exact) {
                s.push(exact.clone());
            }
            Ok(if s.len() >= 2 { exact.generalized_against(&s[0]) } else { exact })
        } else {
            Ok(exact)
        }
    }

    /// The concrete function for these arguments, tracing it first if needed.
    fn concrete_for(&self, refs: &[ArgRef<'_>]) -> Result<(Arc<ConcreteFunction>, bool)> {
        let key = self.key(refs)?;
        let specs: Vec<TensorSpec> =
            key.0.iter().filter_map(|p| if let KeyPart::Tensor(s) = p { Some(s.clone()) } else { None }).collect();
        let slot = lock(&self.inner.cache).entry(key).or_default().clone();
        let mut slot = lock(&slot);
        if let Some(cf) = slot.as_ref() {
            return Ok((cf.clone(), false));
        }
        let cf = Arc::new(self.trace(refs, specs)?);
        *slot = Some(cf.clone());
        Ok((cf, true))
    }

    fn trace(&self, refs: &[ArgRef<'_>], specs: Vec<TensorSpec>) -> Result<ConcreteFunction> {
        self.inner.traces.fetch_add(1, Ordering::Relaxed);
        let trace = TraceGraph::new(self.inner.traces.load(Ordering::Relaxed) == 1);
        let names = self.inner.options.arg_names.clone();
        // Default names per graph input: `x`, `y`, ... per tensor argument; a sparse
        // argument's two inputs are `x_indices` and `x_values`.
        let mut defaults: Vec<String> = Vec::new();
        for (k, a) in refs.iter().filter(|a| !matches!(a, ArgRef::Host(_))).enumerate() {
            let base = DEFAULT_NAMES.get(k).map_or(format!("arg{k}"), |s| s.to_string());
            match a {
                ArgRef::Sparse(_) => {
                    defaults.push(format!("{base}_indices"));
                    defaults.push(format!("{base}_values"));
                }
                _ => defaults.push(base),
            }
        }
        let mut symbols: Vec<Tensor> = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            let name = names
                .as_ref()
                .and_then(|n| n.get(i).cloned())
                .or_else(|| defaults.get(i).cloned())
                .unwrap_or_else(|| format!("arg{i}"));
            symbols.push(trace.add_input(i, &name, s.trace_shape(), s.dtype));
        }
        // Sparse arguments are rebuilt around their parts' symbols (owned here, borrowed below).
        let mut sparse = Vec::new();
        let mut k = 0;
        for a in refs {
            match a {
                ArgRef::Tensor(_) | ArgRef::Spec(_) => k += 1,
                ArgRef::Sparse(sp) => {
                    if let (Some(i), Some(v)) = (symbols.get(k), symbols.get(k + 1)) {
                        sparse.push(sp.with_parts(i.clone(), v.clone()));
                    }
                    k += 2;
                }
                ArgRef::Host(_) => {}
            }
        }
        let (mut it, mut sp) = (symbols.iter(), sparse.iter());
        let sym_refs: Vec<ArgRef<'_>> = refs
            .iter()
            .map(|a| match a {
                ArgRef::Tensor(_) | ArgRef::Spec(_) => it.next().map_or(*a, ArgRef::Tensor),
                ArgRef::Sparse(_) => {
                    it.nth(1);
                    sp.next().map_or(*a, ArgRef::Sparse)
                }
                ArgRef::Host(_) => *a,
            })
            .collect();
        let outs = with_trace(&trace, || self.inner.body.invoke(&sym_refs))?.flatten();
        let outputs = with_trace(&trace, || outs.iter().map(|t| output_node(&trace, t)).collect::<Result<Vec<_>>>())?;
        let mut graph = std::mem::take(&mut *trace.lock());
        graph.outputs = outputs;
        drop(symbols);
        graph.verify()?;
        let opts = self.inner.options.optimizer.clone().unwrap_or_else(crate::config::optimizer_options);
        let mut optimized = graph.clone();
        let report = crate::graph::opt::optimize(&mut optimized, &opts)?;
        let plan = Plan::compile(&optimized)?;
        Ok(ConcreteFunction {
            name: self.inner.name.clone(),
            specs,
            graph,
            optimized,
            report,
            plan,
            vjps: Mutex::new(HashMap::new()),
        })
    }

    /// Records whether this call traced; warns (at most twice per function) when at least
    /// 5 of the last 10 calls traced, as TensorFlow does.
    fn note_call(&self, traced: bool, refs: &[ArgRef<'_>]) {
        // Low 10 bits: the history; bits 16..: how many calls are in it (at most 10).
        let push = |r: u32| {
            let n = ((r >> 16) + 1).min(10);
            (n << 16) | (((r & 0x3ff) << 1) | traced as u32) & 0x3ff
        };
        // Steady state (10 calls, none traced) stays as it is: skip the read-modify-write.
        if !traced && self.inner.recent.load(Ordering::Relaxed) == 10 << 16 {
            return;
        }
        let prev = self.inner.recent.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| Some(push(r))).unwrap_or(0);
        let now = push(prev);
        let (n, calls) = ((now & 0x3ff).count_ones(), now >> 16);
        if traced && n >= 5 && self.inner.warnings.load(Ordering::Relaxed) < 2 {
            self.inner.warnings.fetch_add(1, Ordering::Relaxed);
            let sig: Vec<String> = refs
                .iter()
                .map(|a| match a {
                    ArgRef::Tensor(t) => TensorSpec::of(t).to_string(),
                    ArgRef::Spec(s) => s.to_string(),
                    ArgRef::Host(h) => format!("{h:?}"),
                    ArgRef::Sparse(sp) => sp.spec_text(),
                })
                .collect();
            log::warn!(
                "{n} out of the last {calls} calls to {} triggered retracing (the last with arguments ({})). Retracing happens for every new tensor dtype or shape and every new host-argument value; it is expensive. Pass tensors instead of changing host values, use an input_signature with None dims, or set reduce_retracing: true.",
                self.inner.name,
                sig.join(", ")
            );
        }
    }

    /// The concrete function of the last call when these arguments match its exact
    /// signature (no key built, no allocation).
    fn repeat(&self, refs: &[ArgRef<'_>]) -> Option<Arc<ConcreteFunction>> {
        let last = lock(&self.inner.last);
        let (parts, cf) = last.as_ref()?;
        let same = parts.len() == refs.len()
            && parts.iter().zip(refs).all(|(p, a)| match (p, a) {
                (KeyPart::Tensor(s), ArgRef::Tensor(t)) => {
                    s.dtype == t.dtype()
                        && s.dims.len() == t.rank()
                        && s.dims.iter().zip(t.shape().iter()).all(|(d, n)| *d == Some(*n))
                }
                (KeyPart::Host(h), ArgRef::Host(v)) => h.dyn_eq(*v),
                _ => false,
            });
        same.then(|| cf.clone())
    }

    /// Remembers an exact signature for `repeat` (only when keys are exact: no
    /// input_signature and no reduce_retracing).
    fn remember(&self, refs: &[ArgRef<'_>], cf: &Arc<ConcreteFunction>) {
        let o = &self.inner.options;
        // A sparse argument is several key parts: such calls take the keyed path.
        if o.input_signature.is_some() || o.reduce_retracing || refs.iter().any(|a| matches!(a, ArgRef::Sparse(_))) {
            return;
        }
        let parts = refs
            .iter()
            .filter_map(|a| match a {
                ArgRef::Tensor(t) => Some(KeyPart::Tensor(TensorSpec::of(t))),
                ArgRef::Spec(s) => Some(KeyPart::Tensor((*s).clone())),
                ArgRef::Host(h) => Some(KeyPart::Host(h.clone_box())),
                ArgRef::Sparse(_) => None,
            })
            .collect();
        *lock(&self.inner.last) = Some((parts, cf.clone()));
    }
}
