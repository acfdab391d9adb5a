//! Conversions between tensors and host types. **Architecture Invariant:** this is the only
//! module with `ndarray` types in public signatures.

pub mod ndarray;
mod sparse;
