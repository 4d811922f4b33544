//! Creation and teardown of an address space, and its two reference counts:
//! users ([`MmRef`], Linux's `mm_users`) and the structure itself
//! (`count`, Linux's `mm_count`).

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool as CoreAtomicBool, AtomicU64 as CoreAtomicU64};

use super::{Mm, MmError, USER_END, USER_START};
use crate::counters::FaultCounters;
use crate::page_table::PageTable;
use crate::percpu_counter::PerCpuCounter;
use crate::platform::{Platform, RwSemaphore, WaitSlot};
use crate::range_tree::RangeTree;
use crate::seqcount::MmLockSeq;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crate::vma_cache::VmaCache;

/// A user handle on an address space. The last one dropped unmaps everything.
pub struct MmRef<P: Platform>(NonNull<Mm<P>>);

// SAFETY: a handle is a shared reference to an `Mm`, which is `Sync` (see
// `mod.rs`), so handles may cross threads.
unsafe impl<P: Platform> Send for MmRef<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Sync for MmRef<P> {}

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
        let mm = Box::new(Mm {
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
            rss: PerCpuCounter::new(P::cpu_count()),
            pt_pages: CoreAtomicU64::new(0),
            per_vma_lock: CoreAtomicBool::new(true),
            frame_limit: CoreAtomicU64::new(u64::MAX),
        });
        Ok(MmRef(NonNull::from(Box::leak(mm))))
    }

    /// Pin the structure (Linux's `mmgrab`).
    ///
    /// # Safety
    /// `mm` must be alive (the caller holds a reference that keeps it so).
    #[cfg_attr(feature = "no-mm-pin", allow(dead_code))]
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

    /// Tear down: unmap everything and free the page-table pages.
    fn exit_mmap(&self) {
        let w = self.write_lock();
        self.unmap_locked(&w, USER_START..USER_END);
        debug_assert_eq!(self.rss(), 0);
        debug_assert_eq!(self.page_table_pages(), 0);
    }
}

/// Free the structure once `mm_count` reached 0.
///
/// # Safety
/// Nobody references `mm` any more.
unsafe fn free_mm<P: Platform>(mm: *mut Mm<P>) {
    race_point!(MmFree, mm = mm);
    #[cfg(not(loom))]
    {
        // SAFETY: allocated by `Box` in `with_lock_seq`; last reference.
        drop(unsafe { Box::from_raw(mm) });
    }
    #[cfg(loom)]
    {
        // Under loom the structure is kept with `count == 0` until the model
        // ends, so the model can assert that nobody wakes its writer after
        // this point (CVE-2025-38554) instead of reading freed memory. The
        // loom platform's RCU runs its callbacks only after every thread of
        // the model is joined: that is when nobody can touch it any more.
        // (Leaking it instead cost gigabytes over a model's executions.)
        let addr = mm as usize;
        P::call_rcu(Box::new(move || {
            // SAFETY: allocated by `Box` in `with_lock_seq`; the last
            // reference was dropped and the model's threads are joined.
            drop(unsafe { Box::from_raw(addr as *mut Mm<P>) });
        }));
    }
}

impl<P: Platform> MmRef<P> {
    /// The address space's address (to compare with `Vma::mm_ptr`).
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
            race_point!(MmExitDone, mm = self.0.as_ptr());
        }
    }
}
