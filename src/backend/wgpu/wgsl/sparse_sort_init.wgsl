// The sort's first pass: out[i] = entry number i, padded to a power of two with the
// sentinel 0xffffffff (which sorts last).
// No placeholders.

struct Params {
    padded: u32, // the power of two (threads)
    nnz: u32,    // entries
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.padded) { return; }
    out[i] = select(0xffffffffu, i, i < p.nnz);
}
