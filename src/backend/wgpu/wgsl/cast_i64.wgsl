// Casts of storage-only i64 (a device without SHADER_INT64): i64 <-> i32 on i64's two
// u32 words (low, high). i64 -> i32 wraps (keeps the low word); i32 -> i64 sign-extends.
// Placeholder (in double braces below): CAST is `i64_to_i32` or `i32_to_i64`, the function `main` calls.

struct Params {
    n: u32, // elements
}

@group(0) @binding(0) var<storage, read> in0: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> p: Params;

fn i64_to_i32(i: u32) {
    out[i] = in0[2u * i];
}

fn i32_to_i64(i: u32) {
    let v = in0[i];
    out[2u * i] = v;
    out[2u * i + 1u] = select(0u, 0xffffffffu, bitcast<i32>(v) < 0);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.n) { return; }
    {{CAST}}(i);
}
