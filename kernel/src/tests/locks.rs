//! Spinlocks, the mutex, the reader/writer semaphore, the rcuwait slot.
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::arch::{percpu, smp};
use crate::sched::{self, State};
use crate::sync::{Mutex, RcuWait, RwSem, SpinLock};
use crate::{kassert, kassert_eq, ktest, time};

ktest!(
    fn spinlock_mutual_exclusion_all_cpus() {
        // Millions of increments in total through a plain (non-atomic) read,
        // add, write: any two CPUs inside at once would lose updates.
        const PER_CPU: u64 = 400_000;
        let counter = SpinLock::new(0u64);
        sched::run_on_cpus(smp::online_mask(), &|_| {
            for _ in 0..PER_CPU {
                let mut g = counter.lock();
                let v = core::hint::black_box(*g);
                *g = v + 1;
            }
        });
        kassert_eq!(*counter.lock(), PER_CPU * percpu::online_count() as u64);
        Ok(())
    }
);

ktest!(
    fn mutex_sleep_and_wake() {
        let m = Arc::new(Mutex::new(0u64));
        let order = Arc::new(AtomicU64::new(0));
        let g = m.lock();
        let waiter = {
            let (m, order) = (m.clone(), order.clone());
            sched::spawn("mutex-waiter", None, move || {
                let mut g = m.lock();
                // We can only get here after the holder released it.
                order.store(if *g == 7 { 1 } else { 2 }, Ordering::Relaxed);
                *g += 1;
            })
        };
        // The waiter must go to sleep (not spin) while we hold the mutex.
        let deadline = time::uptime_ns() + 30_000_000_000;
        while waiter.state() != State::Blocked {
            kassert!(time::uptime_ns() < deadline, "the waiter never slept");
            sched::yield_now();
        }
        kassert_eq!(
            order.load(Ordering::Relaxed),
            0,
            "the waiter got the mutex while it was held"
        );
        let mut g = g;
        *g = 7;
        drop(g);
        sched::join(&waiter);
        kassert_eq!(
            order.load(Ordering::Relaxed),
            1,
            "1 = saw the holder's write, 2 = did not"
        );
        kassert_eq!(*m.lock(), 8);
        Ok(())
    }
);

ktest!(
    fn rwsem_readers_share_writers_exclude() {
        let sem = Arc::new(RwSem::new());
        // Readers share: a second reader gets in while the first holds the
        // lock. (Checked directly: whether readers happen to overlap in the
        // mixed run below depends on how QEMU schedules its vCPUs.)
        sem.read_lock();
        let second_in = Arc::new(AtomicBool::new(false));
        let second = {
            let (sem, second_in) = (sem.clone(), second_in.clone());
            sched::spawn("rwsem-reader2", None, move || {
                sem.read_lock();
                second_in.store(true, Ordering::SeqCst);
                sem.read_unlock();
            })
        };
        // Bounded: a reader shut out would otherwise hang the test.
        for _ in 0..5000 {
            if second_in.load(Ordering::SeqCst) {
                break;
            }
            sched::sleep_ns(1_000_000);
        }
        let shared = second_in.load(Ordering::SeqCst);
        sem.read_unlock();
        sched::join(&second);
        kassert!(
            shared,
            "a second reader waited while the first held the lock"
        );

        let readers = Arc::new(AtomicUsize::new(0));
        let writers = Arc::new(AtomicUsize::new(0));
        let violations = Arc::new(AtomicUsize::new(0));
        let (reads, writes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        const ROUNDS: usize = 200;
        let n = percpu::online_count().max(2);
        let mut tasks = Vec::new();
        for i in 0..(3 * n) {
            let (sem, readers, writers, violations, reads, writes) = (
                sem.clone(),
                readers.clone(),
                writers.clone(),
                violations.clone(),
                reads.clone(),
                writes.clone(),
            );
            let writer = i % 3 == 0;
            tasks.push(sched::spawn("rwsem", None, move || {
                for r in 0..ROUNDS {
                    if writer {
                        sem.write_lock();
                        if writers.fetch_add(1, Ordering::SeqCst) != 0
                            || readers.load(Ordering::SeqCst) != 0
                        {
                            violations.fetch_add(1, Ordering::Relaxed);
                        }
                        writes.fetch_add(1, Ordering::Relaxed);
                        writers.fetch_sub(1, Ordering::SeqCst);
                        sem.write_unlock();
                    } else {
                        sem.read_lock();
                        readers.fetch_add(1, Ordering::SeqCst);
                        if writers.load(Ordering::SeqCst) != 0 {
                            violations.fetch_add(1, Ordering::Relaxed);
                        }
                        // Stay inside a while (sleeping is allowed under an
                        // rwsem), so readers overlap even on one CPU.
                        if r % 4 == 0 {
                            sched::yield_now();
                        }
                        reads.fetch_add(1, Ordering::Relaxed);
                        readers.fetch_sub(1, Ordering::SeqCst);
                        sem.read_unlock();
                    }
                }
            }));
        }
        for t in &tasks {
            sched::join(t);
        }
        kassert_eq!(
            violations.load(Ordering::Relaxed),
            0,
            "a writer overlapped another holder"
        );
        kassert_eq!(reads.load(Ordering::Relaxed), 2 * n * ROUNDS);
        kassert_eq!(writes.load(Ordering::Relaxed), n * ROUNDS);
        kassert_eq!(sem.holders(), (0, false));
        Ok(())
    }
);

/// `hog` tasks keep the semaphore busy the `hog_write` way; then one task
/// asks for it the other way and must get it.
fn not_starved(hog_write: bool) -> crate::ktest::TestResult {
    let sem = Arc::new(RwSem::new());
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..percpu::online_count().max(2) * 2)
        .map(|_| {
            let (sem, stop) = (sem.clone(), stop.clone());
            sched::spawn("hog", None, move || {
                while !stop.load(Ordering::Relaxed) {
                    if hog_write {
                        sem.write_lock();
                        sched::yield_now();
                        sem.write_unlock();
                    } else {
                        sem.read_lock();
                        sched::yield_now();
                        sem.read_unlock();
                    }
                }
            })
        })
        .collect();
    // Let the hogs saturate it.
    sched::sleep_ns(20_000_000);
    let got = Arc::new(AtomicBool::new(false));
    let probe = {
        let (sem, got) = (sem.clone(), got.clone());
        sched::spawn("probe", None, move || {
            if hog_write {
                sem.read_lock();
                got.store(true, Ordering::Relaxed);
                sem.read_unlock();
            } else {
                sem.write_lock();
                got.store(true, Ordering::Relaxed);
                sem.write_unlock();
            }
        })
    };
    let deadline = time::uptime_ns() + 30_000_000_000;
    while !got.load(Ordering::Relaxed) && time::uptime_ns() < deadline {
        sched::sleep_ns(1_000_000);
    }
    let ok = got.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in &hogs {
        sched::join(t);
    }
    sched::join(&probe);
    kassert!(
        ok,
        "the {} waited for 30 s behind a stream of {}",
        if hog_write { "reader" } else { "writer" },
        if hog_write { "writers" } else { "readers" }
    );
    Ok(())
}

