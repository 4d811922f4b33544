//! Deterministic replays of known races in the VMA lock protocol: each arms
//! race-injection points (`race.rs`) so that one exact interleaving happens
//! on two real CPUs, then asserts its outcome. `docs/mm.md` ("Race
//! injection") has each one's timeline.
//!
//! The replays drive the real `mm` code (`handle_user_fault`, `unmap`,
//! `protect`, the last `MmRef` dropped as a process's exit does) from kernel
//! tasks pinned to different CPUs, on address spaces made for the test with
//! their own VMA cache, so no other activity can take the VMA memory a replay
//! expects to be reused. The CPU that waits at a point spins (it may be in an
//! RCU read section); the one it waits for must be another CPU, so a replay
//! needs two and reports itself skipped on one. The constants and task
//! helpers below are shared with `replay_more.rs`.
#![cfg(feature = "race-inject")]

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;

use mm::fault::{Access, FaultOutcome, handle_user_fault};
use mm::mm::{MapAt, Mm, MmRef};
use mm::platform::Rcu;
use mm::vma::{Prot, Vma};
use mm::vma_cache::VmaCache;

use crate::mm_platform::Kernel;
use crate::race::{Point, Session, at};
use crate::sched::{self, State, Task};
use crate::sync::SpinLock;
use crate::{kassert, kassert_eq, ktest, lockdep, race};

pub(super) const X: u64 = 0x40_0000;
pub(super) const Y: u64 = 0x80_0000;
pub(super) const PAGE: u64 = 4096;

/// The task that takes the fault (pinned to `READER_CPU`).
pub(super) const READER: &str = "replay-reader";
/// The task that changes the address space (on the test's CPU, 0).
pub(super) const WRITER: &str = "replay-writer";
pub(super) const READER_CPU: usize = 1;
pub(super) const WRITER_CPU: usize = 0;

/// A task that is not done by then is stuck: the replay fails.
pub(super) const JOIN_TIMEOUT_NS: u64 = 30_000_000_000;

pub(super) const NEEDS_TWO: &str = "a replay needs 2 CPUs";

type Shared<T> = Arc<SpinLock<Option<T>>>;

/// An address space for one replay, with one page mapped read-write at `X`,
/// its VMAs from `cache` (a fresh cache of its own if None).
fn test_mm(cache: Option<&Arc<VmaCache<Kernel>>>) -> Result<MmRef<Kernel>, String> {
    let cache = cache.cloned().unwrap_or_else(|| Arc::new(VmaCache::new()));
    let mm = Mm::<Kernel>::new(cache).map_err(|e| format!("no address space: {e:?}"))?;
    mm.map(MapAt::Fixed(X), PAGE, Prot::RW.bits())
        .map_err(|e| format!("map at X: {e:?}"))?;
    Ok(mm)
}

/// The VMA the tree holds for `addr` (its address: it may be reused later).
pub(super) fn vma_at(mm: &Mm<Kernel>, addr: u64) -> Result<*const Vma<Kernel>, String> {
    let g = Kernel::read_lock();
    mm.find_vma_rcu(addr, &g)
        .map(|v| v.as_raw() as *const Vma<Kernel>)
        .ok_or_else(|| format!("no VMA at {addr:#x}"))
}

/// Spawn the reader: one user fault at `addr` (read), its outcome kept.
fn spawn_fault(mm: &MmRef<Kernel>, addr: u64) -> (Arc<Task>, Shared<FaultOutcome>) {
    let out: Shared<FaultOutcome> = Arc::new(SpinLock::new(None));
    let (mm, o) = (mm.clone(), out.clone());
    let t = sched::spawn(READER, Some(READER_CPU), move || {
        let outcome = handle_user_fault(&mm, addr, Access::Read);
        *o.lock() = Some(outcome);
    });
    (t, out)
}

/// Spawn the writer running `f` on the test's CPU.
pub(super) fn spawn_writer(f: impl FnOnce() + Send + 'static) -> Arc<Task> {
    sched::spawn(WRITER, Some(WRITER_CPU), f)
}

/// Wait for `t` to exit, failing (not hanging) after `JOIN_TIMEOUT_NS`.
pub(super) fn join(t: &Arc<Task>) -> Result<(), String> {
    let deadline = crate::time::uptime_ns() + JOIN_TIMEOUT_NS;
    while t.state() != State::Exited {
        if crate::time::uptime_ns() > deadline {
            return Err(format!("task `{}` did not finish", t.name));
        }
        sched::sleep_ns(200_000);
    }
    Ok(())
}

fn outcome(o: &Shared<FaultOutcome>) -> Result<FaultOutcome, String> {
    o.lock()
        .ok_or_else(|| String::from("the fault did not finish"))
}

