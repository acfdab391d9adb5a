// The order of COO entries (a helper included by several sparse kernels). `ix` holds the
// indices row-major as [nnz, cols], each i64 a (low, high) pair of u32 words.
// `cmp_rows(a, b, kc, cols)`: entries a and b compared over their first `kc` index
// columns as signed 64-bit numbers, lexicographically (-1, 0 or 1).
// `before(x, y, kc, cols)`: the sort's order (by index, then entry number; the padding
// sentinel 0xffffffff last).
// No placeholders. Needs the binding `ix: array<u32>`.

fn cmp_rows(a: u32, b: u32, kc: u32, cols: u32) -> i32 {
    for (var d = 0u; d < kc; d = d + 1u) {
        let wa = 2u * (a * cols + d);
        let wb = 2u * (b * cols + d);
        let ha = bitcast<i32>(ix[wa + 1u]);
        let hb = bitcast<i32>(ix[wb + 1u]);
        if (ha != hb) { return select(1, -1, ha < hb); }
        let la = ix[wa];
        let lb = ix[wb];
        if (la != lb) { return select(1, -1, la < lb); }
    }
    return 0;
}

fn before(x: u32, y: u32, kc: u32, cols: u32) -> bool {
    if (x == 0xffffffffu) { return false; }
    if (y == 0xffffffffu) { return true; }
    let c = cmp_rows(x, y, kc, cols);
    return c < 0 || (c == 0 && x < y);
}
