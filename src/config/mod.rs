//! Process-wide settings, the analogue of `tf.config`: the dtype promotion mode,
//! `run_functions_eagerly`, the graph optimizer's options, soft device placement and the
//! device policy.
//!
//! The global setting is an atomic (one relaxed load on the hot path); a thread-local
//! override (`with_promotion_mode`) lets one scope, or one test, use another mode without
//! changing what other threads see.

pub(crate) mod optimizer;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// How an op treats two inputs of different dtypes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum PromotionMode {
    /// TensorFlow's default: different dtypes in one op are `Error::DTypeMismatch`.
    /// Host scalars are still weak and take the tensor's dtype.
    #[default]
    Strict,
    /// NumPy-style promotion by the table in the book's dtype chapter (`i32 + f32 -> f64`).
    Numpy,
}

static PROMOTION: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static PROMOTION_OVERRIDE: Cell<Option<PromotionMode>> = const { Cell::new(None) };
}

/// Sets the promotion mode for the whole process (all threads).
pub fn set_promotion_mode(mode: PromotionMode) {
    PROMOTION.store(mode as u8, Ordering::Relaxed);
}

/// The promotion mode in force on this thread.
pub fn promotion_mode() -> PromotionMode {
    if let Some(m) = PROMOTION_OVERRIDE.with(|c| c.get()) {
        return m;
    }
    match PROMOTION.load(Ordering::Relaxed) {
        0 => PromotionMode::Strict,
        _ => PromotionMode::Numpy,
    }
}

/// Runs `f` with `mode` in force on this thread only, then restores what was there.
pub fn with_promotion_mode<R>(mode: PromotionMode, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<PromotionMode>);
    impl Drop for Restore {
        fn drop(&mut self) {
            PROMOTION_OVERRIDE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(PROMOTION_OVERRIDE.with(|c| c.replace(Some(mode))));
    f()
}

static RUN_EAGERLY: AtomicBool = AtomicBool::new(false);

thread_local! {
    static RUN_EAGERLY_OVERRIDE: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Makes every traced function run its body eagerly on each call (as
/// `tf.config.run_functions_eagerly`): conversions work inside, nothing is traced, and
/// `tracing_count()` stays where it is. For debugging; switch it off to get graphs back.
pub fn run_functions_eagerly(on: bool) {
    RUN_EAGERLY.store(on, Ordering::Relaxed);
}

/// Whether traced functions run eagerly on this thread.
pub fn functions_run_eagerly() -> bool {
    RUN_EAGERLY_OVERRIDE.with(|c| c.get()).unwrap_or_else(|| RUN_EAGERLY.load(Ordering::Relaxed))
}

/// Runs `f` with `run_functions_eagerly(on)` in force on this thread only.
pub fn with_functions_run_eagerly<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            RUN_EAGERLY_OVERRIDE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(RUN_EAGERLY_OVERRIDE.with(|c| c.replace(Some(on))));
    f()
}

static OPTIMIZER: std::sync::RwLock<Option<optimizer::OptimizerOptions>> = std::sync::RwLock::new(None);

thread_local! {
    static OPTIMIZER_OVERRIDE: std::cell::RefCell<Option<optimizer::OptimizerOptions>> =
        const { std::cell::RefCell::new(None) };
}

/// Sets which graph-optimizer passes run for every traced function that does not set its
/// own (`FunctionOptions::optimizer`), as `tf.config.optimizer.set_experimental_options`.
/// Applies to functions traced afterwards.
pub fn set_optimizer_options(options: optimizer::OptimizerOptions) {
    *OPTIMIZER.write().unwrap_or_else(|p| p.into_inner()) = Some(options);
}

/// The optimizer options in force on this thread (every pass on by default).
pub fn optimizer_options() -> optimizer::OptimizerOptions {
    if let Some(o) = OPTIMIZER_OVERRIDE.with(|c| c.borrow().clone()) {
        return o;
    }
    OPTIMIZER.read().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
}

/// Runs `f` with `options` in force on this thread only (for traces made inside `f`).
pub fn with_optimizer_options<R>(options: optimizer::OptimizerOptions, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<optimizer::OptimizerOptions>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            OPTIMIZER_OVERRIDE.with(|c| *c.borrow_mut() = prev);
        }
    }
    let _restore = Restore(OPTIMIZER_OVERRIDE.with(|c| c.borrow_mut().replace(options)));
    f()
}

// ---- devices -------------------------------------------------------------------------------

/// What an op does when its inputs live on different devices (or on another device than the
/// one it runs on), as `tf.config.experimental.set_device_policy`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum DevicePolicy {
    /// Copy the input to the op's device, silently (TensorFlow's default). The copy is still
    /// counted by `ff::profiler::transfers()`.
    #[default]
    Silent,
    /// Copy, and log a warning naming the op and both devices.
    Warn,
    /// Copy nothing: `Error::InvalidArgument` naming the op and both devices. Copies must
    /// be written out with `to_device`.
    Explicit,
}

static SOFT_PLACEMENT: AtomicBool = AtomicBool::new(true);
static DEVICE_POLICY: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static SOFT_OVERRIDE: Cell<Option<bool>> = const { Cell::new(None) };
    static POLICY_OVERRIDE: Cell<Option<DevicePolicy>> = const { Cell::new(None) };
}

/// Soft device placement (on by default, as `tf.config.set_soft_device_placement`): an op
/// placed on a GPU that does not exist, or that has no GPU kernel for its dtype, runs on
/// the CPU with a logged notice. Off: `Error::DeviceUnavailable` / `Error::Unsupported`.
pub fn set_soft_device_placement(on: bool) {
    SOFT_PLACEMENT.store(on, Ordering::Relaxed);
}

/// Whether soft device placement is on for this thread.
pub fn soft_device_placement() -> bool {
    SOFT_OVERRIDE.with(|c| c.get()).unwrap_or_else(|| SOFT_PLACEMENT.load(Ordering::Relaxed))
}

/// Runs `f` with soft placement `on` for this thread only.
pub fn with_soft_device_placement<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SOFT_OVERRIDE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(SOFT_OVERRIDE.with(|c| c.replace(Some(on))));
    f()
}

/// Sets the device policy for the whole process.
pub fn set_device_policy(policy: DevicePolicy) {
    DEVICE_POLICY.store(policy as u8, Ordering::Relaxed);
}

/// The device policy in force on this thread.
pub fn device_policy() -> DevicePolicy {
    if let Some(p) = POLICY_OVERRIDE.with(|c| c.get()) {
        return p;
    }
    match DEVICE_POLICY.load(Ordering::Relaxed) {
        0 => DevicePolicy::Silent,
        1 => DevicePolicy::Warn,
        _ => DevicePolicy::Explicit,
    }
}

/// Runs `f` with `policy` in force on this thread only.
pub fn with_device_policy<R>(policy: DevicePolicy, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<DevicePolicy>);
    impl Drop for Restore {
        fn drop(&mut self) {
            POLICY_OVERRIDE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(POLICY_OVERRIDE.with(|c| c.replace(Some(policy))));
    f()
}
