// One pass of the bitonic sort of entry numbers (in place in `out`), by the order
// `before` of their indices' first `kc` columns: thread i compares and swaps one pair,
// j apart, in blocks of k.
// No placeholders. Needs sparse_rows.wgsl.

struct Params {
    pairs: u32, // half the padded length (threads)
    j: u32,     // the pair distance
    k: u32,     // the bitonic block size
    kc: u32,    // index columns compared
    cols: u32,  // index columns
}

@group(0) @binding(0) var<storage, read> ix: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.pairs) { return; }
    let j = p.j;
    let k = p.k;
    let kc = p.kc;
    let cols = p.cols;
    let a = (i / j) * 2u * j + i % j;
    let b = a + j;
    let x = out[a];
    let y = out[b];
    if (select(before(x, y, kc, cols), before(y, x, kc, cols), (a & k) == 0u)) {
        out[a] = y;
        out[b] = x;
    }
}
