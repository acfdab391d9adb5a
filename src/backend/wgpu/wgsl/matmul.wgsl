// The tiled matmul, shared by matmul and the fused matmul: 64x64 outputs per workgroup of
// 16x16 threads, each thread a 4x4 register block; K in steps of 16 through workgroup
// memory tiles. Transposes are operand strides; batch dims broadcast (stride 0).
// The bindings (in0, in1, epilogue inputs, out, p: Params) come before this text.
// Placeholders (in double braces below): TA_W/TB_W the tiles' row lengths (16/64 plus the padding),
// LOAD_A/LOAD_B an operand element (in0/in1 at ao/bo, row gr/hr, column gc/hc) as
// a T, EPI_DECL/EPI_BATCH the epilogue's declarations and per-batch-dim updates (dim
// d, coordinate c; empty for a plain matmul), STORE the statement writing acc[q][w], the
// output at row r and column c (offset oo + r * n + c).
// Needs the alias `T`.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_rs: u32, // a's row and column strides
    a_cs: u32,
    b_rs: u32, // b's row and column strides
    b_cs: u32,
    nbd: u32,  // batch dims
    // batch dims[nbd], a's batch strides[nbd], b's batch strides[nbd] (0 where
    // broadcast); a fused matmul's epilogue strides and scalar words follow
    batch: array<u32>,
}

var<workgroup> ta: array<array<T, {{TA_W}}>, 64>;
var<workgroup> tb: array<array<T, {{TB_W}}>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let m = p.m;
    let n = p.n;
    let k = p.k;
    let a_rs = p.a_rs;
    let a_cs = p.a_cs;
    let b_rs = p.b_rs;
    let b_cs = p.b_cs;
    let nbd = p.nbd;
    // Batch offsets from the batch index (wg.z) over the broadcast batch dims.
    var ao = 0u;
    var bo = 0u;
    {{EPI_DECL}}
    {
        var rem = wg.z;
        for (var d = i32(nbd) - 1; d >= 0; d = d - 1) {
            let dim = p.batch[u32(d)];
            let c = rem % dim;
            rem = rem / dim;
            ao = ao + c * p.batch[nbd + u32(d)];
            bo = bo + c * p.batch[2u * nbd + u32(d)];
            {{EPI_BATCH}}
        }
    }
    let oo = wg.z * m * n;
    let row0 = wg.y * 64u;
    let col0 = wg.x * 64u;
    var acc: array<array<T, 4>, 4>;
    for (var q = 0u; q < 4u; q = q + 1u) { for (var w = 0u; w < 4u; w = w + 1u) { acc[q][w] = T(0); } }
    for (var k0 = 0u; k0 < k; k0 = k0 + 16u) {
        for (var x = li; x < 1024u; x = x + 256u) {
            let ar = x / 16u;
            let ac = x % 16u;
            let gr = row0 + ar;
            let gc = k0 + ac;
            var va = T(0);
            if (gr < m && gc < k) { va = {{LOAD_A}}; }
            ta[ar][ac] = va;
            let br = x / 64u;
            let bc = x % 64u;
            let hr = k0 + br;
            let hc = col0 + bc;
            var vb = T(0);
            if (hr < k && hc < n) { vb = {{LOAD_B}}; }
            tb[br][bc] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk = kk + 1u) {
            var av: array<T, 4>;
            var bv: array<T, 4>;
            for (var q = 0u; q < 4u; q = q + 1u) { av[q] = ta[lid.y * 4u + q][kk]; bv[q] = tb[kk][lid.x * 4u + q]; }
            for (var q = 0u; q < 4u; q = q + 1u) { for (var w = 0u; w < 4u; w = w + 1u) { acc[q][w] = acc[q][w] + av[q] * bv[w]; } }
        }
        workgroupBarrier();
    }
    for (var q = 0u; q < 4u; q = q + 1u) {
        for (var w = 0u; w < 4u; w = w + 1u) {
            let r = row0 + lid.y * 4u + q;
            let c = col0 + lid.x * 4u + w;
            if (r < m && c < n) { {{STORE}} }
        }
    }
}
