//! Settings, statistics and snapshots of an address space, for the kernel,
//! tests and benchmarks.

use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::Ordering as CoreOrdering;

use super::{Mm, MmapLocked};
use crate::counters::Event;
use crate::platform::Platform;
use crate::vma::{Prot, VmaPtr};

impl<P: Platform> Mm<P> {
    /// Physical address of the page table's root.
    pub fn page_table_root(&self) -> u64 {
        self.page_table.root()
    }

    /// Count a fault event here and tell the platform (which may keep
    /// machine-wide counters).
    pub(crate) fn count_event(&self, cpu: usize, event: Event) {
        self.counters.count(cpu, event);
        P::fault_event(cpu, event);
    }

    /// Count a user fault that `fault::handle_user_fault` refused
    /// (`AccessError`) as `segv`, once, when the caller gives up on it (see
    /// the rule in `counters.rs`).
    pub fn count_bad_fault(&self, cpu: usize) {
        self.count_event(cpu, Event::Segv);
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

    /// Whether a fault may take one more data page (the bound it gives is
    /// at `frame_limit`). Without a limit it reads nothing shared.
    pub(crate) fn may_take_frame(&self) -> bool {
        let limit = self.frame_limit.load(CoreOrdering::Relaxed);
        limit == u64::MAX || self.rss() < limit
    }

    /// Resident data pages: the sum of the per-CPU shares, exact once no
    /// fault or unmap of this address space is running.
    pub fn rss(&self) -> u64 {
        self.rss.sum()
    }

    /// Count `pages` data pages in (or out, if negative) on this CPU.
    pub(crate) fn rss_add(&self, pages: i64) {
        self.rss.add(P::cpu_id(), pages);
    }

    /// Page-table pages below the root.
    pub fn page_table_pages(&self) -> u64 {
        self.pt_pages.load(CoreOrdering::Relaxed)
    }

    /// Present leaves and page-table pages below the root, by a full walk
    /// of the page table (tests compare it with the counters).
    pub fn census(&self) -> (u64, u64) {
        self.page_table.census()
    }

    /// Number of VMAs.
    pub fn vma_count(&self) -> usize {
        self.vmas.len()
    }

    /// The current `mm_lock_seq` (odd while write-locked).
    pub fn lock_seq(&self) -> u32 {
        self.lock_seq.read_acquire()
    }

    /// Run `cycles` (at least 1) mmap write-lock cycles at once, as far as
    /// `lock_seq` can tell. Test builds only: a replay reaches the count's
    /// wrap-around without 2^31 real cycles.
    #[cfg(feature = "race-inject")]
    pub fn fast_forward_lock_seq(&self, cycles: u32) {
        assert!(cycles >= 1, "fast-forward by no cycle");
        let _w = self.write_lock();
        self.lock_seq.skip_cycles(cycles - 1);
    }

    /// A snapshot of the VMAs, in address order (takes the read lock).
    pub fn vmas(&self) -> Vec<(Range<u64>, Prot)> {
        let r = self.read_lock();
        let all = r.overlapping(0..u64::MAX);
        all.into_iter().map(|(r, v)| (r, v.prot())).collect()
    }

    /// The VMA containing `addr` (takes the read lock).
    pub fn find(&self, addr: u64) -> Option<(Range<u64>, Prot)> {
        let r = self.read_lock();
        r.find(addr).map(|(r, v)| (r, v.prot()))
    }

    /// The VMA pointer the tree holds for `addr`, for a lockless reader (the
    /// first step of `lock_vma_under_rcu`). The VMA may be detached or reused
    /// by the time the caller looks: it must take the read lock before
    /// trusting it.
    pub fn find_vma_rcu(&self, addr: u64, guard: &P::ReadGuard) -> Option<VmaPtr<P>> {
        self.vmas.find(addr, guard).map(|(_, v)| v)
    }
}
