//! The one way the VMA tree changes: replace some VMAs with new ones in a
//! single step visible to readers (see "How a change stays safe for
//! lockless readers" in `mod.rs`).

use alloc::vec::Vec;
use core::ops::Range;

use super::{Mm, MmapLocked, MmapWriteGuard};
use crate::phases::{Phase, Timer};
use crate::platform::Platform;
use crate::vma::{Prot, Vma, VmaPtr};
use crate::vma_lock::{vma_mark_attached, vma_mark_detached, vma_start_write};

/// A VMA to create: its range, protection and `anon_ready`.
pub(super) type NewVma = (Range<u64>, Prot, bool);

impl<P: Platform> Mm<P> {
    /// Replace the VMAs `remove` (tree key and VMA, found under `w`) with
    /// new VMAs `insert`, in one step visible to readers.
    pub(super) fn edit(
        &self,
        w: &MmapWriteGuard<'_, P>,
        remove: &[(Range<u64>, &Vma<P>)],
        insert: &[NewVma],
    ) {
        debug_assert!(core::ptr::eq(w.mm(), self), "edit under another mm's lock");
        // 1. The old VMAs: wait for their readers, keep new ones out.
        let t = Timer::<P>::start(Phase::VmaStartWrite);
        for (_, vma) in remove {
            vma_start_write(self, vma);
        }
        drop(t);
        // 2. and 3. The new VMAs, locked until `w` is dropped, made as the
        //    draft takes them in (after the removals, before the
        //    publication: no collected vector), then one publication of the
        //    new tree. (`tree_edit` therefore includes `vma_alloc`.)
        let t = Timer::<P>::start(Phase::TreeEdit);
        let starts = remove.iter().map(|(r, _)| r.start);
        let new = insert.iter().map(|(r, prot, anon)| {
            let _t = Timer::<P>::start(Phase::VmaAlloc);
            (r.clone(), self.new_vma(w, r.clone(), *prot, *anon))
        });
        // SAFETY: writers are serialized by the mmap write lock we hold.
        unsafe { self.vmas.replace_with(starts, new) };
        drop(t);
        // 4. Detach (waits for transient readers) and free the old ones.
        //    Readers still holding the address see refcnt 0 or a new VMA.
        let _t = Timer::<P>::start(Phase::VmaFree);
        for (_, vma) in remove {
            vma_mark_detached(self, vma);
            race_point!(EditDetached, mm = self, vma = *vma);
            // SAFETY: detached, came from our cache (every VMA in our tree
            // does), and not used by us after this point.
            unsafe { self.cache.free(VmaPtr::from(*vma)) };
        }
    }

    /// A VMA from the cache, initialised, write-locked and attached (in that
    /// order, so a reader that finds it sees it complete and locked).
    fn new_vma(
        &self,
        w: &MmapWriteGuard<'_, P>,
        range: Range<u64>,
        prot: Prot,
        anon: bool,
    ) -> VmaPtr<P> {
        let v = self.cache.alloc();
        // SAFETY: allocated for this address space by the holder of its mmap
        // write lock `w`; freed only by a later `edit`, under the lock.
        let vma = unsafe { v.get(w) };
        vma.init(self, range, prot, anon);
        vma_start_write(self, vma);
        vma_mark_attached(vma);
        v
    }
}

/// Merge adjacent new VMAs with equal protection (in place: no second
/// vector).
pub(super) fn coalesce(mut v: Vec<NewVma>) -> Vec<NewVma> {
    // `dedup_by` hands us (current, kept previous); returning true drops
    // the current one, which the previous has just absorbed.
    v.dedup_by(|(r, p, a), (last_r, last_p, last_a)| {
        let merge = last_r.end == r.start && last_p == p;
        if merge {
            last_r.end = r.end;
            *last_a &= *a;
        }
        merge
    });
    v
}
