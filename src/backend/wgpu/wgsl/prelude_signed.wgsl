// The ff_* helpers of a signed integer type (codegen::prelude, after `alias T = ...;`).
// Division by zero gives 0 and floor division rounds toward -inf, as on the CPU; a
// negative exponent keeps only 1 and -1.
// Placeholders (in double braces below): T the type (i32, i64), S its literal suffix ("" or li), E the
// exponent (b >= 0) as u32 (the CPU saturates an i64 exponent at u32::MAX).

fn ff_isnan(x: {{T}}) -> bool { return false; }
fn ff_max(a: {{T}}, b: {{T}}) -> {{T}} { return max(a, b); }
fn ff_min(a: {{T}}, b: {{T}}) -> {{T}} { return min(a, b); }
fn ff_relu(x: {{T}}) -> {{T}} { return max(x, 0{{S}}); }
fn ff_floor_div(a: {{T}}, b: {{T}}) -> {{T}} {
    if (b == 0{{S}}) { return 0{{S}}; }
    if (b == -1{{S}}) { return 0{{S}} - a; }
    let q = a / b;
    if ((a % b != 0{{S}}) && ((a < 0{{S}}) != (b < 0{{S}}))) { return q - 1{{S}}; }
    return q;
}
fn ff_pow(a: {{T}}, b: {{T}}) -> {{T}} {
    if (b < 0{{S}}) {
        if (a == 1{{S}}) { return 1{{S}}; }
        if (a == -1{{S}}) { if (b % 2{{S}} == 0{{S}}) { return 1{{S}}; } return a; }
        return 0{{S}};
    }
    var e = u32({{E}});
    var base = a;
    var r = 1{{S}};
    loop {
        if (e == 0u) { break; }
        if ((e & 1u) == 1u) { r = r * base; }
        base = base * base;
        e = e >> 1u;
    }
    return r;
}
