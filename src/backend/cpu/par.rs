//! When and how kernels split work across rayon: one threshold, one chunking rule.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// Keeps one pool worker awake, taking the pool's jobs as soon as they appear, while plans
/// run and for [`SPIN_LINGER`] after the last one ends. Between a plan's parallel steps come
/// serial ones of 20-200 µs; rayon's idle workers fall asleep after a few µs, and waking one
/// costs 25-65 µs (measured on a two-block matmul inside a training step). Eigen's pool under
/// TensorFlow spins before sleeping for the same reason.
///
/// One spinner serves every plan running at once (a plan inside another's `cond`, plans on
/// several user threads): each holds a `KeepAwake`, and the spinner stays while any does.
/// It lingers after the last one so that a training loop's next step finds it still awake:
/// when each plan had to start its own spinner, the next step usually began before the last
/// one had noticed its end, and 38% of back-to-back MLP steps ran with no spinner at all.
/// Only from a thread outside the pool (a job of our own in a worker's deque could end up
/// run by the plan's thread itself, and wait on itself). The spinner also gives up after
/// [`SPIN_IDLE`] without work, so a plan's long serial step lets its worker sleep.
pub(crate) struct KeepAwake(());

/// How long the spinner waits for a job, while plans run, before it lets its worker sleep.
const SPIN_IDLE: Duration = Duration::from_millis(2);

/// How long the spinner stays after the last plan has ended: the gap between two steps of a
/// training loop (its data pipeline's batching included) is a few µs to tens of µs.
const SPIN_LINGER: Duration = Duration::from_micros(250);

/// Plans now holding a `KeepAwake`.
static WANTED: AtomicUsize = AtomicUsize::new(0);

/// Whether the spinner job is alive (at most one is).
static SPINNING: AtomicBool = AtomicBool::new(false);

impl KeepAwake {
    pub(crate) fn start() -> Option<KeepAwake> {
        if rayon::current_num_threads() < 2 || rayon::current_thread_index().is_some() {
            return None;
        }
        // SeqCst here and in `spin`: a plan that starts while the spinner leaves either sees
        // it gone (and starts one) or is seen by it (and it stays); never neither.
        WANTED.fetch_add(1, Ordering::SeqCst);
        if !SPINNING.swap(true, Ordering::SeqCst) {
            rayon::spawn(spin);
        }
        Some(KeepAwake(()))
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        WANTED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The spinner: runs the pool's jobs as they come until nobody has wanted it for
/// [`SPIN_LINGER`], or no job has come for [`SPIN_IDLE`].
fn spin() {
    let (mut last_job, mut last_wanted) = (Instant::now(), Instant::now());
    loop {
        if take_posted() || matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
            last_job = Instant::now();
            continue;
        }
        let now = Instant::now();
        let wanted = WANTED.load(Ordering::SeqCst) > 0;
        if wanted {
            last_wanted = now;
        }
        if now - last_job > SPIN_IDLE {
            SPINNING.store(false, Ordering::SeqCst);
            return;
        }
        if !wanted && (now - last_wanted > SPIN_LINGER) {
            SPINNING.store(false, Ordering::SeqCst);
            // A plan that started just now may have seen the flag still set: stay for it.
            if WANTED.load(Ordering::SeqCst) == 0 || SPINNING.swap(true, Ordering::SeqCst) {
                return;
            }
            (last_job, last_wanted) = (now, now);
        }
        std::thread::yield_now();
    }
}

/// Whether [`join2`] would hand its second job to an awake spinner from this thread.
pub(crate) fn spinner_awake() -> bool {
    SPINNING.load(Ordering::Acquire) && rayon::current_thread_index().is_none()
}

/// A job posted to the spinner by [`join2`]: lives on the poster's stack until `done`.
struct Posted {
    run: unsafe fn(*const ()),
    data: *const (),
    /// Set by the spinner once it has finished the job.
    done: AtomicBool,
    /// The job's panic, if it panicked on the spinner (written before `done`).
    panic: std::cell::UnsafeCell<Option<Box<dyn std::any::Any + Send>>>,
}

/// The one job slot the spinner looks at before the pool's queues.
static MAILBOX: AtomicPtr<Posted> = AtomicPtr::new(std::ptr::null_mut());

/// Runs the posted job, if any; true if there was one.
fn take_posted() -> bool {
    let p = MAILBOX.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if p.is_null() {
        return false;
    }
    // SAFETY: `join2` keeps the job alive until it sees `done`, the last thing done here with
    // it; taking it out of the slot made this thread its only runner, and its poster reads
    // `panic` only after `done`.
    unsafe {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ((*p).run)((*p).data))) {
            *(*p).panic.get() = Some(e);
        }
        (*p).done.store(true, Ordering::Release);
    }
    true
}

