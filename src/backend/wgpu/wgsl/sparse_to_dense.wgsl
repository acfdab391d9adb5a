// SparseToDense's sums: thread i takes sorted position i; the first of each run of equal
// indices adds the run's values from zero in entry order (`ff_sum`) and stores the sum at
// its dense offset (over `out` already filled with the default). Entries out of bounds
// are skipped (the status reports them).
// Placeholders (in double braces below): ELEM the storage element of the values and the
// output, ZERO the sum's start as a T, LOAD the value `vals[f]` as a T, STORE the sum
// `acc` as a stored element.
// Needs the alias `T` (codegen::prelude), sparse_sum.wgsl, sparse_rows.wgsl and
// sparse_bounds.wgsl.

struct Params {
    nnz: u32,  // entries (threads)
    cols: u32, // index columns (the dense rank)
    // dims[cols] as (low, high) word pairs, then the dense strides[cols]
    shape: array<u32>,
}

@group(0) @binding(0) var<storage, read> ix: array<u32>;
@group(0) @binding(1) var<storage, read> vals: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> perm: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<{{ELEM}}>;
@group(0) @binding(4) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    let nnz = p.nnz;
    if (i >= nnz) { return; }
    let cols = p.cols;
    let e = perm[i];
    if (i > 0u && cmp_rows(perm[i - 1u], e, cols, cols) == 0) { return; }
    if (!in_bounds(e, cols)) { return; }
    var off = 0u;
    for (var d = 0u; d < cols; d = d + 1u) { off = off + ix[2u * (e * cols + d)] * p.shape[2u * cols + d]; }
    var acc: T = {{ZERO}};
    var j = i;
    loop {
        if (j >= nnz) { break; }
        let f = perm[j];
        if (j > i && cmp_rows(perm[j - 1u], f, cols, cols) != 0) { break; }
        acc = ff_sum(acc, {{LOAD}});
        j = j + 1u;
    }
    out[off] = {{STORE}};
}
