//! The integration test suite of ferroflow, one binary (`cargo test --test it`):
//! the op table against independent references, every error path, a property test over
//! random shapes, axes, dtypes and indices, ndarray interop, dtype rules, random numbers and
//! creation ops.

mod common;
mod creation;
mod dtypes;
mod errors;
mod function;
mod gpu;
mod gradients;
mod interop;
mod ir_check;
mod op_table;
mod optimizer_diff;
mod optimizer_passes;
mod profiler;
mod props;
mod random;
mod sparse;
mod tidy;
mod traced_props;
mod variables;
