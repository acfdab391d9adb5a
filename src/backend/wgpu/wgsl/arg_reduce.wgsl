// argmax/argmin along one axis (x viewed as [outer, row, inner]): one workgroup of 64
// threads per output; the first extreme wins, a NaN counting as the extreme (as the CPU
// and NumPy). The i64 result is written as two u32 words (no 64-bit feature needed).
// Placeholders (in double braces below): ELEM the storage element, CMP `>` (argmax) or `<` (argmin),
// LOAD the element at `in0[base + j * inner]` as a T.
// Needs the alias `T` and the ff_* helpers (codegen::prelude).

struct Params {
    n_out: u32, // outputs: outer * inner
    row: u32,   // size of the reduced axis
    inner: u32, // elements after it (at least 1)
}

@group(0) @binding(0) var<storage, read> in0: array<{{ELEM}}>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> p: Params;

var<workgroup> sv: array<T, 64>;
var<workgroup> si: array<u32, 64>;

// Whether (vb, ib) beats (va, ia): NaN first, then the extreme, then the lower index.
fn better(va: T, ia: u32, vb: T, ib: u32) -> bool {
    if (ib == 0xffffffffu) { return false; }
    if (ia == 0xffffffffu) { return true; }
    if (ff_isnan(va)) { return ff_isnan(vb) && ib < ia; }
    if (ff_isnan(vb)) { return true; }
    if (vb {{CMP}} va) { return true; }
    return vb == va && ib < ia;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = wg.x + wg.y * nwg.x;
    if (o >= p.n_out) { return; }
    let r = p.row;
    let inner = p.inner;
    let base = (o / inner) * r * inner + o % inner;
    var bv: T = T(0);
    var bi = 0xffffffffu;
    for (var j = li; j < r; j = j + 64u) {
        let v = {{LOAD}};
        if (better(bv, bi, v, j)) { bv = v; bi = j; }
    }
    sv[li] = bv;
    si[li] = bi;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (li < s && better(sv[li], si[li], sv[li + s], si[li + s])) { sv[li] = sv[li + s]; si[li] = si[li + s]; }
        workgroupBarrier();
    }
    if (li == 0u) {
        out[2u * o] = select(si[0], 0u, si[0] == 0xffffffffu);
        out[2u * o + 1u] = 0u;
    }
}
