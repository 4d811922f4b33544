//! The per-VMA reference-count lock (Linux 6.15); docs/design.md walks
//! through it step by step, with its states and orderings.
//!
//! `vma.refcnt` is the whole lock:
//!
//! | value            | meaning                                        |
//! |------------------|------------------------------------------------|
//! | `0`              | detached: not in the tree, nobody may take it  |
//! | `1`              | attached, unlocked                             |
//! | `1 + n`          | attached, `n` readers                          |
//! | `+ LOCK_OFFSET`  | a writer is waiting for the readers to drain   |
//!
//! Readers only ever raise the count to `REF_LIMIT`, so a waiting writer
//! (`>= LOCK_OFFSET`) makes them fail. A *write* lock is not a count at all:
//! it is `vma.lock_seq == mm.lock_seq` (see `seqcount.rs`), which the mmap
//! write unlock ends for every VMA at once.
//!
//! Any reader failure may be a false positive: the caller falls back to the
//! `mmap_lock`. Reporting success while a writer holds the VMA never happens.
//!
//! The feature `seed-v6-ordering` (tests only!) puts back the code the seed
//! review found broken, so the loom model can show it catches the bug;
//! `no-mm-pin` (tests only!) puts back CVE-2025-38554 the same way.

use crate::mm::Mm;
use crate::platform::{LockClass, LockOp, Platform, WaitSlot};
use crate::sync::{AtomicU32, Ordering};
use crate::vma::Vma;

/// Added to `refcnt` by a writer waiting for readers to drain.
pub const LOCK_OFFSET: u32 = 0x4000_0000;
/// Readers may raise `refcnt` up to this value and no further.
pub const REF_LIMIT: u32 = LOCK_OFFSET - 1;

/// Why `vma_start_read` did not lock the VMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadLockError {
    /// `refcnt` was 0: the VMA was detached under us. Walk the tree again.
    Detached,
    /// Write-locked, a writer pending, too many readers, or reused by another
    /// address space: fall back to the `mmap_lock`.
    Failed,
}

#[track_caller]
fn annotate<P: Platform>(vma: &Vma<P>, op: LockOp) {
    P::lock_event(LockClass::VmaLock, vma as *const Vma<P> as usize, op);
}

/// Try to read-lock `vma` for `mm`. Call inside an RCU read section, in which
/// `vma` was found in `mm`'s tree (its memory may have been reused since).
pub fn vma_start_read<P: Platform>(mm: &Mm<P>, vma: &Vma<P>) -> Result<(), ReadLockError> {
    // LAB: vma-start-read BEGIN
    // Step 1: cheap pre-check. Relaxed on both sides: it is only a hint, the
    // decision is taken in step 5.
    if vma.lock_seq.load(Ordering::Relaxed) == mm.lock_seq.read_relaxed() {
        return Err(ReadLockError::Failed);
    }
    race_point!(ReadPrecheckPassed, mm = mm, vma = vma);

    // Steps 2 and 3: take a reference, then annotate. (The v6 code annotated
    // first and undid it on failure; both are balanced on this path.)
    #[cfg(feature = "seed-v6-ordering")]
    annotate(vma, LockOp::AcquireRead);
    let taken = inc_not_zero_limited(&vma.refcnt);
    #[cfg(feature = "seed-v6-ordering")]
    if taken.is_err() {
        annotate(vma, LockOp::Release);
    }
    taken?;
    #[cfg(not(feature = "seed-v6-ordering"))]
    annotate(vma, LockOp::AcquireRead);
    race_point!(ReadAfterInc, mm = mm, vma = vma);

    // Step 4: the memory may now be a VMA of another address space.
    let owner = vma.mm_ptr();
    if !core::ptr::eq(owner, mm) {
        // LAB: cve-2025-38554 BEGIN
        // Our put may be the one that wakes that address space's writer, and
        // once our reference is gone nothing keeps that address space alive:
        // pin it across the put (the fix of CVE-2025-38554).
        // (The feature `no-mm-pin`, tests only, removes the pin: the bug.)
        // SAFETY: we hold a reference to a VMA attached to `owner`, and an
        // address space cannot finish tearing down (detaching its VMAs waits
        // for references) while we hold it, so `owner` is alive here.
        #[cfg(not(feature = "no-mm-pin"))]
        unsafe {
            Mm::mmgrab(owner)
        };
        vma_refcount_put(vma);
        // SAFETY: pairs with the `mmgrab` above.
        #[cfg(not(feature = "no-mm-pin"))]
        unsafe {
            Mm::mmdrop(owner)
        };
        // LAB: cve-2025-38554 END
        return Err(ReadLockError::Failed);
    }

    // Step 5: write-locked? Acquire on `mm.lock_seq` pairs with the Release
    // increment in `mmap_write_unlock`: if we see the unlocked value we also
    // see every change made under that write lock. `vma.lock_seq` is Relaxed:
    // it was published to us by the Acquire increment of step 2.
    if vma.lock_seq.load(Ordering::Relaxed) == mm.lock_seq.read_acquire() {
        vma_refcount_put(vma);
        return Err(ReadLockError::Failed);
    }
    Ok(())
    // LAB: vma-start-read END
}

