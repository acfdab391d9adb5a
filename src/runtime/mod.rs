//! Running primitives on concrete tensors, below the graph and the dispatch layer: where a
//! primitive runs and the copies that takes (`placement`), the state that graph steps and
//! eager assignments update in place (`variable`), and where printed tensors go (`print`).
//! Imports the base modules, `tensor`, `prim` and the backends' interface; never `graph`,
//! `dispatch` or the public ops.

/// The CPU backend's host fast paths, for the graph executor (`backend::host`).
pub(crate) use crate::backend::host;
pub(crate) mod placement;
pub(crate) mod print;
pub(crate) mod variable;
