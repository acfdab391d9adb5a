//! Traced functions' graphs: the IR (`ir`), recording ops while tracing (`trace`), the
//! optimizer's passes (`opt`, with fused kernels described in `fusion`) and running a
//! graph (`exec`).

pub(crate) mod exec;
pub(crate) mod fusion;
pub mod ir;
pub mod opt;
pub(crate) mod trace;

pub use ir::{Graph, NodeId};
pub use opt::{OptimizationReport, OptimizerOptions, PassKind, PassReport};
