//! The `RwSem` is FIFO: once a writer waits, new readers queue behind it,
//! so it gets the semaphore after at most the read acquisitions already
//! under way when it queued. Counted in acquisitions, never timed.
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::arch::percpu;
use crate::sched;
use crate::sync::RwSem;
use crate::{kassert, ktest, time};

const ROUNDS: usize = 10;
/// Readers pause after this many acquisitions in a round, so that a
/// semaphore that lets them barge past the writer fails the test instead of
/// hanging.
const CAP: usize = 100_000;

struct Shared {
    sem: RwSem,
    /// Read acquisitions so far, each counted while holding the lock.
    taken: AtomicUsize,
    /// Readers pause once `taken` reaches this.
    limit: AtomicUsize,
    stop: AtomicBool,
}

fn reader(s: &Shared) {
    while !s.stop.load(Ordering::Relaxed) {
        if s.taken.load(Ordering::Relaxed) >= s.limit.load(Ordering::Relaxed) {
            sched::yield_now();
            continue;
        }
        s.sem.read_lock();
        s.taken.fetch_add(1, Ordering::Relaxed);
        s.sem.read_unlock();
    }
}

/// One round: a writer queues while the readers hammer. Returns how many
/// read acquisitions were counted between its queueing and its grant.
fn one_round(s: &Arc<Shared>) -> Result<usize, alloc::string::String> {
    let start = s.taken.load(Ordering::Relaxed);
    s.limit.store(start + 100 + CAP, Ordering::Relaxed);
    let deadline = time::uptime_ns() + 30_000_000_000;
    while s.taken.load(Ordering::Relaxed) < start + 100 {
        if time::uptime_ns() > deadline {
            return Err("the readers never ran".into());
        }
        sched::yield_now();
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (s, seen) = (s.clone(), seen.clone());
        sched::spawn("writer", None, move || {
            s.sem.write_lock();
            // The semaphore orders this after every counted acquisition
            // that was granted before us (their read_unlock, our grant).
            seen.store(s.taken.load(Ordering::Relaxed), Ordering::Relaxed);
            s.sem.write_unlock();
        })
    };
    // Readers queue only behind a writer, so a waiter means the writer has
    // queued (or holds the semaphore: then `before` is read after `seen`
    // and the round counts 0, as it does if the writer never had to wait).
    while s.sem.waiters() == 0 && sched::State::Exited != writer.state() {
        if time::uptime_ns() > deadline {
            return Err("the writer never queued".into());
        }
        sched::yield_now();
    }
    let before = s.taken.load(Ordering::Relaxed);
    sched::join(&writer);
    Ok(seen.load(Ordering::Relaxed).saturating_sub(before))
}

ktest!(
    fn rwsem_writer_waits_only_for_readers_under_way() {
        let nr_readers = percpu::online_count().max(2);
        let s = Arc::new(Shared {
            sem: RwSem::new(),
            taken: AtomicUsize::new(0),
            limit: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let readers: Vec<_> = (0..nr_readers)
            .map(|_| {
                let s = s.clone();
                sched::spawn("reader", None, move || reader(&s))
            })
            .collect();
        let mut worst = 0;
        let mut result = Ok(());
        for _ in 0..ROUNDS {
            match one_round(&s) {
                Ok(n) => worst = worst.max(n),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        s.stop.store(true, Ordering::Relaxed);
        for r in &readers {
            sched::join(r);
        }
        result?;
        // Each reader has at most one acquisition under way (holding, or
        // granted and not yet counted) when the writer queues.
        kassert!(
            worst <= nr_readers,
            "{} read acquisitions were counted while a writer waited ({} readers)",
            worst,
            nr_readers
        );
        Ok(())
    }
);
