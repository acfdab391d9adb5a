//! Non-temporal (streaming) stores for outputs much larger than the caches: a normal store
//! first reads the destination line into cache (read-for-ownership), so writing an output
//! costs twice its size in memory traffic; a streaming store writes the line directly. On
//! memory-bound kernels (a fused elementwise loop reads its inputs once and writes its
//! output once) that is a quarter to a third of the traffic.

/// Outputs at least this large are written with streaming stores (well beyond L2 and a
/// fair share of L3, so the output would be evicted before anyone reads it anyway).
pub(crate) const STREAM_MIN_BYTES: usize = 8 << 20;

/// `dst.copy_from_slice(src)`, with streaming stores for the 16-byte-aligned middle on
/// x86-64. Call `fence()` once after the last copy of a task.
#[inline]
pub(crate) fn copy_nt<T: Copy>(dst: &mut [T], src: &[T]) {
    debug_assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        let bytes = std::mem::size_of_val(dst);
        let dp = dst.as_mut_ptr().cast::<u8>();
        let sp = src.as_ptr().cast::<u8>();
        let head = dp.align_offset(16).min(bytes);
        let body = (bytes - head) / 16 * 16;
        // SAFETY: `dst` and `src` are valid for `bytes` bytes and do not overlap (one is
        // borrowed mutably). The head and tail are plain byte copies; the body's stores go
        // to `dp + head`, 16-byte aligned by construction, within `dst`; unaligned loads
        // from `src` are allowed. SSE2 is part of the x86-64 baseline.
        unsafe {
            std::ptr::copy_nonoverlapping(sp, dp, head);
            let mut i = head;
            while i < head + body {
                let v = _mm_loadu_si128(sp.add(i).cast::<__m128i>());
                _mm_stream_si128(dp.add(i).cast::<__m128i>(), v);
                i += 16;
            }
            std::ptr::copy_nonoverlapping(sp.add(i), dp.add(i), bytes - i);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// Orders streaming stores before later loads and stores (they are weakly ordered).
#[inline]
pub(crate) fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a store fence has no preconditions.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}
