//! `munmap` tears down the page table under the `mmap_lock` downgraded to
//! read, and `rss` is counted per CPU: a reader of the `mmap_lock` gets in
//! while an unmap is between its page-table clear and its frees, and the
//! summed `rss` stays exact when faults and the unmap run on different CPUs.
//!
//! Kernel tasks pinned to CPUs drive the real `mm` code on address spaces
//! made for the test (as the replays in `replay.rs` do). The first test is
//! the semaphore's own: what `downgrade` lets in and what it keeps out.
#![cfg(feature = "race-inject")]

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use mm::fault::{Access, FaultOutcome, handle_user_fault};
use mm::mm::{MapAt, Mm, MmRef};
use mm::vma::Prot;
use mm::vma_cache::VmaCache;

use crate::arch::percpu;
use crate::mm_platform::Kernel;
use crate::race::{Point, Session, at};
use crate::sched;
use crate::sync::{RwSem, SpinLock};
use crate::{kassert, kassert_eq, ktest, lockdep, race, time};

use super::replay::{NEEDS_TWO, PAGE, READER, READER_CPU, X, Y, join, spawn_writer};

/// Sleep until `cond` holds; an error naming `what` after a few seconds.
fn wait_for(what: &str, cond: impl Fn() -> bool) -> Result<(), String> {
    let deadline = time::uptime_ns() + 10_000_000_000;
    while !cond() {
        if time::uptime_ns() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        sched::sleep_ns(100_000);
    }
    Ok(())
}

/// A task that takes `sem` (for write if `write`), sets `done`, and lets go.
fn locker(sem: &Arc<RwSem>, write: bool, done: &Arc<AtomicBool>) -> Arc<sched::Task> {
    let (sem, done) = (sem.clone(), done.clone());
    sched::spawn("downgrade-locker", None, move || {
        if write {
            sem.write_lock();
        } else {
            sem.read_lock();
        }
        // Relaxed: the test reads it only as "has it run yet".
        done.store(true, Ordering::Relaxed);
        if write {
            sem.write_unlock();
        } else {
            sem.read_unlock();
        }
    })
}

// We hold the semaphore for write; a reader queues, then a writer behind
// it. The downgrade must let the reader in at once (we hold it for read
// together) and keep the writer out until we let go of our read hold. A
// downgrade that unlocked and then read-locked would queue us behind the
// writer, which would run first.
ktest!(
    fn rwsem_downgrade_admits_readers_not_writers() {
        let sem = Arc::new(RwSem::new());
        let (read_done, write_done) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let reports = lockdep::total_reports();
        sem.write_lock();
        let r = locker(&sem, false, &read_done);
        wait_for("the reader to queue", || sem.waiters() == 1)?;
        let w = locker(&sem, true, &write_done);
        wait_for("the writer to queue", || sem.waiters() == 2)?;
        sem.downgrade();
        let got_in = wait_for("the reader to get in", || read_done.load(Ordering::Relaxed));
        let writer_ran = write_done.load(Ordering::Relaxed);
        let held = sem.holders();
        sem.read_unlock();
        join(&r)?;
        join(&w)?;
        got_in?;
        kassert!(
            !writer_ran,
            "a writer got in between the downgrade and our read unlock"
        );
        kassert!(!held.1 && held.0 >= 1, "held after the downgrade: {held:?}");
        kassert!(write_done.load(Ordering::Relaxed), "the writer never ran");
        kassert_eq!(sem.holders(), (0, false));
        kassert_eq!(
            lockdep::total_reports(),
            reports,
            "lockdep reported the downgrade"
        );
        Ok(())
    }
);

/// Pages the unmap in the second test tears down (a few page tables' worth
/// of leaves would be as good; one table is enough to have work to do).
const UNMAP_PAGES: u64 = 16;

fn new_mm() -> Result<MmRef<Kernel>, String> {
    Mm::<Kernel>::new(Arc::new(VmaCache::new())).map_err(|e| format!("no address space: {e:?}"))
}

fn map(mm: &Mm<Kernel>, addr: u64, len: u64) -> Result<(), String> {
    mm.map(MapAt::Fixed(addr), len, Prot::RW.bits())
        .map(|_| ())
        .map_err(|e| format!("map {addr:#x}+{len:#x}: {e:?}"))
}

fn fault(mm: &Mm<Kernel>, addr: u64) -> Result<(), String> {
    match handle_user_fault(mm, addr, Access::Write) {
        FaultOutcome::Done => Ok(()),
        other => Err(format!("fault at {addr:#x}: {other:?}")),
    }
}

