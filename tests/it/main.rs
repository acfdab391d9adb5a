//! The integration test suite of ferroflow, one binary (`cargo test --test it`):
//! the op table against independent references, every error path, a property test over
//! random shapes, axes, dtypes and indices, ndarray interop, dtype rules, random numbers and
//! creation ops, and the model-writing modules (nn, optim, data, io).

mod common;
mod creation;
mod data;
mod dtypes;
mod errors;
mod function;
mod gpu;
mod gpu_f64_math;
mod gpu_fused;
mod gpu_sparse;
mod gradients;
mod interop;
mod io;
mod ir_check;
mod layers;
mod nn;
mod op_table;
mod optim;
mod optimizer_diff;
mod optimizer_passes;
mod profiler;
mod props;
mod random;
mod sparse;
mod tidy;
mod traced_props;
mod training;
mod variables;
