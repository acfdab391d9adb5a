// The scan's last step: each block of 256 words of out[off .. off + n] adds the scanned
// total of the blocks before it (out[up + block - 1]).
// No placeholders.

struct Params {
    n: u32,   // words (threads)
    off: u32, // where they start
    up: u32,  // where the scanned block totals are
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<storage, read> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.n) { return; }
    let blk = i / 256u;
    if (blk > 0u) { out[p.off + i] = out[p.off + i] + out[p.up + blk - 1u]; }
}
