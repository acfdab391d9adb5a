// SparseMatMul's products: one thread per output element (r, c) of the [m, n] result
// walks row r's entries (row pointers `rp`) in entry order and adds value * bm[col, c].
// Placeholders (in double braces below): ELEM the storage element of the values, `bm`
// and the output, PERM the binding of `perm` (rows not sorted) or nothing, OUT and P the
// binding numbers of `out` and `p`, AT the entry at position `q` in row order (`q` or
// `perm[q]`), LOAD_A the value `vals[e]` and LOAD_B the element
// `bm[ix[4u * e + 2u] * n + c]` as a T, STORE the sum `acc` (u8 wrapped) as a stored element.
// Needs the alias `T` (codegen::prelude).

struct Params {
    n_out: u32, // m * n output elements (threads)
    n: u32,     // columns of bm and the output
}

@group(0) @binding(0) var<storage, read> ix: array<u32>;
@group(0) @binding(1) var<storage, read> vals: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> bm: array<{{ELEM}}>;
@group(0) @binding(3) var<storage, read> rp: array<u32>;
{{PERM}}
@group(0) @binding({{OUT}}) var<storage, read_write> out: array<{{ELEM}}>;
@group(0) @binding({{P}}) var<storage, read> p: Params;

fn at(q: u32) -> u32 { return {{AT}}; }

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.n_out) { return; }
    let n = p.n;
    let r = i / n;
    let c = i % n;
    var acc = T(0);
    for (var q = rp[r]; q < rp[r + 1u]; q = q + 1u) {
        let e = at(q);
        acc = acc + {{LOAD_A}} * {{LOAD_B}};
    }
    out[i] = {{STORE}};
}
