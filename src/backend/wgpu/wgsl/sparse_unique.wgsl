// SparseUnique's compaction: the first sorted entry of each group (`work`: the 1-based
// group numbers) copies its index (i64 word pairs) to row group - 1 of the output.
// No placeholders.

struct Params {
    nnz: u32,  // entries (threads)
    cols: u32, // index columns
}

@group(0) @binding(0) var<storage, read> ix: array<u32>;
@group(0) @binding(1) var<storage, read> perm: array<u32>;
@group(0) @binding(2) var<storage, read> work: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.nnz) { return; }
    if (i > 0u && work[i] == work[i - 1u]) { return; }
    let cols = p.cols;
    let r = work[i] - 1u;
    let e = perm[i];
    for (var d = 0u; d < cols; d = d + 1u) {
        out[2u * (r * cols + d)] = ix[2u * (e * cols + d)];
        out[2u * (r * cols + d) + 1u] = ix[2u * (e * cols + d) + 1u];
    }
}
