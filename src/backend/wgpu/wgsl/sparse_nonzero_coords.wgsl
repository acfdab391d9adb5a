// NonZero's coordinates: each flagged element (where the scan `work` steps up) writes its
// row-major coordinates as i64 word pairs to row rank - 1 of the [count, rank] output.
// No placeholders.

struct Params {
    n: u32,    // elements (threads)
    rank: u32, // the input's rank
    // the input's dims[rank]
    dims: array<u32>,
}

@group(0) @binding(0) var<storage, read> work: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.n) { return; }
    var prev = 0u;
    if (i > 0u) { prev = work[i - 1u]; }
    if (work[i] == prev) { return; }
    let rank = p.rank;
    let r = work[i] - 1u;
    var rem = i;
    for (var d = i32(rank) - 1; d >= 0; d = d - 1) {
        let dim = p.dims[u32(d)];
        out[2u * (r * rank + u32(d))] = rem % dim;
        out[2u * (r * rank + u32(d)) + 1u] = 0u;
        rem = rem / dim;
    }
}
