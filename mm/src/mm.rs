//! The address space (`Mm`): its locks, its VMA tree, its page table, and the
//! operations that change it (map, unmap, protect).
//!
//! # Locks
//! - `mmap_lock` (a sleeping reader/writer semaphore) serializes every change.
//!   [`Mm::write_lock`] also makes `lock_seq` odd; dropping the guard makes it
//!   even again, which ends every VMA write lock taken meanwhile.
//! - Each VMA has its own reference-count lock (`vma_lock.rs`), which lets a
//!   page fault work on one VMA while the `mmap_lock` is held for write by
//!   someone changing *another* part of the address space.
//!
//! # How a change stays safe for lockless readers
//! A VMA's range and protection never change while it is attached. Every
//! change (split, merge, new protection) is one [`Mm::edit`]: write-lock the
//! VMAs that go away (waiting for their readers), build and attach the VMAs
//! that replace them (write-locked too, so readers back off until the mmap
//! write unlock), publish the new tree in one step, then detach and free the
//! old VMAs. A reader therefore sees the old VMAs or the new ones, never a
//! hole in the middle of a split, and never a VMA whose range moves under it.
//!
//! # Lifetime
//! [`MmRef`] is a user handle (Linux's `mm_users`): the last one tears the
//! address space down. The structure itself has a second count (`mm_count`)
//! that a VMA reader bumps to keep a *foreign* `Mm` alive across a put (see
//! `vma_lock::vma_start_read`, step 4).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::{Deref, Range};
use core::ptr::NonNull;
use core::sync::atomic::{
    AtomicBool as CoreAtomicBool, AtomicU64 as CoreAtomicU64, Ordering as CoreOrdering,
};

use crate::counters::FaultCounters;
use crate::page_table::{self, PageTable, Unhooked};
use crate::platform::{LockClass, LockOp, Platform, RwSemaphore, WaitSlot};
use crate::range_tree::RangeTree;
use crate::seqcount::MmLockSeq;
use crate::sync::{AtomicU64, AtomicUsize, Ordering, fence};
use crate::vma::{PAGE_SIZE, Prot, Vma, VmaPtr};
use crate::vma_cache::VmaCache;
use crate::vma_lock::{vma_mark_attached, vma_mark_detached, vma_start_write};

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
    /// Data frames mapped (resident pages), and page-table pages below the
    /// root. Statistics for tests: Relaxed.
    pub(crate) rss: CoreAtomicU64,
    pub(crate) pt_pages: CoreAtomicU64,
    /// Whether faults may use the per-VMA lock (else always `mmap_lock`).
    per_vma_lock: CoreAtomicBool,
    /// The most resident data pages (`rss`) the address space may have; a
    /// fault that would need one more fails with `OutOfMemory`. Relaxed:
    /// a setting read on its own; concurrent faults may overshoot it by at
    /// most one page each.
    frame_limit: CoreAtomicU64,
}

/// A user handle on an address space. The last one dropped unmaps everything.
pub struct MmRef<P: Platform>(NonNull<Mm<P>>);

// SAFETY: `Mm` is made of atomics, platform locks (`Send + Sync` by their
// traits) and a tree whose writers are serialized by `mmap_lock`; all shared
// mutation goes through those, so handles may cross threads.
unsafe impl<P: Platform> Send for MmRef<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Sync for MmRef<P> {}
// SAFETY: as above; `&Mm` is what every thread uses.
unsafe impl<P: Platform> Sync for Mm<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Send for Mm<P> {}

