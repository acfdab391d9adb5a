// The strided copy behind transpose, broadcast_to, slice and concat: over the index space
// `dims` (row-major), out[out_off + c . out_strides] = in0[in_off + c . in_strides] for each
// coordinate c, `w` storage units per element (see `storage::move_unit`).
// Placeholder (in double braces below): ELEM the storage unit (u32, or f16 for packed halves).

struct Params {
    n: u32,       // elements to copy
    rank: u32,
    w: u32,       // units per element
    in_off: u32,  // in elements
    out_off: u32, // in elements
    // dims[rank], then in_strides[rank], then out_strides[rank] (in elements)
    shape: array<u32>,
}

@group(0) @binding(0) var<storage, read> in0: array<{{ELEM}}>;
@group(0) @binding(1) var<storage, read_write> out: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.n) { return; }
    let rank = p.rank;
    let w = p.w;
    var a = p.in_off;
    var b = p.out_off;
    var rem = i;
    for (var d = i32(rank) - 1; d >= 0; d = d - 1) {
        let dim = p.shape[u32(d)];
        let c = rem % dim;
        rem = rem / dim;
        a = a + c * p.shape[rank + u32(d)];
        b = b + c * p.shape[2u * rank + u32(d)];
    }
    for (var k = 0u; k < w; k = k + 1u) {
        out[b * w + k] = in0[a * w + k];
    }
}
