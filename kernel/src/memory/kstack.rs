//! Kernel stacks, each with an unmapped guard page below it.
//!
//! A stack that overflows runs into its guard page and faults, instead of
//! silently overwriting whatever lies below. Stacks live in their own region,
//! one fixed-size slot each: `[guard page][stack pages ...][unused]`.
//!
//! Reusing a slot's virtual addresses is only safe once no CPU caches the old
//! translation, so freed slots wait on a `retired` list; when the free list is
//! empty, one TLB flush on every CPU moves them all back.

use alloc::vec::Vec;

use x86_64::structures::paging::PageTableFlags;

use super::paging;
use super::{KSTACK_BASE, PAGE_SIZE, frame};
use crate::sync::SpinLock;

const SLOT_SIZE: u64 = 256 << 10;
const MAX_SLOTS: u64 = 1 << 20;
pub const DEFAULT_STACK_SIZE: u64 = 64 << 10;

struct Slots {
    next_new: u64,
    free: Vec<u64>,
    retired: Vec<u64>,
}

static SLOTS: SpinLock<Slots> = SpinLock::new(Slots {
    next_new: 0,
    free: Vec::new(),
    retired: Vec::new(),
});

pub struct KernelStack {
    slot: u64,
    pages: u64,
}

impl KernelStack {
    pub fn new() -> Option<Self> {
        Self::with_size(DEFAULT_STACK_SIZE)
    }

    /// A stack for a user thread: `None` (and so `ENOMEM` for the thread's
    /// creator) once only the kernel's frame reserve is left, like any
    /// other memory a process asks for.
    pub fn new_for_user() -> Option<Self> {
        let pages = DEFAULT_STACK_SIZE.div_ceil(PAGE_SIZE) as usize;
        if !frame::user_can_take(pages) {
            return None;
        }
        Self::new()
    }

    pub fn with_size(bytes: u64) -> Option<Self> {
        let pages = bytes.div_ceil(PAGE_SIZE);
        assert!(pages >= 1 && (pages + 1) * PAGE_SIZE <= SLOT_SIZE);
        let slot = take_slot();
        let base = slot_base(slot);
        for i in 0..pages {
            let mapped = frame::alloc().filter(|&pa| {
                let ok = paging::map_4k(
                    base + PAGE_SIZE * (1 + i),
                    pa,
                    PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE,
                );
                if !ok {
                    frame::free(pa);
                }
                ok
            });
            if mapped.is_none() {
                // Undo what we mapped; the slot is retired like any other.
                let partial = KernelStack { slot, pages: i };
                drop(partial);
                return None;
            }
        }
        Some(KernelStack { slot, pages })
    }

    /// The initial stack pointer (stacks grow down from here).
    pub fn top(&self) -> u64 {
        slot_base(self.slot) + PAGE_SIZE * (1 + self.pages)
    }

    /// The guard page's address.
    pub fn guard(&self) -> u64 {
        slot_base(self.slot)
    }

    /// Keep the stack for the life of the kernel (per-CPU stacks).
    pub fn leak(self) -> u64 {
        let top = self.top();
        core::mem::forget(self);
        top
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        let base = slot_base(self.slot);
        for i in 0..self.pages {
            if let Some(pa) = paging::unmap_4k(base + PAGE_SIZE * (1 + i)) {
                frame::free(pa);
            }
        }
        SLOTS.lock_irqsave().retired.push(self.slot);
    }
}

fn slot_base(slot: u64) -> u64 {
    KSTACK_BASE + slot * SLOT_SIZE
}

/// Retired slots wait until this many have gathered, so one round of TLB
/// flush IPIs recycles many stacks.
const RECYCLE_BATCH: usize = 32;

fn take_slot() -> u64 {
    let batch = {
        let mut s = SLOTS.lock_irqsave();
        if let Some(slot) = s.free.pop() {
            return slot;
        }
        if s.retired.len() < RECYCLE_BATCH {
            assert!(s.next_new < MAX_SLOTS, "out of kernel stack slots");
            s.next_new += 1;
            return s.next_new - 1;
        }
        core::mem::take(&mut s.retired)
    };
    // After every CPU has flushed its TLB, none can still translate the
    // batch's old addresses. (The flush runs without the lock held: another
    // CPU may need the lock before it can answer.)
    crate::arch::smp::call_on_all_cpus(&paging::flush_tlb_local);
    let mut s = SLOTS.lock_irqsave();
    s.free.extend(batch);
    s.free.pop().expect("a recycled slot")
}

/// Is `addr` inside some stack slot's guard page?
pub fn is_guard_page(addr: u64) -> bool {
    (KSTACK_BASE..KSTACK_BASE + MAX_SLOTS * SLOT_SIZE).contains(&addr)
        && (addr - KSTACK_BASE) % SLOT_SIZE < PAGE_SIZE
}
