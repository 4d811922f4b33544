//! Where the time goes: per-phase cycle counts of the write side (map,
//! protect, unmap) and of the fault path, for the benchmarks.
//!
//! A [`Timer`] marks one phase; the platform decides whether timing is on
//! ([`Platform::phase_start`] returns 0 when it is off, and then the timer's
//! drop does nothing). The host and loom platforms never time, so there the
//! timers compile to nothing. The kernel keeps per-CPU sums (its
//! `mm_platform/phases.rs`) and prints them when the booted program exits.
//!
//! Phases nest (the `*Total` ones contain the others), and the kernel-only
//! ones (heap, frame allocator, RCU) happen inside whichever phase called
//! them, so the rows do not add up to a whole: read each against its total.

use core::marker::PhantomData;

use crate::platform::Platform;

/// One timed phase. The kernel-side ones are timed by the platform itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Phase {
    /// `Mm::map`, whole call.
    MapTotal,
    /// `Mm::protect`, whole call.
    ProtectTotal,
    /// `Mm::unmap`, whole call.
    UnmapTotal,
    /// Waiting for and taking the `mmap_lock` for write.
    WriteLockWait,
    /// Releasing it (and handing it to waiters).
    WriteUnlock,
    /// The VMA budget and memory check before an edit (`room_for`).
    RoomCheck,
    /// Write-locking the VMAs an edit removes (waits for their readers).
    VmaStartWrite,
    /// Taking VMAs from the cache and initializing them.
    VmaAlloc,
    /// The copy-on-write tree change and its publication.
    TreeEdit,
    /// Detaching removed VMAs and giving them back to the cache.
    VmaFree,
    /// Clearing page-table leaves (unmap).
    PtClear,
    /// Freeing empty page-table pages (unmap).
    PtFreeTables,
    /// Rewriting leaves for a new protection.
    PtProtect,
    /// The TLB shootdown (IPIs and the wait for them).
    Shootdown,
    /// Giving unmapped frames and page tables back.
    FreeFrames,
    /// `handle_user_fault`, whole call.
    FaultTotal,
    /// `lock_vma_under_rcu`.
    FaultLookup,
    /// The `mmap_lock` fallback, whole (lock wait included).
    FaultFallback,
    /// Walking or building the page-table path to the leaf.
    FaultPtWalk,
    /// Taking a frame for the page.
    FaultFrameAlloc,
    /// Zeroing it.
    FaultZero,
    /// The compare-exchange that installs the PTE, and `rss`.
    FaultInstall,
    /// Kernel: a heap allocation (lock wait included).
    HeapAlloc,
    /// Kernel: a heap free (lock wait included).
    HeapFree,
    /// Kernel: `call_rcu`.
    CallRcu,
    /// Kernel: running RCU callbacks (one batch of a grace period).
    RcuCallbacks,
}

/// Number of phases.
pub const PHASES: usize = Phase::RcuCallbacks as usize + 1;

/// Their names, in order, as reports print them.
pub const PHASE_NAMES: [&str; PHASES] = [
    "map_total",
    "protect_total",
    "unmap_total",
    "write_lock_wait",
    "write_unlock",
    "room_check",
    "vma_start_write",
    "vma_alloc",
    "tree_edit",
    "vma_free",
    "pt_clear",
    "pt_free_tables",
    "pt_protect",
    "shootdown",
    "free_frames",
    "fault_total",
    "fault_lookup",
    "fault_fallback",
    "fault_pt_walk",
    "fault_frame_alloc",
    "fault_zero",
    "fault_install",
    "heap_alloc",
    "heap_free",
    "call_rcu",
    "rcu_callbacks",
];

/// Times one phase from its creation to its drop.
#[must_use = "a timer measures until it is dropped"]
pub struct Timer<P: Platform> {
    phase: Phase,
    start: u64,
    _p: PhantomData<fn() -> P>,
}

impl<P: Platform> Timer<P> {
    #[inline(always)]
    pub fn start(phase: Phase) -> Self {
        Timer {
            phase,
            start: P::phase_start(),
            _p: PhantomData,
        }
    }
}

impl<P: Platform> Drop for Timer<P> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.start != 0 {
            P::phase_end(self.phase, self.start);
        }
    }
}