/// Runs `a` here and `b` on another thread at the same time, like `rayon::join` from a
/// thread outside the pool, but handing `b` to the spinner directly when one is awake: a job
/// injected into the pool's queues also wakes its sleeping worker, a third thread that then
/// competes with the two doing the work (on two cores, the MLP step's two big products each
/// took 8-15 µs longer, with ~27 preemptions of each worker per step; the hand-off has none).
/// `b` runs here after `a` if the spinner has not taken it by then.
pub(crate) fn join2<A: FnOnce() + Send, B: FnOnce() + Send>(a: A, b: B) {
    fn pool<A: FnOnce() + Send, B: FnOnce() + Send>(a: A, b: B) {
        rayon::in_place_scope(|s| {
            s.spawn(|_| b());
            a();
        })
    }
    if !spinner_awake() {
        return pool(a, b);
    }
    unsafe fn call<B: FnOnce()>(d: *const ()) {
        // SAFETY: `d` points to the `Option<B>` below, alive until the job is done.
        if let Some(b) = unsafe { (*(d as *mut Option<B>)).take() } {
            b()
        }
    }
    let mut b = Some(b);
    let job = Posted {
        run: call::<B>,
        data: &raw mut b as *const (),
        done: AtomicBool::new(false),
        panic: std::cell::UnsafeCell::new(None),
    };
    let jp = &raw const job as *mut Posted;
    if MAILBOX.compare_exchange(std::ptr::null_mut(), jp, Ordering::AcqRel, Ordering::Acquire).is_err() {
        // Another thread's job holds the slot.
        let b = b.take();
        return pool(a, move || b.map_or((), |b| b()));
    }
    /// Takes the job back if the spinner has not, else waits for it: on `a`'s panic too, the
    /// job must not outlive this frame.
    struct Reclaim<'a>(&'a Posted);
    impl Drop for Reclaim<'_> {
        fn drop(&mut self) {
            let jp = self.0 as *const Posted as *mut Posted;
            if MAILBOX.compare_exchange(jp, std::ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
                // SAFETY: taken back out of the slot: nobody else runs it.
                unsafe { (self.0.run)(self.0.data) };
                return;
            }
            let mut spins = 0u32;
            while !self.0.done.load(Ordering::Acquire) {
                spins += 1;
                if spins < 4096 { std::hint::spin_loop() } else { std::thread::yield_now() }
            }
        }
    }
    let guard = Reclaim(&job);
    a();
    drop(guard);
    // SAFETY: the job is done (or was run here); nobody writes `panic` any more.
    if let Some(e) = unsafe { (*job.panic.get()).take() } {
        std::panic::resume_unwind(e);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::{KeepAwake, SPINNING, WANTED, join2};

    fn wait_until(what: impl Fn() -> bool) -> bool {
        let t = Instant::now();
        while !what() {
            if t.elapsed() > Duration::from_secs(5) {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    /// Whether, within 5 s, no plan holds the spinner and it has left.
    fn spinner_leaves() -> bool {
        wait_until(|| !SPINNING.load(Ordering::SeqCst) && WANTED.load(Ordering::SeqCst) == 0)
    }

    #[test]
    fn one_spinner_serves_every_plan_never_inside_the_pool_and_leaves_after_the_last() {
        if rayon::current_num_threads() < 2 {
            return; // nothing to keep awake
        }
        let a = KeepAwake::start().expect("a plan outside the pool gets the spinner");
        let b = KeepAwake::start().expect("a second plan shares it");
        assert!(WANTED.load(Ordering::SeqCst) >= 2);
        // A parallel job still runs to completion while the spinner holds a worker.
        let (sum, one) = rayon::join(|| (0..1000u64).sum::<u64>(), || 1);
        assert_eq!((sum, one), (499_500, 1));
        // From inside the pool: never (the job could end up waiting on itself).
        assert!(rayon::scope(|_| KeepAwake::start()).is_none());
        drop(a);
        // Back to back: the next plan finds the lingering spinner (or starts one).
        drop(b);
        let c = KeepAwake::start().expect("the next plan gets the spinner");
        let (sum, one) = rayon::join(|| (0..10u64).sum::<u64>(), || 1);
        assert_eq!((sum, one), (45, 1));
        drop(c);
        // Other tests' plans may hold it a while; once none does, it leaves.
        assert!(spinner_leaves(), "the spinner did not leave after the last plan ended");
    }

    #[test]
    fn plans_starting_and_ending_at_random_leave_no_spinner_behind() {
        if rayon::current_num_threads() < 2 {
            return;
        }
        // Four threads start and end plans around the linger time, when the spinner may be
        // leaving: the count must balance and the spinner must leave once they are done.
        std::thread::scope(|s| {
            for t in 0..4u64 {
                s.spawn(move || {
                    for i in 0..200u64 {
                        drop(KeepAwake::start().expect("outside the pool"));
                        std::thread::sleep(Duration::from_micros(150 + (i * 37 + t * 101) % 200));
                    }
                });
            }
        });
        assert!(spinner_leaves(), "the spinner outlived every plan");
    }

    #[test]
    fn join2_runs_both_sides_at_once_handed_to_the_spinner_or_to_the_pool() {
        if rayon::current_num_threads() < 2 {
            return;
        }
        // Held: `b` is posted to the spinner; not held, it goes to the pool (unless another
        // test's plan holds the spinner). Either way `a` can wait for `b` to start.
        for held in [true, false] {
            let k = if held { KeepAwake::start() } else { None };
            let started = std::sync::atomic::AtomicBool::new(false);
            let b_thread = std::sync::Mutex::new(None);
            join2(
                || assert!(wait_until(|| started.load(Ordering::SeqCst)), "b did not run beside a"),
                || {
                    *b_thread.lock().unwrap() = Some(std::thread::current().id());
                    started.store(true, Ordering::SeqCst);
                },
            );
            let b_thread = b_thread.lock().unwrap().expect("b ran");
            assert_ne!(b_thread, std::thread::current().id());
            drop(k);
        }
    }

    #[test]
    fn join2_passes_on_either_sides_panic_once_both_are_done() {
        use std::panic::{AssertUnwindSafe, catch_unwind};
        let _k = KeepAwake::start();
        let message = |e: Box<dyn std::any::Any + Send>| e.downcast_ref::<&str>().map(|s| s.to_string());
        let b_done = std::sync::atomic::AtomicBool::new(false);
        let r = catch_unwind(AssertUnwindSafe(|| {
            join2(
                || panic!("side a"),
                || {
                    std::thread::sleep(Duration::from_millis(5));
                    b_done.store(true, Ordering::SeqCst);
                },
            )
        }));
        assert_eq!(r.map_err(message), Err(Some("side a".to_string())));
        assert!(b_done.load(Ordering::SeqCst), "returned before b was done");
        let r = catch_unwind(AssertUnwindSafe(|| {
            join2(|| std::thread::sleep(Duration::from_millis(5)), || panic!("side b"))
        }));
        assert_eq!(r.map_err(message), Err(Some("side b".to_string())));
    }
}
