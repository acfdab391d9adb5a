// The ff_* helpers of a float type (codegen::prelude, after `alias T = ...;`): NaN test,
// NaN-propagating max/min, relu, floor division. NaN decisions are made on the bits:
// Vulkan lets drivers assume no NaN in float math, and NVIDIA's turned `a > b || isnan(a)
// ? a : b` and `x < 0 ? 0 : x` into max instructions that drop NaN. `ff_gtbits` is a > b
// for the bits of non-NaN floats (+0 and -0 equal): sign-magnitude mapped to an ordered key.
// Placeholders (in double braces below): T the type (f32, f64), U its bits (u32, u64), S the bits'
// literal suffix (u, lu), M the magnitude mask, I infinity's bits.

fn ff_nanbits(u: {{U}}) -> bool { return (u & {{M}}) > {{I}}; }
fn ff_isnan(x: {{T}}) -> bool { return ff_nanbits(bitcast<{{U}}>(x)); }
fn ff_gtbits(a: {{U}}, b: {{U}}) -> bool {
    let ka = select(a | ~{{M}}, ~a, a > {{M}});
    let kb = select(b | ~{{M}}, ~b, b > {{M}});
    return ka > kb && ((a | b) & {{M}}) != 0{{S}};
}
fn ff_max(a: {{T}}, b: {{T}}) -> {{T}} {
    let ua = bitcast<{{U}}>(a);
    let ub = bitcast<{{U}}>(b);
    return bitcast<{{T}}>(select(ub, ua, ff_nanbits(ua) || (!ff_nanbits(ub) && ff_gtbits(ua, ub))));
}
fn ff_min(a: {{T}}, b: {{T}}) -> {{T}} {
    let ua = bitcast<{{U}}>(a);
    let ub = bitcast<{{U}}>(b);
    return bitcast<{{T}}>(select(ub, ua, ff_nanbits(ua) || (!ff_nanbits(ub) && ff_gtbits(ub, ua))));
}
// 0 for x < 0 (not -0.0, not NaN): above the sign bit, up to -inf.
fn ff_relu(x: {{T}}) -> {{T}} { let u = bitcast<{{U}}>(x); return bitcast<{{T}}>(select(u, 0{{S}}, u > ~{{M}} && u <= (~{{M}} | {{I}}))); }
fn ff_floor_div(a: {{T}}, b: {{T}}) -> {{T}} { return floor(a / b); }
