//! The kernels of every dense primitive, by family as on the CPU side: `elementwise`
//! (generated, see `codegen`), `cast`, `movement` (strided copy for transpose, broadcast,
//! slice and concat; gather, one_hot), `reduce` (reductions and arg-reductions with a
//! workgroup tree), `matmul` (register-blocked tiles), `softmax` and `random`. Their WGSL
//! lives in `../wgsl/*.wgsl` (see `template`); each family has a `*_source` function that
//! makes a kernel's text from dtypes and variants alone (no device: the naga test validates
//! them all) and a function that allocates, compiles (cached) and dispatches. Each takes
//! inputs already on the GPU (host rank-0 scalars are allowed where elementwise ops take
//! them as parameters) and records its dispatches; nothing waits. The functions are
//! re-exported here, so callers name them `kernels::reduce`, `kernels::Dist`, ...

pub(crate) mod cast;
pub(crate) mod elementwise;
pub(crate) mod matmul;
pub(crate) mod movement;
pub(crate) mod random;
pub(crate) mod reduce;
pub(crate) mod softmax;

pub(crate) use cast::cast;
pub(crate) use elementwise::{binary, run_ew, select, unary};
pub(crate) use matmul::{matmul, matmul_params, tiled_matmul_main};
pub(crate) use movement::{broadcast_to, concat, gather, one_hot, slice, transpose};
pub(crate) use random::{Dist, random};
pub(crate) use reduce::{REDUCE_TREE, arg_reduce, extreme, reduce};
pub(crate) use softmax::softmax;

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::tensor::storage::Buffer;

pub(super) fn buf<'a>(op: &'static str, t: &'a Tensor) -> Result<&'a wgpu::Buffer> {
    t.gpu_storage()
        .map(|g| &g.buffer)
        .ok_or_else(|| Error::invalid(op, "internal: a GPU kernel got an input that is not on the GPU"))
}

/// A host rank-0 tensor's value as parameter words (`codegen::param_load` reads them):
/// one word, two (low, high) for f64 and i64, an f16 as the f32 bits of its value.
pub(super) fn scalar_words(t: &Tensor) -> Option<Vec<u32>> {
    if t.rank() != 0 {
        return None;
    }
    let wide = |b: u64| vec![b as u32, (b >> 32) as u32];
    Some(match t.host_buffer()? {
        Buffer::F32(v) => vec![v.first()?.to_bits()],
        Buffer::I32(v) => vec![*v.first()? as u32],
        Buffer::U8(v) => vec![*v.first()? as u32],
        Buffer::Bool(v) => vec![*v.first()? as u32],
        Buffer::F16(v) => vec![v.first()?.to_f32().to_bits()],
        Buffer::F64(v) => wide(v.first()?.to_bits()),
        Buffer::I64(v) => wide(*v.first()? as u64),
        Buffer::BF16(_) => return None,
    })
}

/// Row-major strides of `dims` (in elements).
pub(super) fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![0; dims.len()];
    let mut acc = 1;
    for i in (0..dims.len()).rev() {
        s[i] = acc;
        acc *= dims[i];
    }
    s
}

/// Strides of `dims` broadcast to `out` (right-aligned; 0 where broadcast).
pub(super) fn bcast_strides(dims: &[usize], out: &[usize]) -> Vec<u32> {
    let st = strides(dims);
    let mut r = vec![0u32; out.len()];
    for (i, d) in dims.iter().enumerate() {
        let o = i + out.len() - dims.len();
        r[o] = if *d == 1 && out[o] != 1 { 0 } else { st[i] as u32 };
    }
    r
}

pub(super) fn groups(n: usize, per: u32) -> u32 {
    n.div_ceil(per as usize) as u32
}
