//! The address space's invariants, checked by tests.

use super::{Mm, MmapLocked, USER_END, USER_START};
use crate::platform::Platform;
use crate::vma::{PAGE_SIZE, Vma};
use crate::vma_lock::LOCK_OFFSET;

impl<P: Platform> Mm<P> {
    /// Check the address space's invariants; panics on a violation. For
    /// tests: takes the mmap read lock.
    pub fn check_invariants(&self) {
        let guard = self.read_lock();
        let all = guard.overlapping(0..u64::MAX);
        assert_eq!(all.len(), self.vmas.len(), "tree length");
        let mut prev_end = USER_START;
        for (r, vma) in &all {
            assert!(
                r.start >= prev_end && r.start < r.end && r.end <= USER_END,
                "VMA ranges {r:?}"
            );
            assert!(
                r.start.is_multiple_of(PAGE_SIZE) && r.end.is_multiple_of(PAGE_SIZE),
                "unaligned VMA {r:?}"
            );
            assert_eq!(vma.range(), *r, "tree key and VMA range differ");
            self.check_vma(vma);
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

    /// One attached VMA, seen under the mmap read lock.
    fn check_vma(&self, vma: &Vma<P>) {
        assert!(
            core::ptr::eq(vma.mm_ptr(), self),
            "VMA of another mm in the tree"
        );
        assert!(
            vma.refcnt() >= 1 && vma.refcnt() < LOCK_OFFSET,
            "refcnt {}",
            vma.refcnt()
        );
        assert_ne!(
            vma.lock_seq(),
            self.lock_seq.read_relaxed(),
            "VMA write-locked outside a write lock"
        );
        assert!(!vma.is_poisoned(), "poisoned VMA in the tree");
    }
}
