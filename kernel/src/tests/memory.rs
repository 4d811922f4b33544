//! Memory: frames, heap, kernel faults and stack guard pages.
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use crate::arch::percpu;
use crate::extable::probe_read_u64;
use crate::memory::kstack::KernelStack;
use crate::memory::{frame, heap, phys_to_virt};
use crate::{kassert, kassert_eq, ktest};

ktest!(
    fn frame_alloc_free_roundtrip() {
        // The test counts every free frame, so frames still on their way
        // back from earlier tests (an exited task's stack, freed when the CPU
        // it last ran on next switches; RCU callbacks) must have arrived.
        settle_free_frames();
        let before = frame::free_count();
        // Take every free frame, chaining them through their first word (the
        // heap may not grow while we hold them all, so no Vec).
        let mut head = u64::MAX;
        let mut taken = 0usize;
        while let Some(pa) = frame::alloc() {
            kassert!(pa % 4096 == 0, "unaligned frame {:#x}", pa);
            // SAFETY: the frame is ours; its first word links our list.
            unsafe { *(phys_to_virt(pa) as *mut u64) = head };
            head = pa;
            taken += 1;
        }
        let empty = frame::free_count();
        while head != u64::MAX {
            // SAFETY: written above.
            let next = unsafe { *(phys_to_virt(head) as *const u64) };
            frame::free(head);
            head = next;
        }
        kassert_eq!(empty, 0, "allocator says frames remain after alloc failed");
        kassert_eq!(
            taken,
            before,
            "frames handed out vs frames the allocator said were free"
        );
        kassert_eq!(
            frame::free_count(),
            before,
            "free count after freeing everything"
        );
        Ok(())
    }
);

/// Waits until the free-frame count has not moved for a few ticks (at most
/// a second): every deferred free of earlier work has landed.
fn settle_free_frames() {
    crate::rcu::rcu_barrier();
    let mut last = frame::free_count();
    let mut still = 0;
    for _ in 0..100 {
        crate::sched::sleep_ns(10_000_000);
        let now = frame::free_count();
        still = if now == last { still + 1 } else { 0 };
        if still == 5 {
            return;
        }
        last = now;
    }
}

ktest!(all_cpus fn heap_alloc_stress_all_cpus(cpu) {
    // Many sizes, contents checked, from every CPU at once.
    let mut live: Vec<Box<[u8]>> = Vec::new();
    for i in 0..3000usize {
        let size = 1 + (i * 37 + cpu * 101) % 3000;
        let tag = (cpu as u8).wrapping_mul(31).wrapping_add(i as u8);
        live.push(alloc::vec![tag; size].into_boxed_slice());
        if live.len() > 64 {
            let b = live.swap_remove((i * 7) % live.len());
            let t = b[0];
            kassert!(b.iter().all(|&x| x == t), "heap block corrupted on cpu{}", cpu);
        }
    }
    for b in &live {
        let t = b[0];
        kassert!(b.iter().all(|&x| x == t), "heap block corrupted on cpu{}", cpu);
    }
    Ok(())
});

ktest!(
    fn heap_returns_to_baseline() {
        let before = heap::used();
        {
            let v: Vec<Vec<u64>> = (0..200).map(|i| alloc::vec![i; 100]).collect();
            kassert_eq!(v[199][99], 199);
        }
        kassert_eq!(
            heap::used(),
            before,
            "heap bytes in use after freeing everything"
        );
        Ok(())
    }
);

ktest!(
    fn page_fault_reports_cr2() {
        let stack = KernelStack::with_size(4096).ok_or("no memory")?;
        let mapped = stack.top() - 8;
        kassert!(
            probe_read_u64(mapped).is_some(),
            "a mapped stack word faulted"
        );
        // The guard page is unmapped: the read faults, the handler reports it and
        // resumes at the exception-table fixup with CR2 recorded.
        let target = stack.guard() + 0x123 * 8;
        let r = probe_read_u64(target);
        kassert!(
            r.is_none(),
            "read of an unmapped guard page returned {:?}",
            r
        );
        kassert_eq!(
            percpu::this().last_fixup_cr2.load(Ordering::Relaxed),
            target,
            "CR2 recorded for the fault"
        );
        Ok(())
    }
);

extern "C" fn recurse_forever(depth: u64) {
    let frame = [depth; 64];
    core::hint::black_box(&frame);
    if core::hint::black_box(depth) != u64::MAX {
        recurse_forever(depth + 1);
    }
    core::hint::black_box(&frame);
}

ktest!(
    fn stack_guard_page_catches_overflow() {
        let stack = KernelStack::with_size(16 << 10).ok_or("no memory")?;
        percpu::this().last_fixup_cr2.store(0, Ordering::Relaxed);
        // Interrupts off for the recursion: an interrupt taken with the
        // stack nearly full would overflow inside its handler, and the unwind
        // to our recovery point would skip that handler's exit (the CPU's
        // interrupt depth would stay raised, failing every later test). With
        // them off the overflow is always in `recurse_forever`, and the
        // recovery point (kept per CPU) cannot move to another CPU with us.
        let irq = crate::arch::cpu::irq_save();
        // SAFETY: `stack` is a fresh kernel stack; the callee never returns
        // normally, and the double-fault handler unwinds to our recovery point.
        let overflowed =
            unsafe { crate::testing::call_on_stack_recoverable(stack.top(), recurse_forever, 0) };
        crate::arch::cpu::irq_restore(irq);
        kassert_eq!(
            overflowed,
            1,
            "deep recursion on a 16 KiB stack did not overflow"
        );
        let cr2 = percpu::this().last_fixup_cr2.load(Ordering::Relaxed);
        kassert!(
            cr2 >= stack.guard() && cr2 < stack.guard() + 4096,
            "fault at {:#x}, guard page is {:#x}",
            cr2,
            stack.guard()
        );
        Ok(())
    }
);
