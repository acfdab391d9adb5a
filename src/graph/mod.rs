//! Traced functions' graphs: the IR (`ir`), recording ops while tracing (`trace`) and
//! running a recorded graph (`exec`).

pub(crate) mod exec;
pub mod ir;
pub(crate) mod trace;

pub use ir::{Graph, NodeId};
