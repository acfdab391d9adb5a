//! When and how kernels split work across rayon: one threshold, one chunking rule.

use rayon::prelude::*;

/// Below this many elements a kernel runs on the calling thread: rayon's fork/join costs
/// a few microseconds, more than the work.
pub(crate) const PAR_MIN: usize = 1 << 15;

/// Elements per rayon task: large enough to amortise scheduling, small enough to balance.
#[inline]
pub(crate) fn chunk_len(n: usize) -> usize {
    (n / (rayon::current_num_threads() * 4)).max(1 << 13)
}

/// `out[i] = f(x[i])`, in parallel when large.
#[inline]
pub(crate) fn map1<T: Copy + Sync, U: Send>(x: &[T], out: &mut [U], f: impl Fn(T) -> U + Sync) {
    debug_assert_eq!(x.len(), out.len());
    let run = |o: &mut [U], x: &[T]| {
        for (o, &x) in o.iter_mut().zip(x) {
            *o = f(x);
        }
    };
    if out.len() >= PAR_MIN {
        let c = chunk_len(out.len());
        out.par_chunks_mut(c).zip(x.par_chunks(c)).for_each(|(o, x)| run(o, x));
    } else {
        run(out, x);
    }
}

/// `out[i] = f(a[i], b[i])`, in parallel when large.
#[inline]
pub(crate) fn map2<T: Copy + Sync, U: Send>(a: &[T], b: &[T], out: &mut [U], f: impl Fn(T, T) -> U + Sync) {
    debug_assert!(a.len() == out.len() && b.len() == out.len());
    let run = |o: &mut [U], a: &[T], b: &[T]| {
        for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
            *o = f(a, b);
        }
    };
    if out.len() >= PAR_MIN {
        let c = chunk_len(out.len());
        out.par_chunks_mut(c).zip(a.par_chunks(c)).zip(b.par_chunks(c)).for_each(|((o, a), b)| run(o, a, b));
    } else {
        run(out, a, b);
    }
}
