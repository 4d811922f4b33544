//! The page-fault path for anonymous, private, demand-zero memory.
//!
//! [`handle_user_fault`] is what the kernel's fault handler calls for a
//! user-mode fault:
//!
//! 1. Per-VMA path (if switched on): `lock_vma_under_rcu`; check the access
//!    against the VMA's protection (a violation is a segmentation fault);
//!    [`handle_fault`] holding only the VMA read lock; unlock. Success: done.
//!    If the handler asks to retry (it needs the `mmap_lock`), unlock, count a
//!    *retry*, and fall back.
//! 2. Fallback: `mmap_read_lock`, find the VMA, handle, unlock.
//!
//! Kernel-mode faults on user addresses call [`handle_fault_mmap_locked`]
//! directly (they may already hold locks the per-VMA path would not respect).
//!
//! Each fault counts exactly one terminal event (`success`, `fallback` or
//! `segv`); `counters.rs` states the rule and who counts what.

use core::sync::atomic::Ordering as CoreOrdering;

use crate::counters::Event;
use crate::lookup::lock_vma_under_rcu;
use crate::mm::{Mm, MmapLocked};
use crate::page_table::{ADDR_MASK, PteFlags, leaf_flags};
use crate::phases::{Phase, Timer};
use crate::platform::Platform;
use crate::sync::Ordering;
use crate::vma::{PAGE_SIZE, Prot, Vma};

/// What the faulting access was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Exec,
}

/// Which lock the fault handler runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Only the VMA's read lock.
    VmaLock,
    /// The `mmap_lock` (read or write).
    MmapLock,
}

/// How [`handle_fault`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// The page is mapped with sufficient rights; return to the access.
    Done,
    /// The access is not allowed by the VMA (or there is no VMA): SIGSEGV.
    AccessError,
    /// No frame for the page or a page-table page.
    OutOfMemory,
    /// Needs the `mmap_lock`: drop the VMA lock and take the fallback path.
    Retry,
}

/// Whether `prot` allows `access`. On x86 a writable page is also readable.
pub fn access_allowed(prot: Prot, access: Access) -> bool {
    match access {
        Access::Read => prot.contains(Prot::READ) || prot.contains(Prot::WRITE),
        Access::Write => prot.contains(Prot::WRITE),
        Access::Exec => prot.contains(Prot::EXEC),
    }
}

/// Whether the leaf `pte` already allows `access`.
fn pte_sufficient(pte: u64, access: Access) -> bool {
    let f = PteFlags::of(pte);
    f.contains(PteFlags::PRESENT)
        && match access {
            Access::Read => true,
            Access::Write => f.contains(PteFlags::WRITABLE),
            Access::Exec => !f.contains(PteFlags::NX),
        }
}

