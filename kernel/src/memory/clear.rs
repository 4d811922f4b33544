//! Zeroing a whole page.
//!
//! Every anonymous fault and every new page table zeroes 4 KiB, so this is
//! the largest single cost of a fault. `core::ptr::write_bytes` becomes
//! `memset`, which uses `rep stosq`. That is fast on CPUs that advertise
//! fast string instructions, but QEMU's software emulation (TCG) runs each
//! iteration of a `rep` instruction as its own trip through a translated
//! block, which makes it several times slower than plain stores. Linux makes
//! the same choice on CPUs without `REP_GOOD`/`ERMS` (`clear_page_orig` in
//! `arch/x86/lib/clear_page_64.S`): a loop of ordinary 8-byte stores.

use super::PAGE_SIZE;

/// Stores per loop iteration. A longer body means fewer translated-block
/// trips under TCG; 64 stores (512 bytes) keeps the body well inside one
/// block.
const STORES_PER_ITER: u64 = 64;

/// Zero the 4096 bytes at `page`.
///
/// # Safety
/// `page` must be 8-byte aligned and valid for writes of `PAGE_SIZE` bytes,
/// and nothing else may access them meanwhile.
pub unsafe fn clear_page(page: *mut u8) {
    let p = page.cast::<u64>();
    let mut i = 0;
    while i < PAGE_SIZE / 8 {
        for j in 0..STORES_PER_ITER {
            // SAFETY: `i + j < PAGE_SIZE / 8`, inside the page the caller
            // gave us. Volatile keeps the compiler from folding the loop back
            // into `memset` (and so `rep stosq`).
            unsafe { p.add((i + j) as usize).write_volatile(0) };
        }
        i += STORES_PER_ITER;
    }
}
