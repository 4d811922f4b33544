//! `unmap`: remove a range from the address space (Linux's `munmap`).

use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::Ordering as CoreOrdering;

use super::edit::NewVma;
use super::{Mm, MmError, MmapLocked, MmapWriteGuard, check_range};
use crate::page_table::Unhooked;
use crate::phases::{Phase, Timer};
use crate::platform::Platform;
use crate::vma::Vma;

impl<P: Platform> Mm<P> {
    /// Unmap `[addr, addr + len)`; VMAs that straddle an edge are split.
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
        self.unmap_found(&w, range, &old);
        Ok(())
    }

    /// Unmap under the write lock: split, detach, clear the page table, shoot
    /// down the TLB, then free frames and unused page-table pages.
    pub(super) fn unmap_locked(&self, w: &MmapWriteGuard<'_, P>, range: Range<u64>) {
        let old = w.overlapping(range.clone());
        self.unmap_found(w, range, &old);
    }

    /// `unmap_locked`, given the VMAs overlapping `range` (found under `w`).
    fn unmap_found(
        &self,
        w: &MmapWriteGuard<'_, P>,
        range: Range<u64>,
        old: &[(Range<u64>, &Vma<P>)],
    ) {
        self.remove_vmas(w, range.clone(), old);
        race_point!(UnmapTreeEdited, mm = self, addr = range.start);
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
        self.rss
            .fetch_sub(out.pages.len() as u64, CoreOrdering::Relaxed);
        self.pt_pages
            .fetch_sub(out.tables.len() as u64, CoreOrdering::Relaxed);
        P::free_frames(&out.pages);
        P::free_frames(&out.tables);
    }
}
