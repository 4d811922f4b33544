//! `mm_lock_seq`: the sequence count that makes `mmap_write_unlock` release
//! every VMA write lock in one store.
//!
//! `mmap_write_lock` increments it (it becomes odd) after taking the
//! `mmap_lock`; `mmap_write_unlock` increments it again (even) before
//! releasing the `mmap_lock`. A VMA is write-locked exactly while
//! `vma.lock_seq == mm.lock_seq`: `vma_start_write` copies the current (odd)
//! value into the VMA, and the unlock's increment makes every such copy stale
//! at once.
//!
//! # Wrap-around
//! The count is 32 bits and wraps after 2^31 write-lock cycles. A stale
//! `vma.lock_seq` can then equal `mm.lock_seq` again: the VMA *looks*
//! write-locked although it is not. That is a false "locked", which only
//! sends a reader to the slow path. A false "unlocked" is impossible: while a
//! writer holds the VMA, `mm.lock_seq` does not change (only the unlock
//! changes it), so the two stay equal until the lock really ends.

use crate::sync::{AtomicU32, Ordering};

/// The per-`Mm` sequence count. Only the `mmap_lock` write holder changes it.
pub struct MmLockSeq {
    seq: AtomicU32,
}

impl MmLockSeq {
    pub fn new() -> Self {
        Self::starting_at(0)
    }

    /// A count starting at `seq` (must be even: unlocked). Tests use it to
    /// reach the wrap quickly.
    pub fn starting_at(seq: u32) -> Self {
        assert!(seq.is_multiple_of(2), "an unlocked mm_lock_seq is even");
        MmLockSeq {
            seq: AtomicU32::new(seq),
        }
    }

    /// Called by `mmap_write_lock` after the `mmap_lock` is held.
    pub fn write_begin(&self) {
        let old = self.seq.load(Ordering::Relaxed);
        crate::protocol_assert!(
            old.is_multiple_of(2),
            "mm_lock_seq already odd: nested write lock"
        );
        // Relaxed: the odd value reaches readers through the Release with
        // which `vma_start_write` drops LOCK_OFFSET (readers increment the
        // VMA's refcnt with Acquire), or through the `mmap_lock` itself.
        self.seq.store(old.wrapping_add(1), Ordering::Relaxed);
    }

    /// Called by `mmap_write_unlock` before the `mmap_lock` is released.
    pub fn write_end(&self) {
        let old = self.seq.load(Ordering::Relaxed);
        crate::protocol_assert!(
            !old.is_multiple_of(2),
            "mm_lock_seq even: unlock without lock"
        );
        // Release pairs with the Acquire load in `vma_start_read` (step 5): a
        // reader that sees the new value also sees every change made to the
        // VMAs under this write lock.
        self.seq.store(old.wrapping_add(1), Ordering::Release);
    }

    /// Move the count on as if `cycles` write-lock cycles had run, keeping
    /// its parity. Test builds only: a replay reaches the wrap-around without
    /// 2^31 real cycles. Only the `mmap_lock` write holder may call it.
    #[cfg(feature = "race-inject")]
    pub fn skip_cycles(&self, cycles: u32) {
        let old = self.seq.load(Ordering::Relaxed);
        // Relaxed: published by `write_end`'s Release, like `write_begin`.
        self.seq
            .store(old.wrapping_add(cycles.wrapping_mul(2)), Ordering::Relaxed);
    }

    /// The value for a relaxed pre-check (a hint only).
    pub fn read_relaxed(&self) -> u32 {
        self.seq.load(Ordering::Relaxed)
    }

    /// The value a reader decides on; Acquire pairs with `write_end`.
    pub fn read_acquire(&self) -> u32 {
        self.seq.load(Ordering::Acquire)
    }

    /// Whether a write lock is held (odd). Only meaningful to the holder.
    pub fn is_write_locked(&self) -> bool {
        !self.read_relaxed().is_multiple_of(2)
    }
}

impl Default for MmLockSeq {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn odd_while_write_locked() {
        let s = MmLockSeq::new();
        assert!(!s.is_write_locked());
        s.write_begin();
        assert!(s.is_write_locked());
        assert_eq!(s.read_acquire(), 1);
        s.write_end();
        assert_eq!(s.read_acquire(), 2);
    }

    #[test]
    fn wraps_through_zero() {
        let s = MmLockSeq::starting_at(u32::MAX - 1);
        s.write_begin();
        assert_eq!(s.read_acquire(), u32::MAX);
        assert!(s.is_write_locked());
        s.write_end();
        assert_eq!(s.read_acquire(), 0);
        assert!(!s.is_write_locked());
    }
}