/// Step 2 of the read lock: increment `refcnt` unless it is 0 (detached) or
/// at `REF_LIMIT` (a writer is pending, or too many readers).
fn inc_not_zero_limited(refcnt: &AtomicU32) -> Result<(), ReadLockError> {
    let mut old = refcnt.load(Ordering::Relaxed);
    loop {
        if old == 0 {
            return Err(ReadLockError::Detached);
        }
        if old >= REF_LIMIT {
            return Err(ReadLockError::Failed);
        }
        // Acquire on success: pairs with the Release of `vma_mark_attached`
        // and of a writer dropping LOCK_OFFSET, so the checks that follow
        // read this VMA's fields, not those of the VMA this memory held
        // before.
        match refcnt.compare_exchange(old, old + 1, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(now) => old = now,
        }
    }
}

/// Drop a read reference (the read unlock, and the failure path of
/// `vma_start_read`).
#[cfg(not(feature = "seed-v6-ordering"))]
pub fn vma_refcount_put<P: Platform>(vma: &Vma<P>) {
    // Step 1: copy the owner first: once the count drops, the VMA may be
    // detached, freed and reused at any moment.
    let mm = vma.mm_ptr();
    // LAB: break-put-ordering BEGIN
    // Step 2: release the annotation always, and before the decrement. After
    // the decrement we may not touch the VMA (not even its address as a key
    // would be safe to reason about), and a put that races with detach must
    // still release it: the seed's bug was skipping this when the count hit 0.
    annotate(vma, LockOp::Release);
    race_point!(PutBeforeDec, mm = mm, vma = vma);
    // Step 3: Release pairs with the Acquire load in the writer's wait loop
    // (and detach's decrement): our reads of the VMA happen before the writer
    // changes or frees it.
    let new = vma.refcnt.fetch_sub(1, Ordering::Release) - 1;
    race_point!(PutAfterDec, mm = mm, vma = vma);
    if new != 0 && writer_only(new) {
        // SAFETY: `mm` is alive: it is the caller's own address space, or was
        // pinned by `vma_start_read` step 4.
        let mm = unsafe { &*mm };
        crate::protocol_assert!(
            mm.is_alive(),
            "woke the writer of a freed mm (CVE-2025-38554)"
        );
        // `wake_up` starts with a full fence after our decrement (rcuwait).
        mm.writer_wait.wake_up();
    }
    // LAB: break-put-ordering END
}

/// The v6 code of the seed: the annotation is released only when the
/// decrement does not reach zero. TEST-ONLY: this is the bug.
#[cfg(feature = "seed-v6-ordering")]
pub fn vma_refcount_put<P: Platform>(vma: &Vma<P>) {
    let mm = vma.mm_ptr();
    race_point!(PutBeforeDec, mm = mm, vma = vma);
    let new = vma.refcnt.fetch_sub(1, Ordering::Release) - 1;
    race_point!(PutAfterDec, mm = mm, vma = vma);
    if new != 0 {
        annotate(vma, LockOp::Release);
        if new & LOCK_OFFSET != 0 {
            // SAFETY: as in the fixed version.
            let mm = unsafe { &*mm };
            mm.writer_wait.wake_up();
        }
    }
}

