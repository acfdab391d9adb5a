//! The graph optimizer: passes that rewrite a traced graph before it is compiled, in the
//! spirit of TensorFlow's Grappler and XLA. Each pass takes the IR and returns the IR
//! (passes never see device buffers); the manager runs the pipeline that
//! `OptimizerOptions` switches on, checks the graph after every pass (debug builds and
//! tests), and records a `PassReport` per pass.
//!
//! Order: pruning, constant folding, common subexpressions, arithmetic, then pruning again
//! (the rewrites leave dead nodes), fusion, and memory planning last (it plans the buffers
//! of the graph that will run).

mod arith;
mod cse;
mod fold;
mod fuse;
pub(crate) mod memory;
mod prune;

use std::fmt;
use std::time::{Duration, Instant};

pub use crate::config::optimizer::{OptimizerOptions, PassKind};

use super::ir::Graph;
use crate::error::Result;

/// One optimization pass: rewrites the graph, returns one line per change it made.
pub(crate) trait Pass {
    fn kind(&self) -> PassKind;
    fn run(&self, g: &mut Graph, opts: &OptimizerOptions) -> Result<Vec<String>>;
}

/// What one pass did to one graph.
#[derive(Clone, Debug)]
pub struct PassReport {
    /// Which pass.
    pub kind: PassKind,
    /// The pass's name (`pruning`, `constant_folding`, ...).
    pub pass: &'static str,
    /// Node count before the pass.
    pub nodes_before: usize,
    /// Node count after the pass.
    pub nodes_after: usize,
    /// One line per change (`%5 = add x:0 0 -> x:0`).
    pub changes: Vec<String>,
    /// How long the pass took.
    pub time: Duration,
}

/// Every pass's report for one concrete function, in pipeline order, plus the planned peak
/// memory when the memory pass ran.
#[derive(Clone, Debug, Default)]
pub struct OptimizationReport {
    /// One entry per pass run.
    pub passes: Vec<PassReport>,
    /// The memory plan's peak bytes (arguments, constants and live buffers), when every
    /// shape is known and memory planning ran.
    pub planned_peak_bytes: Option<usize>,
}

impl fmt::Display for OptimizationReport {
    /// A table: pass, nodes before -> after, changes, time; then the changes themselves.
    /// The alternate form (`{:#}`) leaves the times out, so it prints the same on every run.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passes.is_empty() {
            return writeln!(f, "no optimizer passes ran");
        }
        let timed = !f.alternate();
        write!(f, "{:<18} {:>7} {:>7} {:>8}", "pass", "before", "after", "changes")?;
        writeln!(f, "{}", if timed { format!(" {:>10}", "time") } else { String::new() })?;
        for p in &self.passes {
            write!(f, "{:<18} {:>7} {:>7} {:>8}", p.pass, p.nodes_before, p.nodes_after, p.changes.len())?;
            writeln!(f, "{}", if timed { format!(" {:>8.1}µs", p.time.as_secs_f64() * 1e6) } else { String::new() })?;
        }
        if let Some(b) = self.planned_peak_bytes {
            writeln!(f, "planned peak memory: {b} bytes")?;
        }
        for p in self.passes.iter().filter(|p| !p.changes.is_empty()) {
            writeln!(f, "{}:", p.pass)?;
            for c in &p.changes {
                writeln!(f, "  {c}")?;
            }
        }
        Ok(())
    }
}

/// The pipeline, in order (pruning runs twice: first and after the rewrites).
fn pipeline() -> [&'static dyn Pass; 7] {
    [
        &prune::Prune,
        &fold::ConstantFold,
        &cse::Cse,
        &arith::Arithmetic,
        &prune::Prune,
        &fuse::Fuse,
        &memory::MemoryPlanner,
    ]
}

/// Runs the enabled passes over `g` (in place) and reports what each did.
pub(crate) fn optimize(g: &mut Graph, opts: &OptimizerOptions) -> Result<OptimizationReport> {
    let mut report = OptimizationReport::default();
    optimize_nested(g, opts)?;
    let mut pruned = false;
    for pass in pipeline() {
        let kind = pass.kind();
        if !opts.enabled(kind) || (kind == PassKind::Pruning && pruned && !opts.rewrites_enabled()) {
            continue;
        }
        pruned |= kind == PassKind::Pruning;
        let nodes_before = g.node_count();
        let t = Instant::now();
        let changes = pass.run(g, opts)?;
        let time = t.elapsed();
        if cfg!(debug_assertions) || cfg!(test) {
            g.verify().map_err(|e| crate::error::Error::invalid("optimizer", format!("after {}: {e}", kind.name())))?;
        }
        report.passes.push(PassReport {
            kind,
            pass: kind.name(),
            nodes_before,
            nodes_after: g.node_count(),
            changes,
            time,
        });
    }
    report.planned_peak_bytes = g.memory.as_ref().and_then(|m| m.peak_bytes);
    Ok(report)
}

/// Optimizes the branch and loop graphs of `cond` and `while` nodes (their reports are not
/// kept: the top-level report counts top-level nodes).
fn optimize_nested(g: &mut Graph, opts: &OptimizerOptions) -> Result<()> {
    use super::ir::NodeOp;
    use std::sync::Arc;
    let sub = |h: &Arc<Graph>| -> Result<Arc<Graph>> {
        let mut h = (**h).clone();
        optimize(&mut h, opts)?;
        Ok(Arc::new(h))
    };
    for id in g.node_ids() {
        let Some(n) = g.node(id) else { continue };
        let op = match &n.op {
            NodeOp::Cond { then, otherwise, n_then } => {
                NodeOp::Cond { then: sub(then)?, otherwise: sub(otherwise)?, n_then: *n_then }
            }
            NodeOp::While { cond, body, n_vars, n_cond } => {
                NodeOp::While { cond: sub(cond)?, body: sub(body)?, n_vars: *n_vars, n_cond: *n_cond }
            }
            _ => continue,
        };
        if let Some(n) = g.node_mut(id) {
            n.op = op;
        }
    }
    Ok(())
}
