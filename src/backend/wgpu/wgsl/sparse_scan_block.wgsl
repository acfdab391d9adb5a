// The scan's first step: the inclusive prefix sum of each block of 256 words of
// out[off .. off + n], in place in workgroup memory, each block's total stored at
// out[up + block].
// No placeholders.

struct Params {
    n: u32,   // words scanned (threads)
    off: u32, // where they start
    up: u32,  // where the block totals go
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<storage, read> p: Params;

var<workgroup> sh: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    let n = p.n;
    let off = p.off;
    let blk = wg.x + wg.y * nwg.x;
    var v = 0u;
    if (i < n) { v = out[off + i]; }
    sh[li] = v;
    workgroupBarrier();
    for (var s = 1u; s < 256u; s = s << 1u) {
        var add = 0u;
        if (li >= s) { add = sh[li - s]; }
        workgroupBarrier();
        sh[li] = sh[li] + add;
        workgroupBarrier();
    }
    if (i < n) { out[off + i] = sh[li]; }
    if (li == 255u && blk < (n + 255u) / 256u) { out[p.up + blk] = sh[li]; }
}
