//! What a symbolic tensor stands for: one node of a graph being traced. The tensor layer
//! keeps the trace opaque (it is a `graph::trace::TraceGraph`, a layer above): only
//! `graph::trace` makes symbols and reads their trace back (`TraceGraph::of`).

use std::any::Any;
use std::sync::Arc;

/// A node of a trace, with a readable name (`x:0`, `%7`).
#[derive(Clone)]
pub(crate) struct Symbol {
    /// The trace that owns the node.
    pub(crate) trace: Arc<dyn Any + Send + Sync>,
    /// The node's number in that trace's graph (`graph::ir::NodeId`'s).
    pub(crate) node: u32,
    pub(crate) name: String,
}

impl Symbol {
    /// Whether this symbol belongs to the trace at `trace` (an address compare).
    pub(crate) fn in_trace<T>(&self, trace: &Arc<T>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.trace), Arc::as_ptr(trace))
    }
}
