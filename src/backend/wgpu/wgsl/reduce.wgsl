// reduce (sum, mean, prod, max, min) over any axes: one workgroup of 64 threads per output
// element; each thread folds a strided part of its row, then `tree_total`
// (reduce_tree.wgsl) combines the partials. Kept and reduced axes are walked through
// their own dims and strides, so any axis set works without a transpose.
// Placeholders (in double braces below): ELEM the storage element, ID the identity, COMB the combine
// of `a` and `b`, LOAD the element at `in0[base + off]` as a T, STORE the
// total `acc` finished (mean, u8 wrap) as a stored element.
// Needs the alias `T` and the ff_* helpers (codegen::prelude).

struct Params {
    n_out: u32, // output elements (workgroups)
    row: u32,   // elements reduced into each
    kr: u32,    // kept axes
    // kept dims[kr], kept strides[kr], then rr (the reduced axes), reduced dims[rr],
    // reduced strides[rr]
    shape: array<u32>,
}

fn comb(a: T, b: T) -> T { return {{COMB}}; }

@group(0) @binding(0) var<storage, read> in0: array<{{ELEM}}>;
@group(0) @binding(1) var<storage, read_write> out: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = wg.x + wg.y * nwg.x;
    if (o >= p.n_out) { return; }
    let kr = p.kr;
    let rr = p.shape[2u * kr];
    // The output's offset in the input, over the kept axes.
    var base = 0u;
    var rem = o;
    for (var d = i32(kr) - 1; d >= 0; d = d - 1) {
        let dim = p.shape[u32(d)];
        let c = rem % dim;
        rem = rem / dim;
        base = base + c * p.shape[kr + u32(d)];
    }
    var acc: T = {{ID}};
    for (var j = li; j < p.row; j = j + 64u) {
        // Element j's offset over the reduced axes.
        var off = 0u;
        var rj = j;
        for (var d = i32(rr) - 1; d >= 0; d = d - 1) {
            let dim = p.shape[2u * kr + 1u + u32(d)];
            let c = rj % dim;
            rj = rj / dim;
            off = off + c * p.shape[2u * kr + 1u + rr + u32(d)];
        }
        acc = comb(acc, {{LOAD}});
    }
    let total = tree_total(li, acc);
    if (li == 0u) {
        let acc = total;
        out[o] = {{STORE}};
    }
}
