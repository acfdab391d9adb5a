//! Host storage: a tensor's `Buffer` (defined beside `DType`, which maps each dtype to its
//! variant) and a small thread-local pool that recycles large buffers.
//!
//! Why a pool: glibc returns freed large blocks to the OS, and the next op that allocates
//! the same size faults every page back in (candle spends ~10x the memory-bandwidth limit on
//! that). Recycling buffers of the same dtype and length keeps steady-state loops fault-free.
//! Buffers from the pool hold stale values, so every kernel writes all of its output.

use std::cell::RefCell;

use crate::dtype::Element;

pub(crate) use crate::dtype::Buffer;

/// Buffers smaller than this go straight to the allocator: small mallocs are cheap and
/// glibc keeps them, so pooling them would only cost lookups.
const POOL_MIN_BYTES: usize = 256 * 1024;
/// At most this many buffers wait in one thread's pool.
const POOL_MAX_BUFFERS: usize = 32;
/// At most this many bytes wait in one thread's pool.
const POOL_MAX_BYTES: usize = 1 << 30;

struct Pool {
    free: Vec<Buffer>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { free: Vec::new(), bytes: 0 }) };
}

/// A vector of `n` elements whose values are unspecified (zeros or stale): the caller must
/// write every element. Large sizes come from the pool when one of the same length waits.
#[inline]
pub(crate) fn alloc<T: Element>(n: usize) -> Vec<T> {
    if n * std::mem::size_of::<T>() >= POOL_MIN_BYTES {
        let hit = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            let i = p.free.iter().position(|b| b.dtype() == T::DTYPE && b.len() == n)?;
            let mut b = p.free.swap_remove(i);
            p.bytes -= b.capacity_bytes();
            T::slice_mut(&mut b).map(std::mem::take)
        });
        if let Ok(Some(v)) = hit {
            return v;
        }
    }
    // `vec![zero; n]` becomes a calloc: fresh pages arrive zeroed without a memset pass.
    vec![T::default(); n]
}

/// Gives a buffer back: large ones wait in this thread's pool, the rest are freed.
pub(crate) fn recycle(mut b: Buffer) {
    let bytes = b.capacity_bytes();
    if bytes < POOL_MIN_BYTES {
        return;
    }
    let _ = POOL.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            if p.bytes + bytes > POOL_MAX_BYTES {
                return;
            }
            if p.free.len() >= POOL_MAX_BUFFERS {
                // Evict the oldest so the pool follows the working set.
                let old = p.free.remove(0);
                p.bytes -= old.capacity_bytes();
            }
            p.bytes += bytes;
            p.free.push(b.take());
        }
    });
}

/// Host storage of one tensor; gives its buffer back to the pool when dropped.
#[derive(Debug)]
pub(crate) struct HostStorage(pub(crate) Buffer);

impl HostStorage {
    /// Takes the buffer out (for `into_ndarray`); the empty husk recycles nothing.
    pub(crate) fn take(&mut self) -> Buffer {
        self.0.take()
    }
}

impl Drop for HostStorage {
    fn drop(&mut self) {
        if self.0.len() > 0 {
            recycle(self.0.take());
        }
    }
}

/// Frees every buffer waiting in this thread's pool (for tests and memory-tight code).
pub fn clear_pool() {
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        p.free.clear();
        p.bytes = 0;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_are_reused() {
        clear_pool();
        let v: Vec<f32> = alloc(1 << 20);
        let p = v.as_ptr();
        recycle(Buffer::F32(v));
        let w: Vec<f32> = alloc(1 << 20);
        assert_eq!(w.as_ptr(), p);
        // A different dtype of the same byte size is not handed out.
        recycle(Buffer::F32(w));
        let u: Vec<i32> = alloc(1 << 20);
        assert_ne!(u.as_ptr() as *const f32, p);
    }
}
