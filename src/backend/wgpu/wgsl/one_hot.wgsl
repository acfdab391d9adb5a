// one_hot(idx, depth): out[j, c] = (idx[j] == c), an all-zero row for an index out of
// [0, depth) (as TensorFlow).
// Placeholders (in double braces below): ELEM the output's storage element, INDEX_J index j of `in0` as
// an i32 (`index_load`), STORE_HIT the bool `hit` as a stored element.

struct Params {
    n: u32,     // output elements
    depth: u32,
}

@group(0) @binding(0) var<storage, read> in0: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.n) { return; }
    let depth = p.depth;
    let j = i / depth;
    let ix = {{INDEX_J}};
    let hit = ix >= 0 && u32(ix) == i % depth;
    out[i] = {{STORE_HIT}};
}
