// The group starts of sorted entries: out[i] = 1 where sorted position i's index differs
// from the one before (or i = 0), else 0 (then scanned into 1-based group numbers).
// No placeholders. Needs sparse_rows.wgsl.

struct Params {
    nnz: u32,  // entries (threads)
    cols: u32, // index columns
}

@group(0) @binding(0) var<storage, read> ix: array<u32>;
@group(0) @binding(1) var<storage, read> perm: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.nnz) { return; }
    let cols = p.cols;
    var start = 1u;
    if (i > 0u && cmp_rows(perm[i - 1u], perm[i], cols, cols) == 0) { start = 0u; }
    out[i] = start;
}
