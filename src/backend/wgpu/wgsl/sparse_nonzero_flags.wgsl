// NonZero's flags: out[i] = 1 where element i is not zero (from its bits: NaN counts,
// -0.0 does not), else 0 (then scanned into 1-based ranks).
// Placeholder (in double braces below): NONZERO whether element i of `x` (the input's
// words) is not zero, a bool.

struct Params {
    n: u32, // elements (threads)
}

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.n) { return; }
    out[i] = select(0u, 1u, {{NONZERO}});
}
