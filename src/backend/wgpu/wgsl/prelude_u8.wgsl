// The ff_* helpers of u8 (codegen::prelude, after `alias T = u32;`): u8 computes widened
// to u32, products wrap at 256 as on the CPU; division by zero gives 0.

fn ff_isnan(x: u32) -> bool { return false; }
fn ff_max(a: u32, b: u32) -> u32 { return max(a, b); }
fn ff_min(a: u32, b: u32) -> u32 { return min(a, b); }
fn ff_relu(x: u32) -> u32 { return x; }
fn ff_floor_div(a: u32, b: u32) -> u32 { if (b == 0u) { return 0u; } return a / b; }
fn ff_pow(a: u32, b: u32) -> u32 {
    var e = b;
    var base = a;
    var r = 1u;
    loop {
        if (e == 0u) { break; }
        if ((e & 1u) == 1u) { r = (r * base) & 255u; }
        base = (base * base) & 255u;
        e = e >> 1u;
    }
    return r;
}