impl<P: Platform> Mm<P> {
    /// A new, empty address space whose VMAs come from `cache`. Returns the
    /// first user handle, not the `Mm` itself: the structure is shared.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(cache: Arc<VmaCache<P>>) -> Result<MmRef<P>, MmError> {
        Self::with_lock_seq(cache, 0)
    }

    /// As `new`, with `lock_seq` starting at `seq` (even). Tests use it to
    /// reach the sequence count's wrap-around.
    pub fn with_lock_seq(cache: Arc<VmaCache<P>>, seq: u32) -> Result<MmRef<P>, MmError> {
        let page_table = PageTable::new().map_err(|_| MmError::NoMemory)?;
        let mm = alloc::boxed::Box::new(Mm {
            mmap_lock: P::RwSemaphore::new(),
            lock_seq: MmLockSeq::starting_at(seq),
            vmas: RangeTree::new(),
            writer_wait: P::WaitSlot::new(),
            users: AtomicUsize::new(1),
            count: AtomicUsize::new(1),
            cpumask: AtomicU64::new(0),
            counters: FaultCounters::new(),
            cache,
            page_table,
            rss: CoreAtomicU64::new(0),
            pt_pages: CoreAtomicU64::new(0),
            per_vma_lock: CoreAtomicBool::new(true),
            frame_limit: CoreAtomicU64::new(u64::MAX),
        });
        Ok(MmRef(NonNull::from(alloc::boxed::Box::leak(mm))))
    }

    // ---- lifetime ----

    /// Pin the structure (Linux's `mmgrab`).
    ///
    /// # Safety
    /// `mm` must be alive (the caller holds a reference that keeps it so).
    pub(crate) unsafe fn mmgrab(mm: *const Mm<P>) {
        // SAFETY: alive by the caller's contract.
        let m = unsafe { &*mm };
        // Relaxed: like any reference-count increment from a live reference.
        m.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Unpin; the last reference frees the structure (Linux's `mmdrop`).
    ///
    /// # Safety
    /// Pairs with an `mmgrab` (or is the users' reference); `mm` is not used
    /// by the caller afterwards.
    pub(crate) unsafe fn mmdrop(mm: *const Mm<P>) {
        // SAFETY: our reference keeps it alive until the decrement.
        let m = unsafe { &*mm };
        // AcqRel: every other holder's use happens before the free.
        if m.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: the count reached 0, so nobody else can reach it.
            unsafe { free_mm(mm as *mut Mm<P>) };
        }
    }

    /// Whether the structure is still referenced (for debug assertions).
    pub(crate) fn is_alive(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    // ---- locks ----

    /// Take the `mmap_lock` for write; `lock_seq` becomes odd.
    pub fn write_lock(&self) -> MmapWriteGuard<'_, P> {
        self.mmap_lock.write_lock();
        P::lock_event(
            LockClass::MmapLock,
            self as *const Self as usize,
            LockOp::AcquireWrite,
        );
        self.lock_seq.write_begin();
        MmapWriteGuard { mm: self }
    }

    /// Take the `mmap_lock` for read.
    pub fn read_lock(&self) -> MmapReadGuard<'_, P> {
        self.mmap_lock.read_lock();
        P::lock_event(
            LockClass::MmapLock,
            self as *const Self as usize,
            LockOp::AcquireRead,
        );
        MmapReadGuard { mm: self }
    }

    // ---- state for the kernel, tests, benchmarks ----

    /// Physical address of the page table's root.
    pub fn page_table_root(&self) -> u64 {
        self.page_table.root()
    }

    /// CPUs that may cache translations of this address space (a snapshot
    /// for statistics and tests; a shootdown uses [`Mm::cpus_to_flush`]).
    pub fn cpumask(&self) -> u64 {
        self.cpumask.load(Ordering::Relaxed)
    }

    /// Record that `cpu` may now cache translations. The kernel calls it
    /// when it switches to this address space, *before* loading its page
    /// table; faults call it too.
    ///
    /// This is one side of a store-buffering pattern with
    /// [`Mm::cpus_to_flush`]: this CPU sets its bit, then (through the MMU)
    /// reads page-table entries; a CPU changing the table stores entries,
    /// then reads the mask. Without a full fence on both sides each could
    /// miss the other's store: the changer sends no IPI to this CPU, and
    /// this CPU caches the old translation, which then outlives the change
    /// (and the frame it points to may be reused).
    pub fn note_cpu(&self, cpu: usize) {
        let bit = 1u64 << (cpu % 64);
        // Relaxed: when the bit is set already, the fence below was executed
        // by whoever set it, before this CPU's first table walk, and bits are
        // never cleared, so the pairing still holds for later walks.
        if self.cpumask.load(Ordering::Relaxed) & bit == 0 {
            self.cpumask.fetch_or(bit, Ordering::Relaxed);
            // SeqCst fence: pairs with the one in `cpus_to_flush`. Either the
            // changer's mask load sees this bit (and it flushes us), or our
            // table walks after this point see its new entries.
            fence(Ordering::SeqCst);
        }
    }

    /// The CPUs a TLB shootdown must reach after this caller changed
    /// page-table entries (the other side of the pattern in `note_cpu`).
    /// Public for the loom litmus test of the pattern.
    pub fn cpus_to_flush(&self) -> u64 {
        // SeqCst fence: pairs with the one in `note_cpu`. Our entry stores
        // are ordered before the mask load, so a CPU whose bit we miss set it
        // after the fence and will walk the table after our stores.
        fence(Ordering::SeqCst);
        self.cpumask.load(Ordering::Relaxed)
    }

    /// Count a fault event here and tell the platform (which may keep
    /// machine-wide counters).
    pub(crate) fn count_event(&self, cpu: usize, event: crate::counters::Event) {
        self.counters.count(cpu, event);
        P::fault_event(cpu, event);
    }

    /// Count a user fault that `fault::handle_user_fault` refused
    /// (`AccessError`) as `segv`, once, when the caller gives up on it (see
    /// the rule in `counters.rs`).
    pub fn count_bad_fault(&self, cpu: usize) {
        self.count_event(cpu, crate::counters::Event::Segv);
    }

    /// Switch the per-VMA fault path on or off (off: every fault takes
    /// `mmap_lock`; the benchmark compares both in the same run).
    pub fn set_per_vma_lock(&self, on: bool) {
        self.per_vma_lock.store(on, CoreOrdering::Relaxed);
    }

    pub fn per_vma_lock(&self) -> bool {
        self.per_vma_lock.load(CoreOrdering::Relaxed)
    }

    /// Limit the resident data pages to `frames` (the kernel's
    /// `user.max_frames=`); `u64::MAX` is no limit.
    pub fn set_frame_limit(&self, frames: u64) {
        self.frame_limit.store(frames, CoreOrdering::Relaxed);
    }

    /// Whether a fault may take one more data page.
    pub(crate) fn may_take_frame(&self) -> bool {
        self.rss() < self.frame_limit.load(CoreOrdering::Relaxed)
    }

    /// Resident data pages.
    pub fn rss(&self) -> u64 {
        self.rss.load(CoreOrdering::Relaxed)
    }

    /// Page-table pages below the root.
    pub fn page_table_pages(&self) -> u64 {
        self.pt_pages.load(CoreOrdering::Relaxed)
    }

    /// Number of VMAs.
    pub fn vma_count(&self) -> usize {
        self.vmas.len()
    }

    /// A snapshot of the VMAs, in address order (takes the read lock).
    pub fn vmas(&self) -> Vec<(Range<u64>, Prot)> {
        let _r = self.read_lock();
        let g = P::read_lock();
        let all = self.vmas.overlapping(0..u64::MAX, &g);
        // SAFETY: the mmap read lock keeps the tree's VMAs attached.
        all.into_iter()
            .map(|(r, v)| (r, unsafe { v.get() }.prot()))
            .collect()
    }

    /// The VMA containing `addr` (takes the read lock).
    pub fn find(&self, addr: u64) -> Option<(Range<u64>, Prot)> {
        let _r = self.read_lock();
        let g = P::read_lock();
        // SAFETY: the mmap read lock keeps the tree's VMAs attached.
        self.vmas
            .find(addr, &g)
            .map(|(r, v)| (r, unsafe { v.get() }.prot()))
    }

    /// The VMA pointer the tree holds for `addr`, for a lockless reader (the
    /// first step of `lock_vma_under_rcu`). The VMA may be detached or reused
    /// by the time the caller looks: it must take the read lock before
    /// trusting it.
    pub fn find_vma_rcu(&self, addr: u64, guard: &P::ReadGuard) -> Option<VmaPtr<P>> {
        self.vmas.find(addr, guard).map(|(_, v)| v)
    }

    /// The current `mm_lock_seq` (odd while write-locked).
    pub fn lock_seq(&self) -> u32 {
        self.lock_seq.read_acquire()
    }

    /// The VMA containing `addr`, for a caller holding the mmap lock.
    pub(crate) fn find_locked(&self, addr: u64) -> Option<VmaPtr<P>> {
        let g = P::read_lock();
        self.vmas.find(addr, &g).map(|(_, v)| v)
    }

    /// Present leaves and page-table pages below the root, by a full walk
    /// of the page table (tests compare it with the counters).
    pub fn census(&self) -> (u64, u64) {
        self.page_table.census()
    }

    /// Check the address space's invariants; panics on a violation. For
    /// tests: takes the mmap read lock.
    pub fn check_invariants(&self) {
        let _r = self.read_lock();
        let g = P::read_lock();
        let all = self.vmas.overlapping(0..u64::MAX, &g);
        assert_eq!(all.len(), self.vmas.len(), "tree length");
        let mut prev_end = USER_START;
        for (r, v) in &all {
            // SAFETY: the mmap read lock keeps the tree's VMAs attached.
            let vma = unsafe { v.get() };
            assert!(
                r.start >= prev_end && r.start < r.end && r.end <= USER_END,
                "VMA ranges {r:?}"
            );
            assert!(
                r.start.is_multiple_of(PAGE_SIZE) && r.end.is_multiple_of(PAGE_SIZE),
                "unaligned VMA {r:?}"
            );
            assert_eq!(vma.range(), *r, "tree key and VMA range differ");
            assert!(
                core::ptr::eq(vma.mm_ptr(), self),
                "VMA of another mm in the tree"
            );
            assert!(
                vma.refcnt() >= 1 && vma.refcnt() < crate::vma_lock::LOCK_OFFSET,
                "refcnt {}",
                vma.refcnt()
            );
            assert_ne!(
                vma.lock_seq(),
                self.lock_seq.read_relaxed(),
                "VMA write-locked outside a write lock"
            );
            assert!(!vma.is_poisoned(), "poisoned VMA in the tree");
            prev_end = r.end;
        }
        for va in self.page_table.mapped_pages() {
            let i = all.partition_point(|(r, _)| r.end <= va);
            assert!(
                i < all.len() && all[i].0.start <= va,
                "page {va:#x} mapped outside any VMA"
            );
        }
    }

    // ---- operations ----

    /// Map `len` bytes of anonymous private memory with protection `prot`.
    /// Returns the address.
    pub fn map(&self, at: MapAt, len: u64, prot: u32) -> Result<u64, MmError> {
        let prot = Prot::from_bits(prot).ok_or(MmError::BadFlags)?;
        if len == 0 {
            return Err(MmError::ZeroLength);
        }
        if !len.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::Unaligned);
        }
        if let MapAt::Fixed(addr) = at {
            check_range(addr, len)?;
        }
        let w = self.write_lock();
        // A fixed mapping in the middle of a VMA splits it: two more.
        self.room_for(if matches!(at, MapAt::Fixed(_)) { 2 } else { 1 })?;
        let start = match at {
            MapAt::Fixed(addr) => {
                self.unmap_locked(&w, addr..addr + len);
                addr
            }
            MapAt::Hint(h) if check_range(h, len).is_ok() && self.is_free(h..h + len) => h,
            _ => {
                let g = P::read_lock();
                self.vmas
                    .find_gap(len, USER_START..USER_END, &g)
                    .ok_or(MmError::NoMemory)?
            }
        };
        self.edit(&w, &[], &[(start..start + len, prot, false)]);
        Ok(start)
    }

    /// Unmap `[addr, addr + len)`; VMAs that straddle an edge are split.
    pub fn unmap(&self, addr: u64, len: u64) -> Result<(), MmError> {
        check_range(addr, len)?;
        let w = self.write_lock();
        let range = addr..addr + len;
        // Only a hole in the middle of a VMA adds one (as on Linux, munmap
        // may fail with ENOMEM then).
        if self
            .overlapping(range.clone())
            .iter()
            .any(|(r, _)| r.start < range.start && r.end > range.end)
        {
            self.room_for(1)?;
        }
        self.unmap_locked(&w, range);
        Ok(())
    }

    /// Change the protection of `[addr, addr + len)`, which must be fully
    /// mapped; the result is merged with equal neighbours.
    pub fn protect(&self, addr: u64, len: u64, prot: u32) -> Result<(), MmError> {
        check_range(addr, len)?;
        let prot = Prot::from_bits(prot).ok_or(MmError::BadFlags)?;
        let range = addr..addr + len;
        let w = self.write_lock();
        let old = self.overlapping(range.clone());
        let mut expect = range.start;
        for (r, _) in &old {
            if r.start > expect {
                return Err(MmError::NotMapped);
            }
            expect = r.end;
        }
        if expect < range.end {
            return Err(MmError::NotMapped);
        }
        let mut remove: Vec<VmaPtr<P>> = old.iter().map(|&(_, v)| v).collect();
        // The `get`s below: we hold the mmap write lock, so the VMAs in the
        // tree stay attached and unchanged.
        let anon = old.iter().all(|(_, v)| {
            // SAFETY: see above.
            unsafe { v.get() }.anon_ready.load(Ordering::Relaxed)
        });
        // SAFETY: see above.
        let first = unsafe { old[0].1.get() };
        // SAFETY: see above.
        let last = unsafe { old[old.len() - 1].1.get() };
        let mut new: Vec<(Range<u64>, Prot, bool)> = Vec::new();
        if first.start() < range.start {
            new.push((
                first.start()..range.start,
                first.prot(),
                first.anon_ready.load(Ordering::Relaxed),
            ));
        }
        new.push((range.clone(), prot, anon));
        if last.end() > range.end {
            new.push((
                range.end..last.end(),
                last.prot(),
                last.anon_ready.load(Ordering::Relaxed),
            ));
        }
        // Merge with equal neighbours just outside the range. (A piece left
        // over by a split is such a neighbour too; `coalesce` handles it.)
        let g = P::read_lock();
        let entry = |v: VmaPtr<P>| {
            // SAFETY: mmap write lock held (see above).
            let vma = unsafe { v.get() };
            (
                vma.range(),
                vma.prot(),
                vma.anon_ready.load(Ordering::Relaxed),
            )
        };
        if first.start() == range.start {
            let left = range
                .start
                .checked_sub(1)
                .and_then(|a| self.vmas.find(a, &g));
            if let Some((r, v)) = left.filter(|(r, v)| r.end == range.start && entry(*v).1 == prot)
            {
                debug_assert_eq!(r, entry(v).0);
                remove.push(v);
                new.insert(0, entry(v));
            }
        }
        if last.end() == range.end {
            let right = self.vmas.find(range.end, &g);
            if let Some((r, v)) = right.filter(|(r, v)| r.start == range.end && entry(*v).1 == prot)
            {
                debug_assert_eq!(r, entry(v).0);
                remove.push(v);
                new.push(entry(v));
            }
        }
        drop(g);
        let merged = coalesce(new);
        self.room_for(merged.len().saturating_sub(remove.len()))?;
        let remove: Vec<(Range<u64>, VmaPtr<P>)> = remove
            .into_iter()
            // SAFETY: we hold this address space's mmap write lock (`w`), so
            // the VMAs found in its tree stay attached and in the cache.
            .map(|v| (unsafe { v.get() }.range(), v))
            .collect();
        self.edit(&w, &remove, &merged);
        if self
            .page_table
            .protect(range.clone(), page_table::leaf_flags(prot))
        {
            P::tlb_shootdown(self.page_table.root(), self.cpus_to_flush(), range);
        }
        Ok(())
    }

    /// `NoMemory` unless `more` VMAs fit under [`MAX_MAP_COUNT`], and the
    /// kernel has memory to spare for them (`Platform::memory_low`). The
    /// caller holds the mmap write lock.
    fn room_for(&self, more: usize) -> Result<(), MmError> {
        if (more > 0 && P::memory_low()) || self.vmas.len() + more > MAX_MAP_COUNT {
            return Err(MmError::NoMemory);
        }
        Ok(())
    }

    /// Whether no VMA overlaps `range` (caller holds the mmap lock).
    fn is_free(&self, range: Range<u64>) -> bool {
        let g = P::read_lock();
        self.vmas
            .find_next(range.start, &g)
            .is_none_or(|(r, _)| r.start >= range.end)
    }

    fn overlapping(&self, range: Range<u64>) -> Vec<(Range<u64>, VmaPtr<P>)> {
        let g = P::read_lock();
        self.vmas.overlapping(range, &g)
    }

    /// Unmap under the write lock: split, detach, clear the page table, shoot
    /// down the TLB, then free frames and unused page-table pages.
    fn unmap_locked(&self, w: &MmapWriteGuard<'_, P>, range: Range<u64>) {
        let old = self.overlapping(range.clone());
        if !old.is_empty() {
            let mut keep = Vec::new();
            for (r, v) in &old {
                // SAFETY: mmap write lock held; the VMA is attached.
                let vma = unsafe { v.get() };
                let anon = vma.anon_ready.load(Ordering::Relaxed);
                if r.start < range.start {
                    keep.push((r.start..range.start, vma.prot(), anon));
                }
                if r.end > range.end {
                    keep.push((range.end..r.end, vma.prot(), anon));
                }
            }
            self.edit(w, &old, &keep);
        }
        let mut out = Unhooked::default();
        self.page_table.clear(range.clone(), &mut out);
        let covered = |span: Range<u64>| {
            let g = P::read_lock();
            self.vmas
                .find_next(span.start, &g)
                .is_some_and(|(r, _)| r.start < span.end)
        };
        self.page_table.free_tables(range, &covered, &mut out);
        if let Some(span) = out.span.clone() {
            // Only after every CPU has dropped the translations (and cached
            // paging-structure entries) may the frames be reused.
            P::tlb_shootdown(self.page_table.root(), self.cpus_to_flush(), span);
        }
        self.rss
            .fetch_sub(out.pages.len() as u64, CoreOrdering::Relaxed);
        self.pt_pages
            .fetch_sub(out.tables.len() as u64, CoreOrdering::Relaxed);
        for pa in out.pages.into_iter().chain(out.tables) {
            P::free_frame(pa);
        }
    }

    /// Replace the VMAs `remove` with new VMAs `insert` (range, protection,
    /// anon_ready) in one step visible to readers. See the module docs.
    fn edit(
        &self,
        _w: &MmapWriteGuard<'_, P>,
        remove: &[(Range<u64>, VmaPtr<P>)],
        insert: &[(Range<u64>, Prot, bool)],
    ) {
        // 1. The old VMAs: wait for their readers, keep new ones out.
        for (_, v) in remove {
            // SAFETY: mmap write lock held; attached VMAs of this mm.
            vma_start_write(self, unsafe { v.get() });
        }
        // 2. The new VMAs: initialised, write-locked, attached (in that
        //    order, so a reader that finds one sees it complete and locked).
        let mut new = Vec::with_capacity(insert.len());
        for (r, prot, anon) in insert {
            let v = self.cache.alloc();
            // SAFETY: a detached VMA the cache just gave us.
            let vma = unsafe { v.get() };
            vma.init(self, r.clone(), *prot, *anon);
            vma_start_write(self, vma);
            vma_mark_attached(vma);
            new.push((r.clone(), v));
        }
        // 3. One publication of the new tree.
        let starts: Vec<u64> = remove.iter().map(|(r, _)| r.start).collect();
        // SAFETY: writers are serialized by the mmap write lock we hold.
        unsafe { self.vmas.replace(&starts, &new) };
        // 4. Detach (waits for transient readers) and free the old ones.
        //    Readers still holding the address see refcnt 0 or a new VMA.
        for (_, v) in remove {
            // SAFETY: write-locked, out of the tree.
            vma_mark_detached(self, unsafe { v.get() });
            // SAFETY: detached, came from our cache, no longer used by us.
            unsafe { self.cache.free(*v) };
        }
    }

    /// Tear down: unmap everything and free the page-table pages.
    fn exit_mmap(&self) {
        let w = self.write_lock();
        self.unmap_locked(&w, USER_START..USER_END);
        debug_assert_eq!(self.rss(), 0);
        debug_assert_eq!(self.page_table_pages(), 0);
    }
}

