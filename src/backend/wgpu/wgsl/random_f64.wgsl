// The f64 draws of random.wgsl (appended to it for f64 outputs, with math::helpers' f64
// ff_log, ff_sin and ff_cos): uniform values hold the 53-bit draw exactly; normal values
// compute Box-Muller in f64 (within an ulp or two of the CPU's).

// The 53-bit draw (a:32 bits << 21 | b >> 11) times 2^-53, exactly.
fn unit64(a: u32, b: u32) -> f64 {
    return f64((u64(a) << 21u) ^ (u64(b) >> 11u)) * bitcast<f64>(0x3ca0000000000000lu);
}

fn uniform_f64(i: u32, w: vec4<u32>) -> f64 {
    let pr = select(vec2(w.z, w.w), vec2(w.x, w.y), (i & 1u) == 0u);
    return unit64(pr.x, pr.y);
}

fn normal_f64(i: u32, w: vec4<u32>) -> f64 {
    let u1 = 1.0 - unit64(w.x, w.y); // (0, 1]: log is finite
    let u2 = unit64(w.z, w.w);
    let r = sqrt(-2.0 * ff_log(u1));
    let t = 6.283185307179586 * u2;
    return select(r * ff_sin(t), r * ff_cos(t), (i & 1u) == 0u);
}
