//! The substitution scheme of the WGSL files in `wgsl/` (loaded with `include_str!`), and
//! the kernel parameters as named structs.
//!
//! A template is plain WGSL plus `{{NAME}}` placeholders (never valid WGSL, so a leftover
//! one fails to compile; `render` also asserts in debug builds). Placeholders stand for
//! what differs per dtype or variant: an element type (`{{ELEM}}`), an expression built by
//! `codegen` (`{{LOAD}}`, `{{STORE}}`), a small variant switch. Kernels whose operand type
//! varies use the alias `T`, which `codegen::prelude` declares with the `ff_*` helpers.
//!
//! Parameters: every kernel reads a read-only storage binding `p` of a WGSL `struct` with
//! named `u32` fields, mirrored by a `#[repr(C)]` Rust struct (bytemuck `Pod`); where a
//! kernel also takes runtime-length data (dims, strides, host scalars' words) the struct
//! ends with a runtime-sized `array<u32>`, whose words follow the fixed fields (a storage
//! buffer, so no uniform-buffer padding rules apply: every field is 4 bytes, 4-aligned).

/// `template` with each `{{NAME}}` replaced by its value.
pub(crate) fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    debug_assert!(!s.contains("{{"), "a WGSL placeholder left unfilled:\n{s}");
    s
}

/// The parameter words of a kernel: its fixed fields (`head`, a `#[repr(C)]` struct of
/// `u32`s), then the runtime-length array's words (`tail`). (`Ctx::dispatch` appends a
/// spare 0 word: wgpu wants a binding to hold one element of a runtime-sized array.)
pub(crate) fn params<P: bytemuck::Pod>(head: &P, tail: &[u32]) -> Vec<u32> {
    let mut w: Vec<u32> = bytemuck::cast_slice(std::slice::from_ref(head)).to_vec();
    w.extend_from_slice(tail);
    w
}
