//! The VMA (virtual memory area): one mapped range of an address space.
//!
//! A VMA's memory is *type-stable* (see `vma_cache.rs`): a reader that found a
//! pointer in the VMA tree inside an RCU read section may, by the time it
//! looks, find the memory reused for a different VMA, of this or another
//! address space. Every field a stale reader can touch is therefore an atomic,
//! and the lock protocol (`vma_lock.rs`) re-checks the owner and the range
//! after taking a reference.
//!
//! The range and the owner are written only while the VMA is detached
//! (`refcnt == 0`) and not yet handed to a reader; attaching it publishes
//! them with a Release store of `refcnt` (see `vma_lock::vma_mark_attached`).
//! A change of range is made by replacing the VMA with a new one
//! (`mm/edit.rs`). The protection is written at attach too, and changed in
//! place only under the VMA's write lock (`Vma::set_prot`), which no reader
//! holds. So while a reader holds a reference none of them changes.

use core::ops::Range;
use core::ptr::NonNull;

use crate::mm::{Mm, MmapLocked};
use crate::platform::Platform;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Page size: 4 KiB.
pub const PAGE_SIZE: u64 = 4096;

bitflags::bitflags! {
    /// Protection flags of a VMA (`PROT_READ | PROT_WRITE | PROT_EXEC`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Prot: u32 {
        const READ = 1;
        const WRITE = 2;
        const EXEC = 4;
        const RW = Self::READ.bits() | Self::WRITE.bits();
    }
}

impl Prot {
    pub const NONE: Prot = Prot::empty();
}

/// Written over the fields of a freed VMA in debug builds (see `vma_cache.rs`).
pub(crate) const POISON: u64 = 0x6b6b_6b6b_6b6b_6b6b;

/// A VMA. Lives in the VMA cache; handed around as `&Vma` or [`VmaPtr`].
pub struct Vma<P: Platform> {
    /// The reference-count lock (see `vma_lock.rs`): 0 detached, 1 attached,
    /// 1 + n with n readers, + `LOCK_OFFSET` while a writer waits.
    pub(crate) refcnt: AtomicU32,
    /// `mm.lock_seq` when this VMA was last write-locked.
    pub(crate) lock_seq: AtomicU32,
    /// The owning address space.
    pub(crate) mm: AtomicPtr<Mm<P>>,
    start: AtomicU64,
    end: AtomicU64,
    prot: AtomicU32,
    /// Whether the anonymous-memory bookkeeping of this VMA is set up (Linux's
    /// `anon_vma`). Setting it up needs the `mmap_lock`, so the first fault in
    /// a VMA under the per-VMA lock asks to be retried under `mmap_lock`.
    pub(crate) anon_ready: AtomicBool,
}

impl<P: Platform> Vma<P> {
    /// A blank, detached VMA (only the cache creates them).
    pub(crate) fn blank() -> Self {
        Vma {
            refcnt: AtomicU32::new(0),
            // No `mm.lock_seq` equals it until the count wraps: not locked.
            lock_seq: AtomicU32::new(u32::MAX),
            mm: AtomicPtr::new(core::ptr::null_mut()),
            start: AtomicU64::new(0),
            end: AtomicU64::new(0),
            prot: AtomicU32::new(0),
            anon_ready: AtomicBool::new(false),
        }
    }

    /// Fill in a detached VMA before it is attached.
    pub(crate) fn init(&self, mm: *const Mm<P>, range: Range<u64>, prot: Prot, anon_ready: bool) {
        debug_assert_eq!(
            self.refcnt.load(Ordering::Relaxed),
            0,
            "init of an attached VMA"
        );
        // Relaxed stores: `vma_mark_attached` publishes them with its
        // Release store.
        self.mm.store(mm as *mut Mm<P>, Ordering::Relaxed);
        self.start.store(range.start, Ordering::Relaxed);
        self.end.store(range.end, Ordering::Relaxed);
        self.prot.store(prot.bits(), Ordering::Relaxed);
        self.anon_ready.store(anon_ready, Ordering::Relaxed);
    }

    /// Overwrite the fields a freed VMA must not be read for. `refcnt` stays
    /// 0 (so stale readers still fail to take it) and `lock_seq` keeps its
    /// value (a stale pre-check may read it; any value is harmless there).
    pub(crate) fn poison(&self) {
        self.mm.store(POISON as *mut Mm<P>, Ordering::Relaxed);
        self.start.store(POISON, Ordering::Relaxed);
        self.end.store(POISON, Ordering::Relaxed);
        self.prot.store(POISON as u32, Ordering::Relaxed);
    }

    /// Whether the fields still hold the poison written when it was freed.
    pub fn is_poisoned(&self) -> bool {
        self.start.load(Ordering::Relaxed) == POISON
            && self.end.load(Ordering::Relaxed) == POISON
            && self.prot.load(Ordering::Relaxed) == POISON as u32
            && self.mm.load(Ordering::Relaxed) as u64 == POISON
    }

    // Relaxed loads below: callers hold a reference (readers) or the mmap
    // write lock (writers); either way the fields were published to them by
    // the Acquire that gave them the VMA (see the module docs).

    pub fn start(&self) -> u64 {
        self.start.load(Ordering::Relaxed)
    }

    pub fn end(&self) -> u64 {
        self.end.load(Ordering::Relaxed)
    }

    pub fn range(&self) -> Range<u64> {
        self.start()..self.end()
    }

    pub fn prot(&self) -> Prot {
        // Poison bits are kept, so a stale reader sees them as such.
        Prot::from_bits_retain(self.prot.load(Ordering::Relaxed))
    }