/// Merge adjacent new VMAs with equal protection.
fn coalesce(v: Vec<(Range<u64>, Prot, bool)>) -> Vec<(Range<u64>, Prot, bool)> {
    let mut out: Vec<(Range<u64>, Prot, bool)> = Vec::with_capacity(v.len());
    for (r, p, a) in v {
        match out.last_mut() {
            Some(last) if last.0.end == r.start && last.1 == p => {
                last.0.end = r.end;
                last.2 &= a;
            }
            _ => out.push((r, p, a)),
        }
    }
    out
}

/// Validate a user range given as address and length.
pub fn check_range(addr: u64, len: u64) -> Result<(), MmError> {
    if len == 0 {
        return Err(MmError::ZeroLength);
    }
    if !addr.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
        return Err(MmError::Unaligned);
    }
    let end = addr.checked_add(len).ok_or(MmError::Overflow)?;
    if !abi::mman::in_user_range(addr, end) {
        return Err(MmError::OutOfRange);
    }
    Ok(())
}

/// Free the structure once `mm_count` reached 0.
///
/// # Safety
/// Nobody references `mm` any more.
unsafe fn free_mm<P: Platform>(mm: *mut Mm<P>) {
    #[cfg(not(loom))]
    {
        // SAFETY: allocated by `Box` in `with_lock_seq`; last reference.
        drop(unsafe { alloc::boxed::Box::from_raw(mm) });
    }
    #[cfg(loom)]
    {
        // Under loom the structure is kept (leaked) with `count == 0`, so the
        // model can assert that nobody wakes its writer after this point
        // (CVE-2025-38554) instead of reading freed memory.
        let _ = mm;
    }
}

