//! The `mmap_lock`: its two guards, and the VMA lookups a guard allows.
//!
//! A guard is the witness that VMAs of its address space stay attached:
//! detaching one needs the mmap write lock (`Mm::edit`), so while any guard
//! of the address space lives, a VMA found in its tree is neither detached
//! nor freed. The lookups below therefore hand out `&Vma` borrowed from the
//! guard: the reference cannot outlive the lock that keeps it valid.

use alloc::vec::Vec;
use core::ops::Range;

use super::Mm;
use crate::phases::{Phase, Timer};
use crate::platform::{LockClass, LockOp, Platform, RwSemaphore};
use crate::vma::Vma;

impl<P: Platform> Mm<P> {
    /// Take the `mmap_lock` for write; `lock_seq` becomes odd.
    pub fn write_lock(&self) -> MmapWriteGuard<'_, P> {
        {
            let _t = Timer::<P>::start(Phase::WriteLockWait);
            self.mmap_lock.write_lock();
        }
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
}

/// The `mmap_lock` held for write. Dropping it is `mmap_write_unlock`: it
/// bumps `lock_seq`, ending every VMA write lock taken under it.
pub struct MmapWriteGuard<'a, P: Platform> {
    mm: &'a Mm<P>,
}

impl<P: Platform> Drop for MmapWriteGuard<'_, P> {
    fn drop(&mut self) {
        let _t = Timer::<P>::start(Phase::WriteUnlock);
        self.mm.lock_seq.write_end();
        P::lock_event(
            LockClass::MmapLock,
            self.mm as *const Mm<P> as usize,
            LockOp::Release,
        );
        self.mm.mmap_lock.write_unlock();
    }
}

impl<'a, P: Platform> MmapWriteGuard<'a, P> {
    /// Turn the write lock into a read lock without letting any writer in
    /// between (Linux's `mmap_write_downgrade`). As `mmap_write_unlock`
    /// does, it first bumps `lock_seq`, ending every VMA write lock taken
    /// under the write lock: the VMAs left in the tree are readable again,
    /// and faults in them proceed. Nothing can be detached, attached or
    /// edited until the read lock is dropped (that needs the write lock), so
    /// the tree stays exactly as the write holder left it.
    pub fn downgrade(self) -> MmapReadGuard<'a, P> {
        let mm = self.mm;
        // Our drop would release the write lock; the hold moves on instead.
        core::mem::forget(self);
        mm.lock_seq.write_end();
        P::lock_event(
            LockClass::MmapLock,
            mm as *const Mm<P> as usize,
            LockOp::Downgrade,
        );
        mm.mmap_lock.downgrade();
        MmapReadGuard { mm }
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

mod sealed {
    pub trait Sealed {}
}
impl<P: Platform> sealed::Sealed for MmapReadGuard<'_, P> {}
impl<P: Platform> sealed::Sealed for MmapWriteGuard<'_, P> {}

/// Either guard of the `mmap_lock`: proof that the VMAs in its address
/// space's tree stay attached while it lives. Sealed: only the two guards
/// above are such proof.
pub trait MmapLocked<P: Platform>: sealed::Sealed {
    /// The address space whose `mmap_lock` is held.
    fn mm(&self) -> &Mm<P>;

    /// The VMA containing `addr`, and its range.
    fn find(&self, addr: u64) -> Option<(Range<u64>, &Vma<P>)> {
        let g = P::read_lock();
        let (r, v) = self.mm().vmas.find(addr, &g)?;
        // SAFETY: found in the tree of the address space whose mmap lock
        // `self` holds, while it holds it.
        Some((r, unsafe { v.get(self) }))
    }

    /// The VMAs overlapping `range`, in address order.
    fn overlapping(&self, range: Range<u64>) -> Vec<(Range<u64>, &Vma<P>)> {
        let g = P::read_lock();
        let found = self.mm().vmas.overlapping(range, &g);
        found
            .into_iter()
            // SAFETY: as in `find`.
            .map(|(r, v)| (r, unsafe { v.get(self) }))
            .collect()
    }
}

impl<P: Platform> MmapLocked<P> for MmapReadGuard<'_, P> {
    fn mm(&self) -> &Mm<P> {
        self.mm
    }
}

impl<P: Platform> MmapLocked<P> for MmapWriteGuard<'_, P> {
    fn mm(&self) -> &Mm<P> {
        self.mm
    }
}