    /// Change the protection of an attached VMA in place (Linux's
    /// `vm_flags_reset`). The caller holds the mmap write lock and has
    /// write-locked the VMA (`vma_start_write`): no reader holds it, none gets
    /// in until the write unlock, and that unlock's Release on `mm.lock_seq`
    /// publishes the new value to every reader that gets in after it (step 5
    /// of `vma_start_read` loads it with Acquire).
    pub(crate) fn set_prot(&self, mm: &Mm<P>, prot: Prot) {
        crate::protocol_assert!(
            crate::vma_lock::vma_is_write_locked(mm, self),
            "protection changed without the VMA write lock"
        );
        // Relaxed: published by the write unlock (above).
        self.prot.store(prot.bits(), Ordering::Relaxed);
    }

    /// The owner, as last published. A stale reader must compare it with its
    /// own `mm` before trusting anything else.
    pub fn mm_ptr(&self) -> *const Mm<P> {
        self.mm.load(Ordering::Relaxed)
    }

    /// `mm.lock_seq` when it was last write-locked (for tests).
    pub fn lock_seq(&self) -> u32 {
        self.lock_seq.load(Ordering::Relaxed)
    }

    /// Whether the anonymous-memory bookkeeping is set up (see the field).
    pub fn anon_ready(&self) -> bool {
        self.anon_ready.load(Ordering::Relaxed)
    }

    /// The reference count (for tests and assertions).
    pub fn refcnt(&self) -> u32 {
        self.refcnt.load(Ordering::Relaxed)
    }
}

/// A pointer to a VMA in the cache, as stored in the VMA tree. Copy, so the
/// tree can hand out values; it owns nothing.
pub struct VmaPtr<P: Platform>(pub(crate) NonNull<Vma<P>>);

impl<P: Platform> Clone for VmaPtr<P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P: Platform> Copy for VmaPtr<P> {}

impl<P: Platform> PartialEq for VmaPtr<P> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<P: Platform> Eq for VmaPtr<P> {}

impl<P: Platform> core::fmt::Debug for VmaPtr<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "VmaPtr({:p})", self.0)
    }
}

// SAFETY: a `VmaPtr` is an address; the `Vma` behind it is made only of
// atomics and lives in type-stable memory that outlives every RCU reader, so
// it may be shared and sent between threads like `&Vma`.
unsafe impl<P: Platform> Send for VmaPtr<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Sync for VmaPtr<P> {}

impl<P: Platform> VmaPtr<P> {
    /// The raw pointer (a method, so closures capture the whole `Send`
    /// `VmaPtr` rather than its non-`Send` field).
    pub fn as_raw(self) -> *mut Vma<P> {
        self.0.as_ptr()
    }

    /// The VMA, for a holder of its address space's `mmap_lock`.
    ///
    /// What the witness proves: `guard` holds an address space's mmap lock
    /// (read or write), and detaching a VMA needs the write lock, so no VMA
    /// of that address space is detached or freed before the guard drops;
    /// the reference cannot outlive the guard. What it does not prove: that
    /// this pointer belongs to *that* address space (the types cannot see
    /// where it came from), hence `unsafe`. (The returned reference borrows
    /// `guard`: the elided lifetime is the guard's.) [`MmapLocked::find`] and
    /// [`MmapLocked::overlapping`] look up under the guard and need none.
    ///
    /// # Safety
    /// The VMA belongs to the address space whose mmap lock `guard` holds:
    /// it was found in that address space's tree while `guard` was held, or
    /// was allocated for it by the holder of `guard` and not freed since.
    pub unsafe fn get<G: MmapLocked<P> + ?Sized>(self, guard: &G) -> &Vma<P> {
        let _ = guard;
        // SAFETY: by the contract the VMA is attached to (or being built
        // for) the locked address space, and only a holder of its write lock
        // can free it, which cannot happen while `guard` lives.
        unsafe { self.get_unchecked() }
    }

    /// The VMA's memory, for a lockless reader inside an RCU read section.
    ///
    /// What the witness proves: the memory stays a `Vma` while `guard`
    /// lives. VMA memory is type-stable (`vma_cache.rs`): it goes back to the
    /// allocator only a grace period after it leaves the cache, and no grace
    /// period ends while `guard` does not. What it does not prove: that it
    /// is still the VMA the pointer was found as. It may be detached, freed
    /// and reused for another range or another address space at any moment;
    /// only the lock protocol makes it stable (`vma_start_read`, then the
    /// owner and range re-checks of `lookup.rs`).
    ///
    /// # Safety
    /// The memory had not gone back to the allocator when `guard`'s section
    /// began: true if `self` was found in a VMA tree inside this section, or
    /// the VMA has been kept attached since it was found.
    pub unsafe fn get_rcu(self, guard: &P::ReadGuard) -> &Vma<P> {
        let _ = guard;
        // SAFETY: live when the section began (contract) and not returned to
        // the allocator before a grace period, which outlasts `guard`.
        unsafe { self.get_unchecked() }
    }

    /// The VMA with a lifetime nobody checks. Crate-private, for the two
    /// places that hold the VMA alive by other means: the cache that owns
    /// it (`vma_cache.rs`), and a reader holding a reference count on it
    /// (`lookup.rs`).
    ///
    /// # Safety
    /// The memory stays a live `Vma` for `'a`: the caller owns it (it is on
    /// the cache's free list, or just allocated) or holds a reference count
    /// on it that it drops only after `'a`.
    pub(crate) unsafe fn get_unchecked<'a>(self) -> &'a Vma<P> {
        // SAFETY: live for `'a` by the caller's contract.
        unsafe { self.0.as_ref() }
    }
}

impl<P: Platform> From<&Vma<P>> for VmaPtr<P> {
    fn from(vma: &Vma<P>) -> Self {
        VmaPtr(NonNull::from(vma))
    }
}