/// Only the writer's offset and at most the attach reference remain: the
/// writer waiting in `vma_start_write` or `vma_mark_detached` can go on.
fn writer_only(count: u32) -> bool {
    count & LOCK_OFFSET != 0 && count <= LOCK_OFFSET + 1
}

/// Add `LOCK_OFFSET` unless the count is 0 (a detached VMA has no readers to
/// wait for). Returns whether it was added.
fn add_offset_unless_zero(refcnt: &AtomicU32) -> bool {
    // Acquire on the loads: if we see 0, the last reader's Release put is
    // what we read, and detach's caller may then reuse the memory.
    let mut old = refcnt.load(Ordering::Acquire);
    loop {
        if old == 0 {
            return false;
        }
        crate::protocol_assert!(old < LOCK_OFFSET, "two writers on one VMA");
        // Relaxed on success: nothing is published by raising the count; the
        // writer's wait loop does the Acquire.
        match refcnt.compare_exchange(old, old + LOCK_OFFSET, Ordering::Relaxed, Ordering::Acquire)
        {
            Ok(_) => return true,
            Err(now) => old = now,
        }
    }
}

/// Wait (on `mm.writer_wait`) until `refcnt == target`.
fn wait_for_count<P: Platform>(mm: &Mm<P>, vma: &Vma<P>, target: u32) {
    // Acquire pairs with the readers' Release puts: everything they did with
    // the VMA happens before we go on to change it.
    mm.writer_wait
        .wait_until(|| vma.refcnt.load(Ordering::Acquire) == target);
}

/// Whether `vma` is write-locked (only meaningful to the mmap write holder).
pub fn vma_is_write_locked<P: Platform>(mm: &Mm<P>, vma: &Vma<P>) -> bool {
    mm.lock_seq.is_write_locked()
        && vma.lock_seq.load(Ordering::Relaxed) == mm.lock_seq.read_relaxed()
}

/// Write-lock `vma`; the caller holds `mm`'s `mmap_lock` for write. The lock
/// lasts until `mmap_write_unlock`.
pub fn vma_start_write<P: Platform>(mm: &Mm<P>, vma: &Vma<P>) {
    crate::protocol_assert!(
        mm.lock_seq.is_write_locked(),
        "vma_start_write without the mmap write lock"
    );
    // Stable: only we (the mmap write holder) change it.
    let seq = mm.lock_seq.read_relaxed();
    // Step 1: already ours.
    if vma.lock_seq.load(Ordering::Relaxed) == seq {
        return;
    }
    // Step 2: make new readers fail, wait for the current ones.
    let waited = add_offset_unless_zero(&vma.refcnt);
    if waited {
        annotate(vma, LockOp::AcquireWrite);
        race_point!(WriterOffsetAdded, mm = mm, vma = vma);
        wait_for_count(mm, vma, LOCK_OFFSET + 1);
        race_point!(WriterAfterWait, mm = mm, vma = vma);
    }
    // Step 3: the write lock itself. Relaxed: published by the Release below
    // (for attached VMAs) or by `vma_mark_attached` (for detached ones).
    vma.lock_seq.store(seq, Ordering::Relaxed);
    // Step 4: let readers try again; they will now see the lock. Release
    // pairs with the readers' Acquire increment: a reader that gets in sees
    // the new `lock_seq` (and `mm.lock_seq`, odd, which we stored before).
    if waited {
        let old = vma.refcnt.fetch_sub(LOCK_OFFSET, Ordering::Release);
        crate::protocol_assert!(old > LOCK_OFFSET, "write lock detached the VMA");
        annotate(vma, LockOp::Release);
    }
}

/// Make a detached, initialised VMA visible to readers (before it is put in
/// the tree). The caller holds the mmap write lock.
pub fn vma_mark_attached<P: Platform>(vma: &Vma<P>) {
    crate::protocol_assert!(vma.refcnt() == 0, "attach of an attached VMA");
    // Release pairs with the readers' Acquire increment: every field written
    // while the VMA was detached (range, owner, protection, lock_seq) is
    // visible to whoever takes a reference.
    vma.refcnt.store(1, Ordering::Release);
}