// The writer unmaps X (its pages present) and stops once its page table is
// cleared, before the shootdown and the frees, until the reader's fault at
// Y, a VMA of its own, is inside `handle_fault` under the `mmap_lock`: the
// first fault in a VMA always takes the `mmap_lock` for read (the per-VMA
// path asks for a retry until the VMA's anonymous memory is set up). With
// the teardown under the write lock the reader cannot get in, the stop
// times out and the session fails.
ktest!(
    fn munmap_teardown_admits_mmap_lock_reader() {
        if !race::enough_cpus() {
            return crate::ktest::skip(NEEDS_TWO);
        }
        let mm = new_mm()?;
        map(&mm, X, UNMAP_PAGES * PAGE)?;
        map(&mm, Y, PAGE)?;
        for i in 0..UNMAP_PAGES {
            fault(&mm, X + i * PAGE)?;
        }
        let reports = lockdep::total_reports();
        let s = Session::begin()?;
        let inside = at(Point::FaultLeafFound).mm(&*mm).addr(Y).task(READER);
        let cleared = s.stop(at(Point::UnmapPtCleared).mm(&*mm).addr(X), inside);
        let freed = s.watch(at(Point::UnmapFreed).mm(&*mm).addr(X));
        let fault_in = s.watch(inside);

        let w = {
            let mm = mm.clone();
            spawn_writer(move || mm.unmap(X, UNMAP_PAGES * PAGE).expect("unmap"))
        };
        cleared.wait_parked()?;
        let out = Arc::new(SpinLock::new(None));
        let r = {
            let (mm, out) = (mm.clone(), out.clone());
            sched::spawn(READER, Some(READER_CPU), move || {
                *out.lock() = Some(handle_user_fault(&mm, Y, Access::Write));
            })
        };
        join(&w)?;
        join(&r)?;
        s.finish()?;

        kassert_eq!(*out.lock(), Some(FaultOutcome::Done), "the fault at Y");
        kassert!(
            matches!(
                (fault_in.first_hit(), freed.first_hit()),
                (Some(f), Some(u)) if f < u
            ),
            "the fault got the mmap_lock only after the unmap's frees (fault {:?}, freed {:?})",
            fault_in.first_hit(),
            freed.first_hit()
        );
        kassert_eq!(mm.rss(), 1, "Y's page alone is resident");
        kassert_eq!(mm.census().0, 1, "Y's leaf alone is present");
        mm.check_invariants();
        kassert_eq!(
            lockdep::total_reports(),
            reports,
            "lockdep reported the unmap"
        );
        Ok(())
    }
);

/// Pages each CPU's task faults in, in its own part of one VMA.
const PAGES_PER_CPU: u64 = 256;

// One task per CPU faults its own pages (each counted on its CPU's share),
// then one unmap on CPU 0 takes them all out (all counted out on CPU 0's
// share, which goes negative): the sum is the number of pages after the
// faults and 0 after the unmap. Repeated, so updates racing on a shared
// slot would be lost at least once.
ktest!(
    fn rss_sum_exact_across_cpus() {
        let cpus: Vec<usize> = percpu::online_cpus().map(|c| c.cpu_id as usize).collect();
        let len = cpus.len() as u64 * PAGES_PER_CPU * PAGE;
        let mm = new_mm()?;
        for round in 0..4 {
            map(&mm, X, len)?;
            let tasks: Vec<_> = cpus
                .iter()
                .enumerate()
                .map(|(i, &cpu)| {
                    let mm = mm.clone();
                    let base = X + i as u64 * PAGES_PER_CPU * PAGE;
                    sched::spawn("rss-faulter", Some(cpu), move || {
                        for p in 0..PAGES_PER_CPU {
                            fault(&mm, base + p * PAGE).expect("fault");
                        }
                    })
                })
                .collect();
            for t in &tasks {
                join(t)?;
            }
            let pages = cpus.len() as u64 * PAGES_PER_CPU;
            kassert_eq!(mm.census().0, pages, "round {round}: leaves present");
            kassert_eq!(mm.rss(), pages, "round {round}: rss after the faults");
            let u = {
                let mm = mm.clone();
                spawn_writer(move || mm.unmap(X, len).expect("unmap"))
            };
            join(&u)?;
            kassert_eq!(mm.rss(), 0, "round {round}: rss after the unmap");
        }
        Ok(())
    }
);
