// `ff_round_f16(x)`: x rounded to the nearest f16 value, ties to even (a helper of the f16
// sums). Done on the bits: a driver may round an `f32(f16(x))` round trip toward zero or
// drop it (NVIDIA's gave sums 1 ulp off the CPU's).
// No placeholders.

fn ff_round_f16(x: f32) -> f32 {
    let u = bitcast<u32>(x);
    let a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) { return x; }
    if (a >= 0x477ff000u) { return bitcast<f32>((u & 0x80000000u) | 0x7f800000u); }
    if (a < 0x38800000u) { return round(x * 16777216.0) * 5.9604644775390625e-8; }
    return bitcast<f32>((u & 0x80000000u) | ((a + 0xfffu + ((a >> 13u) & 1u)) & 0xffffe000u));
}
