//! `lock_vma_under_rcu`: find the VMA for a fault and read-lock it, with no
//! `mmap_lock`.
//!
//! 1. Inside an RCU read section, walk the tree for `addr` (no VMA: abort).
//! 2. `vma_start_read`. "Detached" means a writer removed the VMA after we
//!    found it: count a *miss* and walk again **from the root**. (Resuming
//!    from a node remembered earlier was a real Linux bug: that node may be
//!    freed by then. Our tree has no resumable cursor, so every walk starts
//!    at the root.) Any other failure: abort.
//! 3. Leave the RCU section; re-check `start <= addr < end`. The memory may
//!    have been reused for another VMA of this same address space (the owner
//!    check passed) at another range.
//!
//! Aborting is always safe: the caller falls back to the `mmap_lock`.
//!
//! The result is a guard, so an error can never be "unlocked" by mistake (a
//! Linux failure path once called the read unlock on an error pointer; LTP's
//! `mtest06` caught it). Here an error is a `None`, which owns no lock.

use core::ops::Deref;

use crate::counters::Event;
use crate::mm::Mm;
use crate::platform::Platform;
use crate::vma::Vma;
use crate::vma_lock::{ReadLockError, vma_refcount_put, vma_start_read};

/// How many "detached" misses in a row before giving up. Linux retries
/// without limit; a bound keeps a reader from spinning against a writer that
/// keeps replacing the VMA, and giving up is always allowed.
const MAX_RESTARTS: usize = 8;

/// A read-locked VMA. Dropping it is the read unlock (`vma_end_read`).
pub struct VmaReadLock<'a, P: Platform> {
    vma: &'a Vma<P>,
}

impl<P: Platform> Deref for VmaReadLock<'_, P> {
    type Target = Vma<P>;
    fn deref(&self) -> &Vma<P> {
        self.vma
    }
}

impl<P: Platform> Drop for VmaReadLock<'_, P> {
    fn drop(&mut self) {
        vma_refcount_put(self.vma);
    }
}

/// Read-lock the VMA that contains `addr`, or `None` (fall back to the
/// `mmap_lock`). Counts misses and aborts.
pub fn lock_vma_under_rcu<P: Platform>(mm: &Mm<P>, addr: u64) -> Option<VmaReadLock<'_, P>> {
    let cpu = P::cpu_id();
    let abort = || {
        mm.count_event(cpu, crate::counters::Event::Abort);
        None
    };
    let guard = P::read_lock();
    let mut restarts = 0;
    let vma = loop {
        let Some((_, v)) = mm.vmas.find(addr, &guard) else {
            return abort();
        };
        // SAFETY: found in the tree inside this RCU read section.
        let vma = unsafe { v.get_rcu(&guard) };
        race_point!(LookupFound, mm = mm, vma = vma, addr = addr);
        match vma_start_read(mm, vma) {
            Ok(()) => break v,
            Err(ReadLockError::Detached) if restarts < MAX_RESTARTS => {
                mm.count_event(cpu, Event::Miss);
                race_point!(LookupRestart, mm = mm, vma = vma, addr = addr);
                restarts += 1;
            }
            Err(ReadLockError::Detached) => {
                mm.count_event(cpu, Event::Miss);
                return abort();
            }
            Err(ReadLockError::Failed) => return abort(),
        }
    };
    drop(guard);
    let locked = VmaReadLock {
        // SAFETY: `vma_start_read` took a reference, which `VmaReadLock`
        // drops last: a referenced VMA is never detached, so never freed.
        vma: unsafe { vma.get_unchecked() },
    };
    if !(locked.start() <= addr && addr < locked.end()) {
        drop(locked);
        return abort();
    }
    crate::protocol_assert!(!locked.is_poisoned(), "read-locked a freed VMA");
    Some(locked)
}
