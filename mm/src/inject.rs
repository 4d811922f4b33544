//! Race-injection points: named places in the lock protocol and the fault
//! path where a test can stop a CPU (feature `race-inject`, test builds only).
//!
//! `race_point!(Name, mm = .., vma = .., addr = ..)` marks a point. Without
//! the feature it expands to nothing, so release and `make run` kernels carry
//! no trace of it. With the feature it calls the hook the platform installed
//! with [`set_hook`] (the kernel's `race` module), passing the point and a
//! [`Site`] that says which address space, VMA and address it is about, so
//! a test can stop exactly the CPU it means and let unrelated faults through.
//!
//! This module only names the points and calls the hook: it never waits
//! itself, so `mm` stays free of anything machine-specific. The hook may
//! spin (it must not sleep: several points are inside RCU read sections).

use core::sync::atomic::{AtomicPtr, Ordering};

/// Every point, in the order a fault, a writer and an exit reach them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Point {
    /// `lock_vma_under_rcu`: the tree walk found `vma` for `addr`; not yet
    /// `vma_start_read` (inside the RCU read section).
    LookupFound,
    /// `lock_vma_under_rcu`: `vma` was detached ("miss"); about to walk
    /// again from the root.
    LookupRestart,
    /// `vma_start_read`: the cheap `lock_seq` pre-check passed; the
    /// reference is not taken yet.
    ReadPrecheckPassed,
    /// `vma_start_read`: the reference is taken (and annotated); the owner
    /// and `lock_seq` checks have not run yet.
    ReadAfterInc,
    /// `vma_refcount_put`: before the decrement (`mm`: the VMA's owner).
    PutBeforeDec,
    /// `vma_refcount_put`: after the decrement, before any wakeup. The VMA
    /// may already be freed: only its address is passed.
    PutAfterDec,
    /// `vma_start_write`: `LOCK_OFFSET` added, not yet waiting for readers.
    WriterOffsetAdded,
    /// `vma_start_write`: the readers drained; `lock_seq` not yet written.
    WriterAfterWait,
    /// `vma_mark_detached`: called, nothing changed yet.
    DetachStart,
    /// `vma_mark_detached`: the attach reference is dropped; not yet waiting
    /// for transient readers.
    DetachDecremented,
    /// `vma_mark_detached`: waited for transient readers (only when there
    /// were any); the count is not yet 0.
    DetachAfterWait,
    /// `Mm::edit`: `vma` is detached (count 0); not yet given back.
    EditDetached,
    /// `VmaCache::free`: `vma` is about to go on the free list (it may be
    /// reused at once after this).
    VmaFree,
    /// The cache returns `vma`'s memory to the allocator (after a grace
    /// period).
    VmaRelease,
    /// `protect`: `vma` (write-locked) has its new protection, changed in
    /// place; its page-table entries are not rewritten yet.
    ProtectInPlace,
    /// `unmap`: the VMAs are out of the tree (`addr`: start of the range).
    UnmapTreeEdited,
    /// `unmap`: page-table entries cleared and empty tables unhooked.
    UnmapPtCleared,
    /// `unmap`: the TLB shootdown returned.
    UnmapShotDown,
    /// `unmap`: frames and page-table pages given back.
    UnmapFreed,
    /// `handle_fault`: the leaf entry for `addr` is found or allocated; no
    /// page installed yet.
    FaultLeafFound,
    /// `handle_user_fault`: about to take the `mmap_lock` (the fallback).
    FaultFallback,
    /// `MmRef::drop` of the last user: the address space is torn down and
    /// its users' pin dropped (it is freed unless someone else pins it).
    MmExitDone,
    /// `mmdrop`: the address space's structure is about to be freed.
    MmFree,
    /// A range-tree walk for `addr` has loaded a node (inside the caller's
    /// RCU read section) and not read it yet.
    TreeNodeLoaded,
    /// Range-tree nodes unlinked by a change are about to be freed (the
    /// RCU callback, after a grace period).
    TreeNodesFree,
}

/// What a point is about; 0 for what it does not know. Addresses only: a
/// hook must never dereference them (a VMA may be freed at `PutAfterDec`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Site {
    /// The address space (`*const Mm`).
    pub mm: usize,
    /// The VMA (`*const Vma`).
    pub vma: usize,
    /// The faulting address or the start of the range.
    pub addr: u64,
}

/// The platform's hook (see [`set_hook`]).
pub type Hook = fn(Point, &Site);

/// The hook, or null. A function pointer stored as a data pointer, because
/// core has no atomic function pointer.
static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Install `hook`: from now on every point reached calls it.
pub fn set_hook(hook: Hook) {
    // Release pairs with the Acquire in `reached`: whatever the platform set
    // up before installing the hook is visible to the CPU that calls it.
    HOOK.store(hook as *mut (), Ordering::Release);
}

/// A point was reached (called by `race_point!`).
pub fn reached(point: Point, site: Site) {
    let p = HOOK.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: only `set_hook` stores non-null values, and it stores a
        // `Hook` (a function pointer has the size of a data pointer here).
        let hook: Hook = unsafe { core::mem::transmute::<*mut (), Hook>(p) };
        hook(point, &site);
    }
}

/// Turns what a call site has (a reference, a raw pointer, an address) into
/// the number a [`Site`] holds.
pub trait SiteKey {
    fn site_key(self) -> usize;
}

impl<T> SiteKey for &T {
    fn site_key(self) -> usize {
        self as *const T as usize
    }
}

impl<T> SiteKey for *const T {
    fn site_key(self) -> usize {
        self as usize
    }
}

impl<T> SiteKey for *mut T {
    fn site_key(self) -> usize {
        self as usize
    }
}

impl SiteKey for u64 {
    fn site_key(self) -> usize {
        self as usize
    }
}
