// softmax / log-softmax along one axis (x viewed as [outer, row, inner]): one workgroup of
// 64 threads per row: the max (tree), the sum of exp(x - max) (tree), then the outputs;
// numerically stable as the CPU kernel. f16 computes in f32 and rounds once when stored.
// Placeholders (in double braces below): ELEM the storage element, LOWEST -inf as a T, LOAD_J the
// element at `in0[base + j * inner]` as a T, STORE the output of `v` (using `mx` and
// `sum`) as a stored element.
// Needs the alias `T`, ff_max (codegen::prelude) and ff_exp/ff_log (math::helpers).

struct Params {
    rows: u32,  // outer * inner
    row: u32,   // size of the axis
    inner: u32, // elements after it
}

@group(0) @binding(0) var<storage, read> in0: array<{{ELEM}}>;
@group(0) @binding(1) var<storage, read_write> out: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> p: Params;

var<workgroup> sh: array<T, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = wg.x + wg.y * nwg.x;
    if (o >= p.rows) { return; }
    let r = p.row;
    let inner = p.inner;
    let base = (o / inner) * r * inner + o % inner;
    var m: T = {{LOWEST}};
    for (var j = li; j < r; j = j + 64u) { m = ff_max(m, {{LOAD_J}}); }
    sh[li] = m;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) { if (li < s) { sh[li] = ff_max(sh[li], sh[li + s]); } workgroupBarrier(); }
    let mx = sh[0];
    workgroupBarrier();
    var acc = T(0);
    for (var j = li; j < r; j = j + 64u) { acc = acc + ff_exp({{LOAD_J}} - mx); }
    sh[li] = acc;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) { if (li < s) { sh[li] = sh[li] + sh[li + s]; } workgroupBarrier(); }
    let sum = sh[0];
    for (var j = li; j < r; j = j + 64u) {
        let v = {{LOAD_J}};
        out[base + j * inner] = {{STORE}};
    }
}