/// Detach a write-locked VMA (after removing it from the tree). On return
/// `refcnt == 0` and no reader holds it: the caller may free it.
#[cfg(not(feature = "seed-v6-ordering"))]
pub fn vma_mark_detached<P: Platform>(mm: &Mm<P>, vma: &Vma<P>) {
    crate::protocol_assert!(
        vma_is_write_locked(mm, vma),
        "detach of a VMA that is not write-locked"
    );
    race_point!(DetachStart, mm = mm, vma = vma);
    // AcqRel: Acquire pairs with readers' Release puts (if this reaches 0,
    // their accesses happen before the caller reuses the memory).
    let old = vma.refcnt.fetch_sub(1, Ordering::AcqRel);
    race_point!(DetachDecremented, mm = mm, vma = vma);
    crate::protocol_assert!(old != 0, "detach of a detached VMA");
    if old == 1 {
        return;
    }
    // Readers hold transient references: they will see the write lock and
    // put them. Never assume our decrement went 1 -> 0 (the seed's bug):
    // wait for them like a writer, then drop the offset, reaching 0.
    if add_offset_unless_zero(&vma.refcnt) {
        annotate(vma, LockOp::AcquireWrite);
        wait_for_count(mm, vma, LOCK_OFFSET);
        race_point!(DetachAfterWait, mm = mm, vma = vma);
        // Relaxed: readers that load the resulting 0 fail and read nothing.
        let old = vma.refcnt.fetch_sub(LOCK_OFFSET, Ordering::Relaxed);
        crate::protocol_assert!(old == LOCK_OFFSET, "detach drained to a wrong count");
        annotate(vma, LockOp::Release);
    }
}

