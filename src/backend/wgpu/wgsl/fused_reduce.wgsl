// The fused reduce (fused.rs): the elementwise program evaluated per element inside the
// reduction's loop (`fn elem(i) -> T`, generated, before this text with the bindings),
// over a row-major iteration shape whose trailing `row` elements fold into each output;
// same workgroup tree (`tree_total`, reduce_tree.wgsl), identities and NaN rules as
// reduce.wgsl. The program's result never exists as a tensor.
// Placeholders (in double braces below): ID the identity, COMB the combine of `a` and `b`, STORE the
// total `acc` finished (mean) as a stored element.

struct Params {
    n_out: u32, // outputs (workgroups)
    row: u32,   // elements folded into each
    rank: u32,  // of the iteration shape
    // dims[rank], then rank strides per strided load, then the host scalars' words
    shape: array<u32>,
}

fn comb(a: T, b: T) -> T { return {{COMB}}; }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = wg.x + wg.y * nwg.x;
    if (o >= p.n_out) { return; }
    let r = p.row;
    var acc: T = {{ID}};
    for (var j = li; j < r; j = j + 64u) {
        acc = comb(acc, elem(o * r + j));
    }
    let total = tree_total(li, acc);
    if (li == 0u) {
        let acc = total;
        out[o] = {{STORE}};
    }
}
