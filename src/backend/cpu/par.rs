//! When and how kernels split work across rayon: one threshold, one chunking rule.

use rayon::prelude::*;

/// Below this many elements a kernel runs on the calling thread. A fork/join from a user's
/// thread costs a few microseconds when the pool is hot, but that thread sleeps until the
/// workers finish, and waking it (and them) costs 15-40 µs on this class of machine: a
/// relu-gradient epilogue over 32k elements took 28 µs split and 11 µs on one thread
/// inside a training step. At 128k elements one thread needs 20-40 µs, about the break-even.
pub(crate) const PAR_MIN: usize = 1 << 17;

/// Elements per rayon task: large enough to amortise scheduling, small enough to balance.
#[inline]
pub(crate) fn chunk_len(n: usize) -> usize {
    (n / (rayon::current_num_threads() * 4)).max(1 << 13)
}

/// `out[i] = f(x[i])`, in parallel when large, compiled for this CPU (`simd`).
#[inline]
pub(crate) fn map1<T: Copy + Sync, U: Copy + Send>(x: &[T], out: &mut [U], f: impl Fn(T) -> U + Sync) {
    debug_assert_eq!(x.len(), out.len());
    let run = |o: &mut [U], x: &[T]| super::simd::map_into(x, o, &f);
    if out.len() >= PAR_MIN {
        let c = chunk_len(out.len());
        out.par_chunks_mut(c).zip(x.par_chunks(c)).for_each(|(o, x)| run(o, x));
    } else {
        run(out, x);
    }
}

/// `out[i] = f(a[i], b[i])`, in parallel when large, compiled for this CPU (`simd`).
#[inline]
pub(crate) fn map2<T: Copy + Sync, U: Copy + Send>(a: &[T], b: &[T], out: &mut [U], f: impl Fn(T, T) -> U + Sync) {
    debug_assert!(a.len() == out.len() && b.len() == out.len());
    let run = |o: &mut [U], a: &[T], b: &[T]| super::simd::zip_into(a, b, o, &f);
    if out.len() >= PAR_MIN {
        let c = chunk_len(out.len());
        out.par_chunks_mut(c).zip(a.par_chunks(c)).zip(b.par_chunks(c)).for_each(|((o, a), b)| run(o, a, b));
    } else {
        run(out, a, b);
    }
}

/// Keeps one pool worker awake, taking the pool's jobs as soon as they appear, while a plan
/// runs (dropped at its end). Between a plan's parallel steps come serial ones of 20-200 µs;
/// rayon's idle workers fall asleep after a few µs, and waking one costs 25-65 µs (measured
/// on a two-block matmul inside a training step). Eigen's pool under TensorFlow spins before
/// sleeping for the same reason. Only from a thread outside the pool (a job of our own in a
/// worker's deque could end up run by the plan's thread itself, and wait on itself), and
/// one at a time in the process: the spinner gives up after [`SPIN_IDLE`] without work.
pub(crate) struct KeepAwake(std::sync::Arc<std::sync::atomic::AtomicBool>);

/// How long the spinner waits for a job before it lets its worker sleep.
const SPIN_IDLE: std::time::Duration = std::time::Duration::from_millis(2);

static SPINNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl KeepAwake {
    pub(crate) fn start() -> Option<KeepAwake> {
        use std::sync::atomic::Ordering;
        if rayon::current_num_threads() < 2 || rayon::current_thread_index().is_some() {
            return None;
        }
        if SPINNING.swap(true, Ordering::AcqRel) {
            return None;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        rayon::spawn(move || {
            let mut last = std::time::Instant::now();
            while !flag.load(Ordering::Acquire) {
                match rayon::yield_now() {
                    Some(rayon::Yield::Executed) => last = std::time::Instant::now(),
                    _ if last.elapsed() > SPIN_IDLE => break,
                    _ => std::thread::yield_now(),
                }
            }
            SPINNING.store(false, Ordering::Release);
        });
        Some(KeepAwake(stop))
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::{KeepAwake, SPINNING};

    fn wait_until_idle() -> bool {
        let t = Instant::now();
        while SPINNING.load(Ordering::Acquire) {
            if t.elapsed() > Duration::from_secs(5) {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    #[test]
    fn one_spinner_at_a_time_never_inside_the_pool_and_gone_after_drop() {
        if rayon::current_num_threads() < 2 {
            return; // nothing to keep awake
        }
        // Other tests' plans may hold the spinner: wait for them, then take it.
        let mut awake = None;
        for _ in 0..100 {
            assert!(wait_until_idle(), "a spinner outlived its plan");
            awake = KeepAwake::start();
            if awake.is_some() {
                break;
            }
        }
        let awake = awake.expect("no spinner could start");
        assert!(KeepAwake::start().is_none(), "a second spinner while one runs");
        // A parallel job still runs to completion while the spinner holds a worker.
        let (sum, one) = rayon::join(|| (0..1000u64).sum::<u64>(), || 1);
        assert_eq!((sum, one), (499_500, 1));
        // From inside the pool: never (the job could end up waiting on itself).
        assert!(rayon::scope(|_| KeepAwake::start()).is_none());
        drop(awake);
        assert!(wait_until_idle(), "the spinner did not stop after its plan ended");
    }
}
