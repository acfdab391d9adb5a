// The index check of COO indices, one status word per entry (then reduced to their
// minimum, the first bad entry): entry * 4 + problem (0 out of bounds, 1 repeated, 2 out
// of order), 0x7ffffffe (UNSORTED) for rows not sorted, or 0x7fffffff (OK).
// Checks: 0 bounds only (SparseToDense); 1 bounds, then the order against the entry
// before (SparseValidate); 2 bounds, and whether rows are sorted (SparseMatMul).
// No placeholders. Needs sparse_rows.wgsl and sparse_bounds.wgsl.

struct Params {
    nnz: u32,    // entries (threads)
    cols: u32,   // index columns (the dense rank)
    checks: u32, // 0 bounds, 1 canonical, 2 rows
    // dims[cols] as (low, high) word pairs
    shape: array<u32>,
}

@group(0) @binding(0) var<storage, read> ix: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.nnz) { return; }
    let cols = p.cols;
    let mode = p.checks;
    var code = 0x7fffffffu;
    if (!in_bounds(i, cols)) {
        code = i * 4u;
    } else if (mode == 1u && i > 0u) {
        let c = cmp_rows(i - 1u, i, cols, cols);
        if (c > 0) { code = i * 4u + 2u; } else if (c == 0) { code = i * 4u + 1u; }
    } else if (mode == 2u && i > 0u) {
        if (cmp_rows(i - 1u, i, 1u, cols) > 0) { code = 0x7ffffffeu; }
    }
    out[i] = code;
}