// The seed: the reader passed its pre-check before the writer write-locked
// the VMA, takes its reference after the write lock, and drops it (seeing
// the lock) while unmap detaches the VMA, after detach's own decrement: the
// reader's put is the one that reaches 0. The VMA must be freed only after
// that put, and the put must release the read annotation (the v6 code
// skipped it when the count reached 0: lockdep then reports the read lock
// held into the fallback and at the reader's exit).
ktest!(
    fn replay_seed_put_races_detach() {
        if !race::enough_cpus() {
            return crate::ktest::skip(NEEDS_TWO);
        }
        let mm = test_mm(None)?;
        let v = vma_at(&mm, X)?;
        let reports = lockdep::total_reports();
        let s = Session::begin()?;
        let reader = |p: Point| at(p).vma(v).task(READER);
        let checked = s.stop(
            reader(Point::ReadPrecheckPassed),
            at(Point::DetachStart).vma(v),
        );
        s.stop(at(Point::DetachStart).vma(v), reader(Point::ReadAfterInc));
        s.stop(
            reader(Point::PutBeforeDec),
            at(Point::DetachDecremented).vma(v),
        );
        s.stop(
            at(Point::DetachDecremented).vma(v),
            reader(Point::PutAfterDec),
        );
        let put = s.watch(reader(Point::PutAfterDec));
        let freed = s.watch(at(Point::VmaFree).vma(v));

        let (r, out) = spawn_fault(&mm, X);
        checked.wait_parked()?;
        let w = {
            let mm = mm.clone();
            spawn_writer(move || mm.unmap(X, PAGE).expect("unmap"))
        };
        join(&w)?;
        join(&r)?;
        s.finish()?;

        kassert_eq!(
            outcome(&out)?,
            FaultOutcome::AccessError,
            "the fault fell back after the unmap"
        );
        kassert_eq!(freed.hits(), 1, "the VMA was freed once");
        kassert!(
            freed.first_hit() > put.first_hit(),
            "the VMA was freed before the reader's put (put {:?}, free {:?})",
            put.first_hit(),
            freed.first_hit()
        );
        kassert_eq!(
            lockdep::total_reports(),
            reports,
            "lockdep reported the reader's put (annotation not released)"
        );
        kassert_eq!(mm.vma_count(), 0);
        Ok(())
    }
);

// CVE-2025-38554: the reader's VMA is unmapped and its memory reused by
// another process, B, before the reader takes its reference. The reader
// sees B as the owner and puts its reference back; meanwhile B's last thread
// exits: its teardown raises LOCK_OFFSET, the reader's decrement lets it
// finish, and the exit drops B's last user. The reader's put must keep B
// alive until its wakeup is done (the pin): B may be freed only after the
// exit, by the reader's unpin.
ktest!(
    fn replay_cve_2025_38554_reuse_by_exiting_mm() {
        if !race::enough_cpus() {
            return crate::ktest::skip(NEEDS_TWO);
        }
        let cache = Arc::new(VmaCache::new());
        let a = test_mm(Some(&cache))?;
        let v = vma_at(&a, X)?;
        let reports = lockdep::total_reports();
        let s = Session::begin()?;
        let found = s.stop_until_released(at(Point::LookupFound).mm(&*a).addr(X).task(READER));
        let (r, out) = spawn_fault(&a, X);
        found.wait_parked()?;

        // The free list is LIFO: B's first VMA is the reader's memory.
        a.unmap(X, PAGE).map_err(|e| format!("unmap: {e:?}"))?;
        let b = Mm::<Kernel>::new(cache.clone()).map_err(|e| format!("mm B: {e:?}"))?;
        b.map(MapAt::Fixed(Y), PAGE, Prot::READ.bits())
            .map_err(|e| format!("map in B: {e:?}"))?;
        kassert_eq!(vma_at(&b, Y)?, v, "B did not reuse the reader's VMA");
        let bp = b.as_ptr();
        let reader = |p: Point| at(p).vma(v).task(READER);
        let putting = s.stop(
            reader(Point::PutBeforeDec),
            at(Point::WriterOffsetAdded).mm(bp),
        );
        s.stop(
            at(Point::WriterOffsetAdded).mm(bp),
            reader(Point::PutAfterDec),
        );
        s.stop(reader(Point::PutAfterDec), at(Point::MmExitDone).mm(bp));
        let exited = s.watch(at(Point::MmExitDone).mm(bp));
        let freed = s.watch(at(Point::MmFree).mm(bp));
        found.release();
        // B's exit must start only once the reader holds its reference (a
        // writer already pending would make the reader's increment fail).
        putting.wait_parked()?;
        // B's last thread exits.
        let e = spawn_writer(move || drop(b));
        join(&e)?;
        join(&r)?;
        s.finish()?;

        kassert_eq!(
            outcome(&out)?,
            FaultOutcome::AccessError,
            "the fault fell back and found X unmapped"
        );
        kassert_eq!(freed.hits(), 1, "B was freed once");
        kassert!(
            freed.first_hit() > exited.first_hit(),
            "B's exit freed it while the reader's put still used it (exit {:?}, free {:?})",
            exited.first_hit(),
            freed.first_hit()
        );
        kassert_eq!(lockdep::total_reports(), reports, "lockdep reports");
        Ok(())
    }
);

