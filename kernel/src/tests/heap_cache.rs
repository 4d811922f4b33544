//! The per-CPU caches of small heap blocks: every block fits its request,
//! and a cached block is never handed out while still in use.
use alloc::alloc::{alloc, dealloc};
use alloc::vec::Vec;
use core::alloc::Layout;

use crate::memory::heap;
use crate::{kassert, kassert_eq, ktest};

/// Fill a block with a byte that names it (its index), so an overlap with
/// another live block shows as the wrong byte.
fn fill(p: *mut u8, size: usize, tag: u8) {
    // SAFETY: `p` is a live block of at least `size` bytes, ours alone.
    unsafe { core::ptr::write_bytes(p, tag, size) };
}

fn intact(p: *mut u8, size: usize, tag: u8) -> bool {
    // SAFETY: as in `fill`.
    (0..size).all(|i| unsafe { *p.add(i) } == tag)
}

/// Wait until earlier tests' leftovers (RCU callbacks, exited tasks'
/// memory, freed on other CPUs) have been freed: `heap::used` still for
/// 50 ms, or 1 s at most.
fn settle_heap() {
    crate::rcu::rcu_barrier();
    let mut last = heap::used();
    let mut still = 0;
    for _ in 0..100 {
        crate::sched::sleep_ns(10_000_000);
        let now = heap::used();
        still = if now == last { still + 1 } else { 0 };
        if still == 5 {
            return;
        }
        last = now;
    }
}

ktest!(
    fn heap_cache_blocks_fit_and_never_overlap() {
        settle_heap();
        let before = heap::used();
        // Every size up to and past the largest class, with every alignment
        // a class promises (and one beyond, which bypasses the caches).
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::with_capacity(2048);
        for round in 0..3u8 {
            for size in (1..=1100).step_by(7) {
                for align in [1usize, 8, 16, 64, 128] {
                    let l = Layout::from_size_align(size, align).unwrap();
                    // SAFETY: a non-zero size.
                    let p = unsafe { alloc(l) };
                    kassert!(!p.is_null(), "no memory for {:?}", l);
                    kassert_eq!(p as usize % align, 0, "{:?} misaligned", l);
                    let tag = (live.len() as u8).wrapping_add(round);
                    fill(p, size, tag);
                    live.push((p, l, tag));
                }
            }
            // Free every other block, so the next round reuses cached ones
            // while the rest are still live.
            let mut kept = Vec::with_capacity(live.len());
            for (i, (p, l, tag)) in live.drain(..).enumerate() {
                if !intact(p, l.size(), tag) {
                    kassert!(false, "block of {:?} overwritten by another", l);
                }
                if i % 2 == 0 {
                    // SAFETY: allocated above with `l`, not used again.
                    unsafe { dealloc(p, l) };
                } else {
                    kept.push((p, l, tag));
                }
            }
            live = kept;
        }
        for (p, l, tag) in live.drain(..) {
            kassert!(intact(p, l.size(), tag), "block of {:?} overwritten", l);
            // SAFETY: allocated above with `l`, not used again.
            unsafe { dealloc(p, l) };
        }
        drop(live);
        settle_heap();
        // At most: other CPUs may still free what earlier tests left.
        let after = heap::used();
        kassert!(
            after <= before,
            "heap bytes in use after freeing everything: {} > {} (cached blocks count as free)",
            after,
            before
        );
        Ok(())
    }
);
