// SparseSegmentSum's sums: the first sorted entry of each group (`work`: the 1-based
// group numbers) adds the group's values in entry order, starting from the first
// (`ff_sum`), and stores the sum at group - 1.
// Placeholders (in double braces below): ELEM the storage element of the values and the
// output, LOAD_FIRST the value `vals[perm[i]]` and LOAD_NEXT the value `vals[perm[j]]`
// as a T, STORE the sum `acc` as a stored element.
// Needs the alias `T` (codegen::prelude) and sparse_sum.wgsl.

struct Params {
    nnz: u32, // entries (threads)
}

@group(0) @binding(0) var<storage, read> vals: array<{{ELEM}}>;
@group(0) @binding(1) var<storage, read> perm: array<u32>;
@group(0) @binding(2) var<storage, read> work: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<{{ELEM}}>;
@group(0) @binding(4) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    let nnz = p.nnz;
    if (i >= nnz) { return; }
    if (i > 0u && work[i] == work[i - 1u]) { return; }
    var acc: T = {{LOAD_FIRST}};
    var j = i + 1u;
    loop {
        if (j >= nnz) { break; }
        if (work[j] != work[j - 1u]) { break; }
        acc = ff_sum(acc, {{LOAD_NEXT}});
        j = j + 1u;
    }
    out[work[i] - 1u] = {{STORE}};
}