/// The v6 detach: assumes its decrement went 1 -> 0. TEST-ONLY: this is the
/// bug (a reader's transient reference survives the detach).
#[cfg(feature = "seed-v6-ordering")]
pub fn vma_mark_detached<P: Platform>(mm: &Mm<P>, vma: &Vma<P>) {
    crate::protocol_assert!(
        vma_is_write_locked(mm, vma),
        "detach of a VMA that is not write-locked"
    );
    race_point!(DetachStart, mm = mm, vma = vma);
    vma.refcnt.fetch_sub(1, Ordering::AcqRel);
    race_point!(DetachDecremented, mm = mm, vma = vma);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use alloc::sync::Arc;

    use super::*;
    use crate::host::Host;
    use crate::mm::{MapAt, Mm, MmRef};
    use crate::platform::Rcu;
    use crate::vma::{Prot, VmaPtr};
    use crate::vma_cache::VmaCache;

    const X: u64 = 0x10_0000;

    fn setup(seq: u32) -> (MmRef<Host>, VmaPtr<Host>) {
        let mm = Mm::with_lock_seq(Arc::new(VmaCache::<Host>::new()), seq).unwrap();
        mm.map(MapAt::Fixed(X), 4096, Prot::RW.bits()).unwrap();
        let g = Host::read_lock();
        let v = mm.find_vma_rcu(X, &g).unwrap();
        (mm, v)
    }

    #[test]
    fn read_lock_and_put_balance() {
        let (mm, v) = setup(0);
        let rcu = Host::read_lock();
        // SAFETY: attached to its address space (alive for the test) when
        // this read section began.
        let vma = unsafe { v.get_rcu(&rcu) };
        let _g = Host::read_lock();
        assert_eq!(vma_start_read(&mm, vma), Ok(()));
        assert_eq!(vma.refcnt(), 2);
        assert_eq!(Host::held_locks(), 1);
        vma_refcount_put(vma);
        assert_eq!(vma.refcnt(), 1);
        assert_eq!(Host::held_locks(), 0);
    }

    #[test]
    fn write_locked_until_mmap_write_unlock() {
        let (mm, v) = setup(0);
        let rcu = Host::read_lock();
        // SAFETY: attached to its address space (alive for the test) when
        // this read section began.
        let vma = unsafe { v.get_rcu(&rcu) };
        {
            let _w = mm.write_lock();
            vma_start_write(&mm, vma);
            assert!(vma_is_write_locked(&mm, vma));
            vma_start_write(&mm, vma); // already ours: no wait
            assert_eq!(vma_start_read(&mm, vma), Err(ReadLockError::Failed));
            assert_eq!(vma.refcnt(), 1, "failed reader left a reference");
        }
        assert_eq!(vma_start_read(&mm, vma), Ok(()));
        vma_refcount_put(vma);
        assert_eq!(Host::held_locks(), 0);
    }

    #[test]
    fn ref_limit_and_pending_writer_make_readers_fail() {
        let (mm, v) = setup(0);
        let rcu = Host::read_lock();
        // SAFETY: attached to its address space (alive for the test) when
        // this read section began.
        let vma = unsafe { v.get_rcu(&rcu) };
        vma.refcnt.store(REF_LIMIT - 1, Ordering::Relaxed);
        assert_eq!(vma_start_read(&mm, vma), Ok(()));
        assert_eq!(vma.refcnt(), REF_LIMIT);
        assert_eq!(vma_start_read(&mm, vma), Err(ReadLockError::Failed));
        vma_refcount_put(vma);
        vma.refcnt.store(LOCK_OFFSET + 1, Ordering::Relaxed); // writer pending
        assert_eq!(vma_start_read(&mm, vma), Err(ReadLockError::Failed));
        vma.refcnt.store(1, Ordering::Relaxed);
        assert_eq!(Host::held_locks(), 0);
    }

    #[test]
    fn detached_vma_reports_detached() {
        let (mm, v) = setup(0);
        let rcu = Host::read_lock();
        // SAFETY: attached to its address space (alive for the test) when
        // this read section began.
        let vma = unsafe { v.get_rcu(&rcu) };
        mm.unmap(X, 4096).unwrap();
        assert_eq!(vma.refcnt(), 0);
        assert_eq!(vma_start_read(&mm, vma), Err(ReadLockError::Detached));
        assert_eq!(Host::held_locks(), 0);
    }

    #[test]
    fn reused_by_another_mm_fails_and_keeps_counts() {
        let cache = Arc::new(VmaCache::<Host>::new());
        let a = Mm::new(cache.clone()).unwrap();
        let b = Mm::new(cache.clone()).unwrap();
        b.map(MapAt::Fixed(X), 4096, Prot::READ.bits()).unwrap();
        let g = Host::read_lock();
        let v = b.find_vma_rcu(X, &g).unwrap();
        let rcu = Host::read_lock();
        // SAFETY: attached to its address space (alive for the test) when
        // this read section began.
        let vma = unsafe { v.get_rcu(&rcu) };
        assert_eq!(vma_start_read(&a, vma), Err(ReadLockError::Failed));
        assert_eq!(vma.refcnt(), 1);
        assert_eq!(Host::held_locks(), 0);
    }

    #[test]
    fn lock_seq_wrap_gives_false_locked_never_false_unlocked() {
        // Created under u32::MAX; the unlock wraps mm.lock_seq to 0.
        let (mm, v) = setup(u32::MAX - 1);
        let rcu = Host::read_lock();
        // SAFETY: attached to its address space (alive for the test) when
        // this read section began.
        let vma = unsafe { v.get_rcu(&rcu) };
        assert_eq!(mm.lock_seq(), 0);
        assert_eq!(vma.lock_seq(), u32::MAX);
        // A stale VMA lock_seq equal to the next odd value (as if locked
        // 2^32 cycles ago): while the mm is write-locked, the VMA looks
        // locked although nobody locked it. Allowed: a false "locked".
        vma.lock_seq.store(1, Ordering::Relaxed);
        {
            let _w = mm.write_lock();
            assert_eq!(mm.lock_seq(), 1);
            assert_eq!(vma_start_read(&mm, vma), Err(ReadLockError::Failed));
        }
        // Really locked across the wrap: never reported unlocked.
        let mm2 = Mm::with_lock_seq(Arc::new(VmaCache::<Host>::new()), u32::MAX - 1).unwrap();
        mm2.map(MapAt::Fixed(X), 4096, Prot::READ.bits()).unwrap();
        let g = Host::read_lock();
        // SAFETY: found in the tree inside the read section `g`.
        let v2 = unsafe { mm2.find_vma_rcu(X, &g).unwrap().get_rcu(&g) };
        for _ in 0..3 {
            let _w = mm2.write_lock();
            vma_start_write(&mm2, v2);
            assert_eq!(vma_start_read(&mm2, v2), Err(ReadLockError::Failed));
        }
        assert_eq!(Host::held_locks(), 0);
    }
}