impl<P: Platform> MmRef<P> {
    /// Another handle to the same address space.
    pub fn as_ptr(&self) -> *const Mm<P> {
        self.0.as_ptr()
    }
}

impl<P: Platform> Deref for MmRef<P> {
    type Target = Mm<P>;
    fn deref(&self) -> &Mm<P> {
        // SAFETY: our users reference keeps the structure alive.
        unsafe { self.0.as_ref() }
    }
}

impl<P: Platform> Clone for MmRef<P> {
    fn clone(&self) -> Self {
        // Relaxed: an increment from a live reference.
        self.users.fetch_add(1, Ordering::Relaxed);
        MmRef(self.0)
    }
}

impl<P: Platform> Drop for MmRef<P> {
    fn drop(&mut self) {
        // AcqRel: every user's work happens before the teardown.
        if self.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.exit_mmap();
            // SAFETY: the users' reference to the structure, dropped once.
            unsafe { Mm::mmdrop(self.0.as_ptr()) };
        }
    }
}

/// The `mmap_lock` held for write. Dropping it is `mmap_write_unlock`: it
/// bumps `lock_seq`, ending every VMA write lock taken under it.
pub struct MmapWriteGuard<'a, P: Platform> {
    mm: &'a Mm<P>,
}

impl<P: Platform> Drop for MmapWriteGuard<'_, P> {
    fn drop(&mut self) {
        self.mm.lock_seq.write_end();
        P::lock_event(
            LockClass::MmapLock,
            self.mm as *const Mm<P> as usize,
            LockOp::Release,
        );
        self.mm.mmap_lock.write_unlock();
    }
}

/// The `mmap_lock` held for read.
pub struct MmapReadGuard<'a, P: Platform> {
    mm: &'a Mm<P>,
}

impl<P: Platform> Drop for MmapReadGuard<'_, P> {
    fn drop(&mut self) {
        P::lock_event(
            LockClass::MmapLock,
            self.mm as *const Mm<P> as usize,
            LockOp::Release,
        );
        self.mm.mmap_lock.read_unlock();
    }
}

/// Read access to a VMA for tests and the fault path's fallback: the caller
/// holds the mmap lock.
pub(crate) fn vma_of<'a, P: Platform>(
    _guard: &'a MmapReadGuard<'_, P>,
    v: VmaPtr<P>,
) -> &'a Vma<P> {
    // SAFETY: the mmap read lock keeps every VMA in the tree attached and
    // unchanged while the guard lives.
    unsafe { v.get() }
}
