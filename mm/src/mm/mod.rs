//! The address space (`Mm`): its locks, its VMA tree, its page table, and the
//! operations that change it. One concept per file:
//!
//! - `lifetime.rs`: creation, the two reference counts, teardown.
//! - `locks.rs`: the `mmap_lock` guards, and the VMA lookups they allow.
//! - `state.rs`: settings, statistics, snapshots.
//! - `tlb.rs`: the CPU mask a TLB shootdown reaches.
//! - `check.rs`: the invariant check tests run.
//! - `range.rs`: argument checks and the VMA budget.
//! - `map.rs`, `unmap.rs`, `protect.rs`: the operations.
//! - `edit.rs`: the one way every operation changes the VMA tree.
//!
//! # Locks
//! - `mmap_lock` (a sleeping reader/writer semaphore) serializes every change.
//!   [`Mm::write_lock`] also makes `lock_seq` odd; dropping the guard makes it
//!   even again, which ends every VMA write lock taken meanwhile.
//!   `unmap` downgrades it to read once the tree is edited
//!   ([`MmapWriteGuard::downgrade`], which ends the VMA write locks too) and
//!   tears the page table down under read (`unmap.rs` says why that is safe).
//! - Each VMA has its own reference-count lock (`vma_lock.rs`), which lets a
//!   page fault work on one VMA while the `mmap_lock` is held for write by
//!   someone changing *another* part of the address space.
//!
//! # How a change stays safe for lockless readers
//! A VMA's range never changes while it is attached. Every change of ranges
//! (split, merge, unmap, a new protection for part of a VMA) is one
//! `Mm::edit`: write-lock the VMAs that go away (waiting for their readers),
//! build and attach the VMAs that replace them (write-locked too, so readers
//! back off until the mmap write unlock), publish the new tree in one step,
//! then detach and free the old VMAs. A reader therefore sees the old VMAs
//! or the new ones, never a hole in the middle of a split, and never a VMA
//! whose range moves under it. The one change made in place is a new
//! protection for exactly one whole VMA (`protect.rs`): under that VMA's
//! write lock, so no reader sees it happen.
//!
//! # Lifetime
//! [`MmRef`] is a user handle (Linux's `mm_users`): the last one tears the
//! address space down. The structure itself has a second count (`mm_count`)
//! that a VMA reader bumps to keep a *foreign* `Mm` alive across a put (see
//! `vma_lock::vma_start_read`, step 4).

mod check;
mod edit;
mod lifetime;
mod locks;
mod map;
mod protect;
mod range;
mod state;
mod tlb;
mod unmap;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool as CoreAtomicBool, AtomicU64 as CoreAtomicU64};

use crate::counters::FaultCounters;
use crate::page_table::PageTable;
use crate::percpu_counter::PerCpuCounter;
use crate::platform::Platform;
use crate::range_tree::RangeTree;
use crate::seqcount::MmLockSeq;
use crate::sync::{AtomicU64, AtomicUsize};
use crate::vma::VmaPtr;
use crate::vma_cache::VmaCache;

pub use lifetime::MmRef;
pub use locks::{MmapLocked, MmapReadGuard, MmapWriteGuard};
pub use range::check_range;

/// The user address range `[USER_START, USER_END)`: defined once, by the ABI
/// (`abi::mman` says why: nothing below 64 KiB, a guard page at the top).
/// Every mapping lies inside it; `MapAt::Any` searches only inside it.
pub use abi::mman::{USER_END, USER_START};

/// The most VMAs an address space may have (Linux's `vm.max_map_count`,
/// whose default is 65530; ours is smaller because the kernel's first-fit
/// heap makes each `mmap` slower as VMAs pile up: about 5 ms each under
/// QEMU's emulator at 30,000). Each VMA costs kernel memory, so without a
/// bound one process could spend the kernel's heap on `PROT_NONE` mappings,
/// which take no frames of its own. An operation that would go past it fails with
/// `NoMemory` (a fixed mapping is charged two: it may split a VMA).
pub const MAX_MAP_COUNT: usize = 8192;

/// Why an address-space operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmError {
    ZeroLength,
    Unaligned,
    Overflow,
    OutOfRange,
    BadFlags,
    /// No room for the mapping, or no frame for a page-table page.
    NoMemory,
    /// `protect` of a range with holes.
    NotMapped,
}

impl MmError {
    /// The Linux errno a syscall returns for it.
    pub fn errno(self) -> i32 {
        const EINVAL: i32 = 22;
        const ENOMEM: i32 = 12;
        match self {
            MmError::NoMemory | MmError::NotMapped => ENOMEM,
            _ => EINVAL,
        }
    }
}

/// Where `map` puts the new mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapAt {
    /// Anywhere (the lowest gap).
    Any,
    /// Here if it is free, else anywhere.
    Hint(u64),
    /// Exactly here, replacing whatever overlaps.
    Fixed(u64),
}

/// The VMA tree: address range to VMA.
pub type VmaTree<P> = RangeTree<VmaPtr<P>, P>;

/// An address space.
pub struct Mm<P: Platform> {
    pub(crate) mmap_lock: P::RwSemaphore,
    pub(crate) lock_seq: MmLockSeq,
    pub(crate) vmas: VmaTree<P>,
    pub(crate) writer_wait: P::WaitSlot,
    /// `MmRef` handles (Linux's `mm_users`).
    users: AtomicUsize,
    /// References to the structure (Linux's `mm_count`); all users together
    /// hold one.
    count: AtomicUsize,
    /// CPUs that may cache translations of this address space. Bits are
    /// only ever set. A loom atomic under loom, so the shootdown ordering
    /// (`note_cpu` against `cpus_to_flush`) is model-checked.
    cpumask: AtomicU64,
    /// Per-CPU fault counters.
    pub counters: FaultCounters,
    pub(crate) cache: Arc<VmaCache<P>>,
    pub(crate) page_table: PageTable<P>,
    /// Data frames mapped (resident pages): every fault adds one, so it is
    /// split per CPU (a shared atomic's cache line moved between the
    /// faulting CPUs on every fault). Read by summing: see `Mm::rss`.
    pub(crate) rss: PerCpuCounter,
    /// Page-table pages below the root (changed a few times per table, not
    /// per fault). Statistics for tests: Relaxed.
    pub(crate) pt_pages: CoreAtomicU64,
    /// Whether faults may use the per-VMA lock (else always `mmap_lock`).
    per_vma_lock: CoreAtomicBool,
    /// The most resident data pages (`rss`) the address space may have; a
    /// fault that would need one more fails with `OutOfMemory`. Relaxed: a
    /// setting read on its own. A soft limit: a fault compares the summed
    /// `rss` with it, and that sum counts every page installed before the
    /// fault's sum began; it misses only pages installed or freed while it
    /// is summing. So faults that pass the check together each add a page
    /// the others did not see (the same overshoot of one page per
    /// concurrent fault as with one shared counter), and a fault racing an
    /// unmap on another CPU may see the unmap's pages gone before their
    /// faults counted in (at most as many more as that unmap frees during
    /// the sum). With no limit set (`u64::MAX`) faults do not sum at all.
    frame_limit: CoreAtomicU64,
}

// SAFETY: `Mm` is made of atomics, platform locks (`Send + Sync` by their
// traits) and a tree whose writers are serialized by `mmap_lock`; all shared
// mutation goes through those, so `&Mm` may be used from every thread.
unsafe impl<P: Platform> Sync for Mm<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Send for Mm<P> {}
