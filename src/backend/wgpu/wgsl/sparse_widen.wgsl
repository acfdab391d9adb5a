// SparseReorder's result: the sort's permutation widened to i64 (low word, then 0).
// No placeholders.

struct Params {
    n: u32, // entries (threads)
}

@group(0) @binding(0) var<storage, read> perm: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.n) { return; }
    out[2u * i] = perm[i];
    out[2u * i + 1u] = 0u;
}
