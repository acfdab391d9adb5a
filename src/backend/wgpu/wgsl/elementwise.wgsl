// The entry point of an elementwise kernel (codegen::Ew: unary, binary, select, cast and
// fused loop programs): one thread per output element. Before this text come the alias T,
// the helpers and the bindings (in0.., out, p: Params).
// Placeholder (in double braces below): BODY the generated body: broadcast offsets o0.. of the strided loads,
// the loads r0.., the program's SSA lines and the store of out[i].

struct Params {
    n: u32,    // output elements
    rank: u32, // of the output shape
    // dims[rank], then rank strides per strided load (in load order, 0 where broadcast),
    // then the host scalars' words (one each, two for f64 and i64)
    shape: array<u32>,
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    let n = p.n;
    if (i >= n) { return; }
    let rank = p.rank;
{{BODY}}
}
