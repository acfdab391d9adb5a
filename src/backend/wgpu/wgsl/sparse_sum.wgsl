// The value dtype's sum of two registers (a helper of the to_dense and segment_sum
// kernels), as the CPU's `SumK`: integers wrap, bool is or, f16 rounds after every add
// (`ff_round_f16`, sparse_round_f16.wgsl).
// Placeholder (in double braces below): SUM the sum of `a` and `b` as a T.
// Needs the alias `T` (codegen::prelude).

fn ff_sum(a: T, b: T) -> T { return {{SUM}}; }
