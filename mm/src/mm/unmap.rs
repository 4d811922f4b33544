//! `unmap`: remove a range from the address space (Linux's `munmap`).

use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::Ordering as CoreOrdering;

use super::edit::NewVma;
use super::{Mm, MmError, MmapLocked, MmapReadGuard, MmapWriteGuard, check_range};
use crate::page_table::Unhooked;
use crate::phases::{Phase, Timer};
use crate::platform::Platform;
use crate::vma::Vma;

impl<P: Platform> Mm<P> {
    /// Unmap `[addr, addr + len)`; VMAs that straddle an edge are split.
    ///
    /// The tree is edited under the write lock, which is then downgraded to
    /// read for the page-table teardown, the shootdown and the freeing (as
    /// Linux's `vms_complete_munmap_vmas`): meanwhile faults in other VMAs,
    /// and their fallbacks that take the read lock, go on.
    pub fn unmap(&self, addr: u64, len: u64) -> Result<(), MmError> {
        let _t = Timer::<P>::start(Phase::UnmapTotal);
        check_range(addr, len)?;
        let w = self.write_lock();
        let range = addr..addr + len;
        let old = w.overlapping(range.clone());
        // Only a hole in the middle of a VMA adds one (as on Linux, munmap
        // may fail with ENOMEM then).
        if old
            .iter()
            .any(|(r, _)| r.start < range.start && r.end > range.end)
        {
            self.room_for(1)?;
        }
        self.remove_vmas(&w, range.clone(), &old);
        drop(old);
        race_point!(UnmapTreeEdited, mm = self, addr = range.start);
        let r = self.downgrade_for_teardown(w);
        self.teardown(&r, range);
        Ok(())
    }

    /// The write lock `w` turned into a read lock (a phase of its own: it
    /// also ends the VMA write locks, as an unlock does).
    fn downgrade_for_teardown<'a>(&self, w: MmapWriteGuard<'a, P>) -> MmapReadGuard<'a, P> {
        let _t = Timer::<P>::start(Phase::WriteUnlock);
        w.downgrade()
    }

    /// Unmap under the write lock, all of it (a fixed `map` that replaces
    /// what it overlaps, and exit): split, detach, then tear down.
    pub(super) fn unmap_locked(&self, w: &MmapWriteGuard<'_, P>, range: Range<u64>) {
        let old = w.overlapping(range.clone());
        self.remove_vmas(w, range.clone(), &old);
        race_point!(UnmapTreeEdited, mm = self, addr = range.start);
        self.teardown(w, range);
    }

    /// Clear the page table over `range`, unhook the tables no VMA needs any
    /// more, shoot down the TLB, then free the frames and tables. The VMAs
    /// of `range` are out of the tree already.
    ///
    /// Under either guard of the `mmap_lock` (`held`); under the read lock
    /// (after `unmap`'s downgrade) nothing can put a page or a table into
    /// `range` behind our back, or take one out from under us:
    /// - a new mapping over `range` (`map`, fixed or not), a `protect` or
    ///   another `unmap` needs the write lock, which no one gets until we
    ///   drop the read lock: so `range` stays uncovered by any VMA, and
    ///   only one teardown runs at a time;
    /// - a fault installs entries only inside a VMA it holds (per-VMA read
    ///   lock, or found in the tree under the `mmap_lock`): the VMAs of
    ///   `range` were write-locked and detached under the write lock, so a
    ///   fault that looks now finds no VMA there (or a detached one, which
    ///   `vma_start_read` refuses) and fails without touching the table;
    /// - faults in other VMAs, even ones sharing a table with `range`, touch
    ///   only leaves outside it, and `free_tables` frees only tables whose
    ///   whole span no VMA covers (`is_covered`, reading the tree, which
    ///   cannot change under a read lock), so no such fault walks through a
    ///   table we free.
    fn teardown(&self, held: &impl MmapLocked<P>, range: Range<u64>) {
        debug_assert!(
            core::ptr::eq(held.mm(), self),
            "teardown under another mm's lock"
        );
        let mut out = Unhooked::default();
        {
            let _t = Timer::<P>::start(Phase::PtClear);
            self.page_table.clear(range.clone(), &mut out);
        }
        {
            let _t = Timer::<P>::start(Phase::PtFreeTables);
            self.page_table
                .free_tables(range.clone(), &|span| self.is_covered(span), &mut out);
        }
        race_point!(UnmapPtCleared, mm = self, addr = range.start);
        if let Some(span) = out.span.clone() {
            let _t = Timer::<P>::start(Phase::Shootdown);
            // Only after every CPU has dropped the translations (and cached
            // paging-structure entries) may the frames be reused.
            P::tlb_shootdown(self.page_table.root(), self.cpus_to_flush(), span);
        }
        race_point!(UnmapShotDown, mm = self, addr = range.start);
        {
            let _t = Timer::<P>::start(Phase::FreeFrames);
            self.free_unhooked(out);
        }
        race_point!(UnmapFreed, mm = self, addr = range.start);
    }

    /// Take the VMAs overlapping `range` out of the tree, keeping the parts
    /// of them that lie outside it.
    fn remove_vmas(
        &self,
        w: &MmapWriteGuard<'_, P>,
        range: Range<u64>,
        old: &[(Range<u64>, &Vma<P>)],
    ) {
        if old.is_empty() {
            return;
        }
        let mut keep: Vec<NewVma> = Vec::new();
        for (r, vma) in old {
            let anon = vma.anon_ready();
            if r.start < range.start {
                keep.push((r.start..range.start, vma.prot(), anon));
            }
            if r.end > range.end {
                keep.push((range.end..r.end, vma.prot(), anon));
            }
        }
        self.edit(w, old, &keep);
    }

    /// Give back frames and page-table pages unhooked (and shot down).
    fn free_unhooked(&self, out: Unhooked) {
        self.rss_add(-(out.pages.len() as i64));
        self.pt_pages
            .fetch_sub(out.tables.len() as u64, CoreOrdering::Relaxed);
        P::free_frames(&out.pages);
        P::free_frames(&out.tables);
    }
}
