// gather(x, idx, axis): x viewed as [outer, dim, inner], out as [outer, m, inner];
// out[o, j, k] = x[o, idx[j], k], zeros for an index out of [0, dim) (as TensorFlow on a
// GPU). Elements move as W storage units.
// Placeholders (in double braces below): UNIT the storage unit (u32 or f16), W units per element,
// INDEX_J index j of `in1` as an i32 (-1 when out of i32's range; `index_load`).

struct Params {
    n: u32,     // output elements
    dim: u32,   // x's size along the axis
    inner: u32, // elements after the axis
    m: u32,     // indices
}

@group(0) @binding(0) var<storage, read> in0: array<{{UNIT}}>;
@group(0) @binding(1) var<storage, read> in1: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<{{UNIT}}>;
@group(0) @binding(3) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.n) { return; }
    let dim = p.dim;
    let inner = p.inner;
    let m = p.m;
    let k = i % inner;
    let j = (i / inner) % m;
    let o = i / (inner * m);
    let ix = {{INDEX_J}};
    for (var q = 0u; q < {{W}}u; q = q + 1u) {
        if (ix < 0 || u32(ix) >= dim) { out[i * {{W}}u + q] = {{UNIT}}(0); }
        else { out[i * {{W}}u + q] = in0[((o * dim + u32(ix)) * inner + k) * {{W}}u + q]; }
    }
}
