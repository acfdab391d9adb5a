// The bounds check of a COO entry (a helper of the status and to_dense kernels):
// `in_bounds(e, cols)` is whether 0 <= index < dim in each of entry e's `cols` columns,
// compared as 64-bit numbers, the dims read as (low, high) word pairs from the start of
// `p.shape`.
// No placeholders. Needs the binding `ix: array<u32>` (as in sparse_rows.wgsl) and a `p`
// whose Params ends in `shape: array<u32>`.

fn in_bounds(e: u32, cols: u32) -> bool {
    for (var d = 0u; d < cols; d = d + 1u) {
        let w = 2u * (e * cols + d);
        let lo = ix[w];
        let hi = ix[w + 1u];
        let dl = p.shape[2u * d];
        let dh = p.shape[2u * d + 1u];
        if (bitcast<i32>(hi) < 0 || hi > dh || (hi == dh && lo >= dl)) { return false; }
    }
    return true;
}
