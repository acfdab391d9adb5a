//! Traced functions' graphs: the IR (`ir`), recording ops while tracing (`trace`), the
//! optimizer's passes (`opt`; a fused kernel's description is `prim::fusion`, which the
//! backends run) and running a graph (`exec`, through `runtime`).

pub(crate) mod exec;
pub mod ir;
pub mod opt;
pub(crate) mod trace;

pub use ir::{Graph, NodeId};
pub use opt::{OptimizationReport, OptimizerOptions, PassKind, PassReport};
