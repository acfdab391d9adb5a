// Seeded random values with the CPU's generator (crate::random): Philox-4x32-10, element i
// from counter i / 2 under the 64-bit seed; even elements use words (x, y) of the block,
// odd ones (z, w). Uniform f32 values are bit-identical to the CPU's (the 53-bit draw
// rounded to f32 exactly, in integers); normal f32 values use Box-Muller in f32.
// Placeholders (in double braces below): ELEM the output's storage element (u32 for f32, f64), DRAW the
// draw function (`uniform_f32`, `normal_f32`, or random_f64.wgsl's), STORE `v` as a
// stored element.

struct Params {
    n: u32,       // elements
    seed_lo: u32,
    seed_hi: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<{{ELEM}}>;
@group(0) @binding(1) var<storage, read> p: Params;

// (hi, lo) of a * b.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu; let a1 = a >> 16u; let b0 = b & 0xffffu; let b1 = b >> 16u;
    let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    return vec2(p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u), (mid << 16u) | (p00 & 0xffffu));
}

fn philox(ctr_lo: u32, ctr_hi: u32, k_lo: u32, k_hi: u32) -> vec4<u32> {
    var c = vec4(ctr_lo, ctr_hi, 0x5EED0001u, 0u);
    var k0 = k_lo; var k1 = k_hi;
    for (var r = 0; r < 10; r = r + 1) {
        let p0 = mul_wide(0xD2511F53u, c.x);
        let p1 = mul_wide(0xCD9E8D57u, c.z);
        c = vec4(p1.x ^ c.y ^ k0, p1.y, p0.x ^ c.w ^ k1, p0.y);
        k0 = k0 + 0x9E3779B9u; k1 = k1 + 0xBB67AE85u;
    }
    return c;
}

// The 53-bit integer (hi:21 bits, lo:32 bits) times 2^-53, rounded to f32 to nearest even.
fn unit53(lo: u32, hi: u32) -> f32 {
    var msb: i32;
    if (hi != 0u) { msb = 32 + i32(firstLeadingBit(hi)); } else if (lo != 0u) { msb = i32(firstLeadingBit(lo)); } else { return 0.0; }
    if (msb < 24) { return ldexp(f32(lo), -53); }
    let s = u32(msb - 23);
    var q = (lo >> s) | (hi << (32u - s));
    let rem = lo & ((1u << s) - 1u);
    let half = 1u << (s - 1u);
    if (rem > half || (rem == half && (q & 1u) == 1u)) { q = q + 1u; }
    return ldexp(f32(q), i32(s) - 53);
}

fn uniform_f32(i: u32, w: vec4<u32>) -> f32 {
    let pr = select(vec2(w.z, w.w), vec2(w.x, w.y), (i & 1u) == 0u);
    return min(unit53((pr.x << 21u) | (pr.y >> 11u), pr.x >> 11u), bitcast<f32>(0x3f7fffffu));
}

fn normal_f32(i: u32, w: vec4<u32>) -> f32 {
    // u1 = 1 - unit(w0, w1) in (0, 1], from 2^53 - N exactly.
    let nl = (w.x << 21u) | (w.y >> 11u);
    let nh = w.x >> 11u;
    let ml = 0u - nl;
    let mh = (1u << 21u) - nh - select(0u, 1u, nl != 0u);
    let u1 = unit53(ml, mh);
    let u2 = unit53((w.z << 21u) | (w.w >> 11u), w.z >> 11u);
    let r = sqrt(-2.0 * log(u1));
    let t = 6.283185307179586 * u2;
    return select(r * sin(t), r * cos(t), (i & 1u) == 0u);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.n) { return; }
    let w = philox(i >> 1u, 0u, p.seed_lo, p.seed_hi);
    let v = {{DRAW}}(i, w);
    out[i] = {{STORE}};
}
