// The workgroup tree of the reductions (`reduce.wgsl` and the fused reduce): each of the
// 64 threads of a workgroup gives its partial `acc`; `tree_total` combines them pairwise
// with `comb` in workgroup memory and returns the total (every thread calls it: it holds
// barriers). Needs the alias `T` and `fn comb(a: T, b: T) -> T`.

var<workgroup> sh: array<T, 64>;

fn tree_total(li: u32, acc: T) -> T {
    sh[li] = acc;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (li < s) { sh[li] = comb(sh[li], sh[li + s]); }
        workgroupBarrier();
    }
    return sh[0];
}
