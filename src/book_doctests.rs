//! Compiles and runs every Rust sample of the book (`book/src/*.md`) as a doctest, so the
//! book cannot drift from the code. One `#[doc = include_str!]` module per chapter.

#[doc = include_str!("../book/src/introduction.md")]
mod introduction {}

#[doc = include_str!("../book/src/tour.md")]
mod tour {}

#[doc = include_str!("../book/src/tensor-vs-array.md")]
mod tensor_vs_array {}

#[doc = include_str!("../book/src/tensor-to-array.md")]
mod tensor_to_array {}

#[doc = include_str!("../book/src/array-to-tensor.md")]
mod array_to_tensor {}

#[doc = include_str!("../book/src/dtypes.md")]
mod dtypes {}

#[doc = include_str!("../book/src/hand-offs.md")]
mod hand_offs {}

#[doc = include_str!("../book/src/errors.md")]
mod errors {}

#[doc = include_str!("../book/src/myths.md")]
mod myths {}

#[doc = include_str!("../book/src/eager-vs-traced.md")]
mod eager_vs_traced {}

#[doc = include_str!("../book/src/tracing-rules.md")]
mod tracing_rules {}

#[doc = include_str!("../book/src/debugging.md")]
mod debugging {}

#[doc = include_str!("../book/src/reading-graphs.md")]
mod reading_graphs {}

#[doc = include_str!("../book/src/variables-control-flow.md")]
mod variables_control_flow {}

#[doc = include_str!("../book/src/graph-optimizer.md")]
mod graph_optimizer {}

#[doc = include_str!("../book/src/gradients.md")]
mod gradients {}

#[doc = include_str!("../book/src/sparse.md")]
mod sparse {}

// The README's sample, too.
#[doc = include_str!("../README.md")]
mod readme {}

#[doc = include_str!("../book/src/models.md")]
mod models {}

#[doc = include_str!("../book/src/data-pipeline.md")]
mod data_pipeline {}

#[doc = include_str!("../book/src/devices.md")]
mod devices {}
