//! The run queue hands out the CPU by run time (`sched::fair`): a task that
//! sleeps most of the time runs as soon as it wakes on a CPU busy with
//! tasks that never sleep. Counted in timer ticks of the CPU under test
//! (each round needs a tick, whatever the host's speed), never timed.
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::percpu;
use crate::sched::{self, Task};
use crate::{kassert, ktest, time};

/// Sleeps of the sleeper, each shorter than a tick.
const ROUNDS: u64 = 40;

/// Relaxed: a count `cpu` keeps for itself; we only compare two readings.
fn ticks(cpu: usize) -> u64 {
    percpu::get(cpu).ticks.load(Ordering::Relaxed)
}

/// A task pinned to `cpu` that spins (preemptible) until `stop`.
fn spawn_hog(cpu: usize, stop: &Arc<AtomicBool>) -> Arc<Task> {
    let stop = stop.clone();
    sched::spawn("fair-hog", Some(cpu), move || {
        // Acquire: pairs with the test's Release store of `stop`.
        while !stop.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    })
}

/// Yield until every task in `ts` has been switched in once (a hang guard
/// of 30 s, not a timing check).
fn until_started(ts: &[Arc<Task>]) -> Result<(), String> {
    let deadline = time::uptime_ns() + 30_000_000_000;
    while ts.iter().any(|t| t.switches.load(Ordering::Relaxed) == 0) {
        if time::uptime_ns() > deadline {
            return Err(String::from("a task never started"));
        }
        sched::yield_now();
    }
    Ok(())
}

/// The sleeper: `ROUNDS` sleeps of 1 ms on `cpu`, each ended by that CPU's
/// next tick. Returns the ticks `cpu` took meanwhile.
fn sleeper(cpu: usize) -> u64 {
    let t0 = ticks(cpu);
    for _ in 0..ROUNDS {
        sched::sleep_ns(1_000_000);
    }
    ticks(cpu) - t0
}

ktest!(
    fn fair_sleeper_runs_at_its_wakeup_tick() {
        // Two hogs and a sleeper on one CPU. The tick that ends a sleep
        // wakes the sleeper, which has had far less CPU than either hog and
        // so runs at once: one tick per round. In a FIFO queue it would wait
        // behind the other hog for a whole tick: two ticks per round.
        let cpu = percpu::online_count() - 1;
        let stop = Arc::new(AtomicBool::new(false));
        let hogs: Vec<_> = (0..2).map(|_| spawn_hog(cpu, &stop)).collect();
        let started = until_started(&hogs);
        let took = Arc::new(AtomicU64::new(0));
        if started.is_ok() {
            let took2 = took.clone();
            let s = sched::spawn("fair-sleeper", Some(cpu), move || {
                // Relaxed: read after `join`, whose wait orders it.
                took2.store(sleeper(cpu), Ordering::Relaxed);
            });
            sched::join(&s);
        }
        // Release: pairs with the hogs' Acquire loads.
        stop.store(true, Ordering::Release);
        for h in &hogs {
            sched::join(h);
        }
        started?;
        let took = took.load(Ordering::Relaxed);
        kassert!(
            2 * took < 3 * ROUNDS,
            "{} sleeps of 1 ms beside two hogs took {} ticks of cpu{}: a woken sleeper waited for the tick",
            ROUNDS,
            took,
            cpu
        );
        Ok(())
    }
);
