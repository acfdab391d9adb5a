// SparseMatMul's row pointers: out[r] = the first position (in row order) whose entry's
// row is >= r, by binary search, for r in 0..=m. Rows are the low words of column 0 (in
// bounds, checked by the status).
// Placeholders (in double braces below): PERM the binding of `perm` (rows not sorted) or
// nothing, OUT and P the binding numbers of `out` and `p`, AT the entry at position
// `q` in row order (`q` or `perm[q]`).

struct Params {
    rows: u32, // m + 1 (threads)
    nnz: u32,  // entries
}

@group(0) @binding(0) var<storage, read> ix: array<u32>;
{{PERM}}
@group(0) @binding({{OUT}}) var<storage, read_write> out: array<u32>;
@group(0) @binding({{P}}) var<storage, read> p: Params;

fn at(q: u32) -> u32 { return {{AT}}; }

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.rows) { return; }
    var lo = 0u;
    var hi = p.nnz;
    loop {
        if (lo >= hi) { break; }
        let mid = lo + (hi - lo) / 2u;
        if (ix[4u * at(mid)] < i) { lo = mid + 1u; } else { hi = mid; }
    }
    out[i] = lo;
}
