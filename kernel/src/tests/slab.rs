//! The slabs behind the per-CPU heap caches: objects are never handed out
//! twice, freed ones are reused (the slabs of a class do not grow with
//! churn), and spare empty slabs go back to the heap when it needs memory.
//!
//! The tests use blocks of 600 bytes (the 640-byte class), which nothing
//! else in the kernel allocates often, so the class's slab counts are the
//! tests' own.
use alloc::alloc::{alloc, dealloc};
use alloc::vec::Vec;
use core::alloc::Layout;

use crate::memory::{frame, heap, phys_to_virt};
use crate::{kassert, kassert_eq, ktest};

fn layout() -> Layout {
    Layout::from_size_align(600, 8).expect("layout")
}

fn counts() -> heap::SlabCounts {
    heap::slab_counts(layout()).expect("600 bytes is a small block")
}

/// `n` blocks of the test class, each filled with a byte that names it:
/// `first_tag`, the next one, and so on.
fn alloc_tagged(n: usize, first_tag: u8) -> Result<Vec<(*mut u8, u8)>, alloc::string::String> {
    let mut live = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: a non-zero size.
        let p = unsafe { alloc(layout()) };
        kassert!(!p.is_null(), "no memory for block {}", i);
        let tag = first_tag.wrapping_add(i as u8);
        // SAFETY: a live block of `layout().size()` bytes, ours alone.
        unsafe { core::ptr::write_bytes(p, tag, layout().size()) };
        live.push((p, tag));
    }
    Ok(live)
}

fn intact(p: *mut u8, tag: u8) -> bool {
    // SAFETY: a live block of ours, `layout().size()` bytes.
    (0..layout().size()).all(|i| unsafe { *p.add(i) } == tag)
}

fn free(p: *mut u8) {
    // SAFETY: allocated by `alloc_tagged` with `layout()`, not used again.
    unsafe { dealloc(p, layout()) };
}

ktest!(
    fn slab_never_hands_out_an_object_twice() {
        let c = counts();
        // Several slabs' worth, so objects come from fresh, partial and
        // refilled slabs, and flushes send them back in between. Every
        // block gets its own tag (fewer than 256 blocks in all).
        let n = 4 * c.per_slab + 7;
        let mut live = alloc_tagged(n, 0)?;
        let mut next_tag = n;
        for round in 0..3 {
            // Overlapping live blocks, or one block handed out twice.
            let mut addrs: Vec<usize> = live.iter().map(|&(p, _)| p as usize).collect();
            addrs.sort_unstable();
            for w in addrs.windows(2) {
                kassert!(
                    w[1] - w[0] >= c.size,
                    "round {}: blocks at {:#x} and {:#x} overlap ({} bytes each)",
                    round,
                    w[0],
                    w[1],
                    c.size
                );
            }
            for &(p, tag) in &live {
                kassert!(intact(p, tag), "round {}: block {:p} overwritten", round, p);
            }
            // Free every third block, then allocate as many again: reuse
            // goes through slabs that were full, partial and empty.
            let mut kept = Vec::with_capacity(n);
            for (i, (p, tag)) in live.drain(..).enumerate() {
                if i % 3 == 0 {
                    free(p);
                } else {
                    kept.push((p, tag));
                }
            }
            let more = n - kept.len();
            kept.extend(alloc_tagged(more, next_tag as u8)?);
            next_tag += more;
            live = kept;
        }
        kassert!(next_tag <= 256, "tags repeat: {} blocks", next_tag);
        for (p, tag) in live {
            kassert!(intact(p, tag), "block {:p} overwritten at the end", p);
            free(p);
        }
        Ok(())
    }
);

ktest!(
    fn slab_memory_stays_bounded_under_churn() {
        let per_slab = counts().per_slab;
        // Far more than the spares hold, so a round empties slabs that
        // must go back to the heap, and the next one needs new ones.
        let n = (heap::SLAB_SPARES + 8) * per_slab;
        for round in 0..40 {
            let live = alloc_tagged(n, round as u8)?;
            for (p, tag) in live {
                kassert!(intact(p, tag), "round {}: block overwritten", round);
                free(p);
            }
        }
        // Twice what n blocks need (objects spread over partial slabs),
        // the spares, and a slab per CPU holding objects that wait in the
        // CPUs' caches. A leak grows far past it over forty rounds.
        let cpus = crate::arch::percpu::online_count();
        let bound = 2 * n.div_ceil(per_slab) + heap::SLAB_SPARES + cpus;
        let c = counts();
        kassert!(
            c.slabs <= bound,
            "{} slabs of {}-byte blocks after churning {} blocks 40 times (bound {})",
            c.slabs,
            c.size,
            n,
            bound
        );
        kassert!(c.spares <= heap::SLAB_SPARES, "{} spares", c.spares);
        Ok(())
    }
);

/// Take every free frame, chained through their first words (no vector:
/// the heap must not grow meanwhile); `give_back_frames` returns them.
fn take_all_frames() -> u64 {
    let mut head = u64::MAX;
    while let Some(pa) = frame::alloc() {
        // SAFETY: the frame is ours; its first word links our list.
        unsafe { *(phys_to_virt(pa) as *mut u64) = head };
        head = pa;
    }
    head
}

fn give_back_frames(mut head: u64) {
    while head != u64::MAX {
        // SAFETY: written by `take_all_frames`.
        let next = unsafe { *(phys_to_virt(head) as *const u64) };
        frame::free(head);
        head = next;
    }
}

ktest!(
    fn slab_spares_go_back_to_the_heap_when_it_needs_memory() {
        crate::rcu::rcu_barrier();
        // Make spares: fill far more slabs than the spares can hold, free
        // all. (Not every slab need come back empty: the objects of earlier
        // tests' rounds may be spread over them, and some wait in this
        // CPU's cache.)
        let per_slab = counts().per_slab;
        let live = alloc_tagged((heap::SLAB_SPARES + 8) * per_slab, 0)?;
        for (p, _) in live {
            free(p);
        }
        let before = counts().spares;
        kassert!(
            before > 0,
            "no spare slab after freeing {} slabs' worth",
            heap::SLAB_SPARES + 8
        );
        // With no frame left, take big blocks until the heap has none: it
        // must first take the spares back (they are free heap memory).
        let big = Layout::from_size_align(256 << 10, 4096).expect("layout");
        let mut blocks: Vec<*mut u8> = Vec::with_capacity(4096);
        let frames = take_all_frames();
        while blocks.len() < blocks.capacity() {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(big) };
            if p.is_null() {
                break;
            }
            blocks.push(p);
        }
        let spares = counts().spares;
        let full = blocks.len() < blocks.capacity();
        for p in blocks {
            // SAFETY: allocated above with `big`.
            unsafe { dealloc(p, big) };
        }
        give_back_frames(frames);
        kassert!(full, "the heap never ran out of 256 KiB blocks");
        kassert_eq!(
            spares,
            0,
            "spare slabs kept while the heap ran out of memory ({} before)",
            before
        );
        Ok(())
    }
);