// The reader's VMA is unmapped and its memory reused by the same address
// space at another range before the reader takes its reference: the owner
// check passes, the lock succeeds, and only the range re-check after
// locking sees that the VMA no longer covers the address. It must send the
// fault to the fallback, which finds nothing mapped there.
ktest!(
    fn replay_reuse_same_mm_other_range() {
        if !race::enough_cpus() {
            return crate::ktest::skip(NEEDS_TWO);
        }
        let a = test_mm(None)?;
        let v = vma_at(&a, X)?;
        let reports = lockdep::total_reports();
        let s = Session::begin()?;
        let found = s.stop_until_released(at(Point::LookupFound).mm(&*a).addr(X).task(READER));
        let locked = s.watch(at(Point::ReadAfterInc).vma(v).task(READER));
        let put = s.watch(at(Point::PutAfterDec).vma(v).task(READER));
        let (r, out) = spawn_fault(&a, X);
        found.wait_parked()?;

        a.unmap(X, PAGE).map_err(|e| format!("unmap: {e:?}"))?;
        a.map(MapAt::Fixed(Y), PAGE, Prot::RW.bits())
            .map_err(|e| format!("map at Y: {e:?}"))?;
        kassert_eq!(vma_at(&a, Y)?, v, "the VMA memory was not reused at Y");
        let before = a.counters.snapshot();
        found.release();
        join(&r)?;
        s.finish()?;

        let after = a.counters.snapshot();
        kassert_eq!(
            outcome(&out)?,
            FaultOutcome::AccessError,
            "the fault at X used the VMA at Y"
        );
        kassert_eq!(locked.hits(), 1, "the reader did not take the reused VMA");
        kassert_eq!(put.hits(), 1, "the reader did not drop it");
        kassert_eq!(after.abort - before.abort, 1, "no abort counted");
        kassert_eq!(after.success, before.success, "a per-VMA success");
        kassert_eq!(a.rss(), 0, "a page was installed");
        kassert_eq!(lockdep::total_reports(), reports, "lockdep reports");
        Ok(())
    }
);

// A "detached" miss: the reader passed its pre-check, then the writer
// replaced the VMA (an mprotect that merges X into its read-only neighbour)
// and detached the old one. The reader's
// increment finds 0 and must walk the tree again from the root, while the
// writer is still in the middle of its change (it waits until the reader
// has fallen back): the new walk finds the new VMA, write-locked, and the
// fault falls back to the mmap_lock and completes in the new VMA.
ktest!(
    fn replay_detached_miss_restarts() {
        if !race::enough_cpus() {
            return crate::ktest::skip(NEEDS_TWO);
        }
        let a = test_mm(None)?;
        // Protecting the whole of X alone would change it in place; with a
        // read-only neighbour the two merge into a new VMA.
        a.map(MapAt::Fixed(X + PAGE), PAGE, Prot::READ.bits())
            .map_err(|e| format!("map the neighbour: {e:?}"))?;
        let v = vma_at(&a, X)?;
        let reports = lockdep::total_reports();
        let s = Session::begin()?;
        let reader = |p: Point| at(p).mm(&*a).task(READER);
        let checked = s.stop(
            reader(Point::ReadPrecheckPassed).vma(v),
            at(Point::EditDetached).vma(v),
        );
        s.stop(at(Point::EditDetached).vma(v), reader(Point::FaultFallback));
        let walks = s.watch(reader(Point::LookupFound).addr(X));
        let stale = s.watch(reader(Point::LookupFound).vma(v));
        let restart = s.watch(reader(Point::LookupRestart).vma(v));
        let before = a.counters.snapshot();
        let (r, out) = spawn_fault(&a, X);
        checked.wait_parked()?;
        let w = {
            let a = a.clone();
            spawn_writer(move || a.protect(X, PAGE, Prot::READ.bits()).expect("protect"))
        };
        join(&w)?;
        join(&r)?;
        s.finish()?;

        let after = a.counters.snapshot();
        kassert_eq!(outcome(&out)?, FaultOutcome::Done, "the fault failed");
        kassert_eq!(
            restart.hits(),
            1,
            "the detached VMA did not restart the walk"
        );
        kassert_eq!(after.miss - before.miss, 1, "the miss was not counted");
        kassert_eq!(walks.hits(), 2, "not exactly one walk again");
        kassert_eq!(stale.hits(), 1, "the second walk found the old VMA");
        kassert_eq!(
            after.abort - before.abort,
            1,
            "the new, write-locked VMA did not abort"
        );
        kassert_eq!(after.fallback - before.fallback, 1, "no fallback");
        kassert_eq!(a.find(X).map(|(_, p)| p), Some(Prot::READ));
        kassert_eq!(lockdep::total_reports(), reports, "lockdep reports");
        Ok(())
    }
);