ktest!(
    fn rwsem_writer_not_starved() {
        not_starved(false)
    }
);

ktest!(
    fn rwsem_reader_not_starved() {
        not_starved(true)
    }
);

ktest!(
    fn rcuwait_no_lost_wakeup() {
        // Two tasks on two CPUs (one at -smp 1) pass a token back and forth,
        // each sleeping in its own rcuwait until the token is its own. A lost
        // wakeup leaves both asleep: the run would hang and the runner say so.
        const HANDOFFS: u64 = 1_000_000;
        let token = Arc::new(AtomicU64::new(0));
        let waits = Arc::new([RcuWait::new(), RcuWait::new()]);
        let cpus = percpu::online_count();
        let tasks: Vec<_> = (0..2u64)
            .map(|side| {
                let (token, waits) = (token.clone(), waits.clone());
                sched::spawn("pingpong", Some(side as usize % cpus), move || {
                    loop {
                        waits[side as usize].wait_until(|| {
                            let t = token.load(Ordering::Acquire);
                            t % 2 == side || t >= HANDOFFS
                        });
                        let t = token.load(Ordering::Acquire);
                        if t >= HANDOFFS {
                            break;
                        }
                        token.store(t + 1, Ordering::Release);
                        waits[1 - side as usize].wake_up();
                    }
                    waits[1 - side as usize].wake_up();
                })
            })
            .collect();
        for t in &tasks {
            sched::join(t);
        }
        kassert_eq!(token.load(Ordering::Relaxed), HANDOFFS);
        Ok(())
    }
);

#[cfg(debug_assertions)]
ktest!(
    fn sleep_in_spinlock_is_reported() {
        let before = crate::lockdep::SLEEP_IN_ATOMIC_REPORTS.load(Ordering::Relaxed);
        let spin = SpinLock::new(());
        let m = Mutex::new(());
        {
            let _s = spin.lock();
            // Uncontended, so it would not actually sleep, but it may: the check
            // must fire all the same.
            drop(m.lock());
        }
        let after = crate::lockdep::SLEEP_IN_ATOMIC_REPORTS.load(Ordering::Relaxed);
        kassert_eq!(after, before + 1, "reports of sleeping under a spinlock");
        // And not when no spinlock is held.
        drop(m.lock());
        kassert_eq!(
            crate::lockdep::SLEEP_IN_ATOMIC_REPORTS.load(Ordering::Relaxed),
            after
        );
        Ok(())
    }
);

#[cfg(debug_assertions)]
ktest!(
    fn lockdep_tracks_held_locks() {
        let base = crate::lockdep::held_count();
        let a = SpinLock::new(());
        let m = Mutex::new(());
        let ga = a.lock();
        kassert_eq!(crate::lockdep::held_count(), base + 1);
        drop(ga);
        let gm = m.lock();
        kassert_eq!(crate::lockdep::held_count(), base + 1);
        drop(gm);
        kassert_eq!(crate::lockdep::held_count(), base);
        Ok(())
    }
);
