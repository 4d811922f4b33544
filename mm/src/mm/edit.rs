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
        // 2. The new VMAs, locked until `w` is dropped.
        let t = Timer::<P>::start(Phase::VmaAlloc);
        let new: Vec<(Range<u64>, VmaPtr<P>)> = insert
            .iter()
            .map(|(r, prot, anon)| (r.clone(), self.new_vma(w, r.clone(), *prot, *anon)))
            .collect();
        drop(t);
        // 3. One publication of the new tree.
        let t = Timer::<P>::start(Phase::TreeEdit);
        let starts: Vec<u64> = remove.iter().map(|(r, _)| r.start).collect();
        // SAFETY: writers are serialized by the mmap write lock we hold.
        unsafe { self.vmas.replace(&starts, &new) };
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

/// Merge adjacent new VMAs with equal protection.
pub(super) fn coalesce(v: Vec<NewVma>) -> Vec<NewVma> {
    let mut out: Vec<NewVma> = Vec::with_capacity(v.len());
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
