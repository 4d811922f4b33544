//! Timed sleeps always end: many tasks sleep briefly on every CPU while
//! others yield, spawn, move themselves between CPUs and send spurious
//! wakeups (as `kill_process` and late wait-queue wakers do). A sleeper that
//! stops making progress while every CPU keeps ticking has lost its wakeup.
//!
//! The bound is a count of timer ticks, not a time: a sleeper must make
//! progress before *every* online CPU has taken `STUCK_TICKS` ticks since
//! its last step. A slow or descheduled virtual CPU takes fewer ticks, so a
//! loaded host cannot fail the test; a wakeup that is lost for good does.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::percpu;
use crate::sched::{self, Task};
use crate::{kassert_eq, ktest};

/// Sleeps per sleeper.
const ROUNDS: u64 = 150;
/// Ticks every CPU may take while a sleeper makes no progress (a sleep is
/// under one tick long; a woken task waits its turn behind a few others).
const STUCK_TICKS: u64 = 500;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64: cheap, and deterministic per task.
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One sleep of 0.1 to 2 ms; every 8th round the sleeper first pins itself
/// to some CPU and moves there (as the user `pin` call does), and unpins.
/// Every 4th sleeper also waits for an RCU grace period on odd rounds: the
/// grace-period task polls with the same short sleeps.
fn sleeper(id: u64, progress: &AtomicU64, cpus: usize) {
    let mut rng = Rng(id * 0x9e37_79b9 + 1);
    for round in 0..ROUNDS {
        if round % 8 == 7 {
            let c = (rng.next() % cpus as u64) as usize;
            let me = sched::current();
            me.affinity.store(c, Ordering::Relaxed);
            while percpu::cpu_id() != c {
                sched::migrate_current(c);
            }
            me.affinity.store(sched::task::NO_CPU, Ordering::Relaxed);
        }
        if id % 4 == 3 && round % 2 == 1 {
            crate::rcu::synchronize_rcu();
        } else {
            sched::sleep_ns(100_000 + rng.next() % 1_900_000);
        }
        progress.fetch_add(1, Ordering::Release);
    }
}

/// Yields, spawns and joins short tasks, and wakes random sleepers for no
/// reason (a wakeup a sleeper must tolerate, and must not lose a real one).
fn churner(id: u64, sleepers: &[Arc<Task>], stop: &AtomicBool) {
    let mut rng = Rng(id * 0x2545_f491 + 7);
    while !stop.load(Ordering::Relaxed) {
        match rng.next() % 4 {
            0 => {
                let t = sched::spawn("wakeup-short", None, sched::yield_now);
                sched::join(&t);
            }
            1 | 2 => {
                let t = &sleepers[(rng.next() % sleepers.len() as u64) as usize];
                sched::wake(t);
            }
            _ => sched::yield_now(),
        }
    }
}

fn ticks() -> Vec<u64> {
    percpu::online_cpus()
        .map(|c| c.ticks.load(Ordering::Relaxed))
        .collect()
}

/// Did every CPU take `STUCK_TICKS` ticks since `then`?
fn all_ticked_past(then: &[u64]) -> bool {
    ticks()
        .iter()
        .zip(then)
        .all(|(now, then)| now - then >= STUCK_TICKS)
}

/// Watch the sleepers until all are done; an error names a stuck one.
fn watch(sleepers: &[Arc<Task>], progress: &[Arc<AtomicU64>]) -> Result<(), String> {
    let mut last: Vec<(u64, Vec<u64>)> = progress
        .iter()
        .map(|p| (p.load(Ordering::Acquire), ticks()))
        .collect();
    loop {
        let mut done = true;
        for (i, p) in progress.iter().enumerate() {
            let now = p.load(Ordering::Acquire);
            done &= now == ROUNDS;
            if now != last[i].0 {
                last[i] = (now, ticks());
            } else if now != ROUNDS && all_ticked_past(&last[i].1) {
                // Round `now` is the one it is stuck in (see `sleeper`).
                let what = if i % 4 == 3 && now % 2 == 1 {
                    "in synchronize_rcu"
                } else {
                    "in sleep_ns"
                };
                return Err(format!(
                    "sleeper {i} stuck {what} after {now} of {ROUNDS} rounds while every CPU ticked {STUCK_TICKS} times: {}{}",
                    sched::diag::describe_task(&sleepers[i]),
                    sched::diag::describe_cpus()
                ));
            }
        }
        if done {
            return Ok(());
        }
        sched::yield_now();
    }
}

ktest!(
    fn sched_wakeup_sleepers_always_wake() {
        let cpus = percpu::online_count();
        let stop = Arc::new(AtomicBool::new(false));
        let progress: Vec<Arc<AtomicU64>> =
            (0..4 * cpus).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let sleepers: Vec<Arc<Task>> = progress
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let p = p.clone();
                sched::spawn("wakeup-sleeper", None, move || sleeper(i as u64, &p, cpus))
            })
            .collect();
        let shared: Arc<Vec<Arc<Task>>> = Arc::new(sleepers.clone());
        let churners: Vec<Arc<Task>> = (0..cpus)
            .map(|i| {
                let (shared, stop) = (shared.clone(), stop.clone());
                sched::spawn("wakeup-churner", None, move || {
                    churner(i as u64, &shared, &stop)
                })
            })
            .collect();
        let watched = watch(&sleepers, &progress);
        stop.store(true, Ordering::Relaxed);
        for t in &churners {
            kassert_eq!(sched::join(t), 0);
        }
        watched?;
        for t in &sleepers {
            kassert_eq!(sched::join(t), 0);
        }
        Ok(())
    }
);
