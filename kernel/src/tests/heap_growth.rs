//! The kernel heap when frames run out in the middle of a growth step.
use alloc::alloc::{alloc, dealloc};
use core::alloc::Layout;

use crate::memory::{frame, heap, phys_to_virt};
use crate::{kassert, kassert_eq, ktest};

/// Frames left free while the heap tries to grow: fewer than one growth
/// step needs, so the step stops partway.
const LEFT: usize = 6;

ktest!(
    fn heap_growth_short_of_frames_keeps_what_it_mapped() {
        crate::rcu::rcu_barrier();
        // Take every free frame, chaining them through their first word (no
        // Vec: the heap must not grow while we hold them), then give back
        // a few for the heap to find.
        let mut head = u64::MAX;
        while let Some(pa) = frame::alloc() {
            // SAFETY: the frame is ours; its first word links our list.
            unsafe { *(phys_to_virt(pa) as *mut u64) = head };
            head = pa;
        }
        for _ in 0..LEFT {
            kassert!(head != u64::MAX, "fewer than {} frames to give back", LEFT);
            // SAFETY: written above.
            let next = unsafe { *(phys_to_virt(head) as *const u64) };
            frame::free(head);
            head = next;
        }
        let (_, mapped_before) = heap::size_and_mapped();
        // Far more than any free block and than the frames left: the heap
        // maps what it can, then gives up.
        let layout = Layout::from_size_align(1 << 30, 8).expect("layout");
        // SAFETY: a valid, non-zero-size layout. `black_box`: the compiler
        // may otherwise drop an allocation whose memory is never used.
        let p = core::hint::black_box(unsafe { alloc(core::hint::black_box(layout)) });
        let (size, mapped) = heap::size_and_mapped();
        while head != u64::MAX {
            // SAFETY: written above.
            let next = unsafe { *(phys_to_virt(head) as *const u64) };
            frame::free(head);
            head = next;
        }
        if !p.is_null() {
            // SAFETY: allocated above with this layout.
            unsafe { dealloc(p, layout) };
            kassert!(
                false,
                "a 1 GiB heap block with {} frames free (heap {} bytes, mapped {} before, {} after)",
                LEFT,
                size,
                mapped_before,
                mapped
            );
        }
        kassert!(
            mapped > mapped_before,
            "the growth step mapped nothing ({} bytes before and after)",
            mapped
        );
        kassert_eq!(
            size,
            mapped,
            "heap bytes vs bytes mapped for it: the pages of the failed step were lost"
        );
        Ok(())
    }
);