/// Handle a fault at `addr` in `vma` of `mm`, which the caller holds locked
/// as `held` says: install a zeroed page (or find one already there).
pub fn handle_fault<P: Platform>(
    mm: &Mm<P>,
    vma: &Vma<P>,
    addr: u64,
    access: Access,
    held: Held,
) -> FaultOutcome {
    debug_assert!(vma.start() <= addr && addr < vma.end());
    let prot = vma.prot();
    if !access_allowed(prot, access) {
        return FaultOutcome::AccessError;
    }
    // The VMA's anonymous-memory bookkeeping (Linux's anon_vma) is set up
    // under the mmap_lock on the first fault; with only the VMA lock, ask for
    // a retry. Relaxed: a flag that only decides which path runs; nothing is
    // published through it.
    if !vma.anon_ready.load(Ordering::Relaxed) {
        if held == Held::VmaLock {
            return FaultOutcome::Retry;
        }
        vma.anon_ready.store(true, Ordering::Relaxed);
    }
    // LAB: demand-zero BEGIN
    let va = addr & !(PAGE_SIZE - 1);
    let t = Timer::<P>::start(Phase::FaultPtWalk);
    let Ok(pte) = mm.page_table.leaf_alloc(va, &mm.pt_pages) else {
        return FaultOutcome::OutOfMemory;
    };
    drop(t);
    race_point!(FaultLeafFound, mm = mm, vma = vma, addr = addr);
    let want = leaf_flags(prot).bits();
    // Acquire pairs with the Release install below (by a racing fault).
    let mut cur = pte.load(CoreOrdering::Acquire);
    if cur == 0 {
        if !mm.may_take_frame() {
            return FaultOutcome::OutOfMemory;
        }
        let t = Timer::<P>::start(Phase::FaultFrameAlloc);
        let Some(frame) = P::alloc_frame() else {
            return FaultOutcome::OutOfMemory;
        };
        drop(t);
        let t = Timer::<P>::start(Phase::FaultZero);
        // A fresh frame, ours alone until the PTE publishes it.
        P::zero_frame(frame);
        drop(t);
        let _t = Timer::<P>::start(Phase::FaultInstall);
        // Release: the zeroes are visible to any CPU that sees the PTE (the
        // MMU of another CPU, or a racing fault's Acquire load).
        match pte.compare_exchange(
            0,
            frame | want,
            CoreOrdering::Release,
            CoreOrdering::Acquire,
        ) {
            Ok(_) => {
                mm.rss_add(1);
                return FaultOutcome::Done;
            }
            Err(now) => {
                // A racing fault in this VMA won: use its page.
                P::free_frame(frame);
                cur = now;
            }
        }
    }
    // Present already (stale TLB entry, or another CPU won the race). If its
    // rights are short of the VMA's (they never should be: protect rewrites
    // leaves), bring them up to the VMA's.
    while !pte_sufficient(cur, access) {
        let new = (cur & ADDR_MASK) | want;
        match pte.compare_exchange(cur, new, CoreOrdering::AcqRel, CoreOrdering::Acquire) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    FaultOutcome::Done
    // LAB: demand-zero END
}

/// The terminal event of a fault that ended with `outcome` on the path that
/// held `held` (the rule in `counters.rs`); `None` for a refused access,
/// which `handle_user_fault`'s caller counts.
fn terminal_event(outcome: FaultOutcome, held: Held) -> Option<Event> {
    match (outcome, held) {
        (FaultOutcome::Done, Held::VmaLock) => Some(Event::Success),
        (FaultOutcome::Done, Held::MmapLock) => Some(Event::Fallback),
        (FaultOutcome::OutOfMemory, _) => Some(Event::Segv),
        (FaultOutcome::AccessError | FaultOutcome::Retry, _) => None,
    }
}

/// Handle under the `mmap_lock` (read); counts the terminal event unless the
/// access is refused.
fn fallback<P: Platform>(mm: &Mm<P>, cpu: usize, addr: u64, access: Access) -> FaultOutcome {
    race_point!(FaultFallback, mm = mm, addr = addr);
    let _t = Timer::<P>::start(Phase::FaultFallback);
    let outcome = {
        let guard = mm.read_lock();
        match guard.find(addr) {
            Some((_, vma)) => handle_fault(mm, vma, addr, access, Held::MmapLock),
            None => FaultOutcome::AccessError,
        }
    };
    if let Some(event) = terminal_event(outcome, Held::MmapLock) {
        mm.count_event(cpu, event);
    }
    outcome
}

/// A kernel-mode fault at a user address (a user copy): handle under the
/// `mmap_lock` (read). Counts the fault completely, a refused access as
/// `segv` too: the kernel does not retry a failed copy.
pub fn handle_fault_mmap_locked<P: Platform>(
    mm: &Mm<P>,
    addr: u64,
    access: Access,
) -> FaultOutcome {
    let cpu = P::cpu_id();
    let outcome = fallback(mm, cpu, addr, access);
    if outcome == FaultOutcome::AccessError {
        mm.count_bad_fault(cpu);
    }
    outcome
}

/// The whole user fault path (see the module docs). Never returns `Retry`.
///
/// Counts the fault's terminal event, except for `AccessError`: the caller
/// counts that with [`Mm::count_bad_fault`] when it gives up on the fault
/// (it may look again and retry first). See `counters.rs`.
pub fn handle_user_fault<P: Platform>(mm: &Mm<P>, addr: u64, access: Access) -> FaultOutcome {
    let _t = Timer::<P>::start(Phase::FaultTotal);
    let cpu = P::cpu_id();
    mm.note_cpu(cpu);
    let lookup = Timer::<P>::start(Phase::FaultLookup);
    let locked = if mm.per_vma_lock() {
        lock_vma_under_rcu(mm, addr)
    } else {
        None
    };
    drop(lookup);
    if let Some(vma) = locked {
        let outcome = handle_fault(mm, &vma, addr, access, Held::VmaLock);
        drop(vma);
        if outcome != FaultOutcome::Retry {
            if let Some(event) = terminal_event(outcome, Held::VmaLock) {
                mm.count_event(cpu, event);
            }
            return outcome;
        }
        mm.count_event(cpu, Event::Retry);
    }
    fallback(mm, cpu, addr, access)
}
