//! What the tests of where and how a wakeup lands (`sched_place`,
//! `idle_poll`) share: a task pinned to a CPU that sleeps until each round
//! is released, woken once the test sees that CPU in the state it wants;
//! the test task pinned elsewhere meanwhile; and waits bounded by timer
//! ticks, never timed.

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::percpu;
use crate::sched::{self, State, Task};
use crate::sync::waitqueue::WaitQueue;

/// Wakeups, or yields, per test.
pub(super) const ROUNDS: u64 = 20;
/// Ticks of the test's CPU a step may take before the test calls it stuck
/// (a step needs a tick or two; a slow host gives fewer ticks, not more).
const STUCK_TICKS: u64 = 2_000;

/// Relaxed: a count the CPU keeps for itself; we only compare readings.
fn my_ticks() -> u64 {
    percpu::this().ticks.load(Ordering::Relaxed)
}

/// Yield until `cond()`, or fail naming `what` once this CPU has ticked
/// `STUCK_TICKS` times.
pub(super) fn wait_for(what: &str, cond: impl Fn() -> bool) -> Result<(), String> {
    let t0 = my_ticks();
    while !cond() {
        if my_ticks() - t0 > STUCK_TICKS {
            return Err(alloc::format!("stuck waiting for {what}"));
        }
        sched::yield_now();
    }
    Ok(())
}

/// The running test task pinned to a CPU, and unpinned when this ends.
/// A yielding test task that could move would be stolen by the very CPU
/// a test watches go idle.
pub(super) struct Pin;

impl Pin {
    pub(super) fn to(cpu: usize) -> Self {
        let me = sched::current();
        me.affinity.store(cpu, Ordering::Relaxed);
        while percpu::cpu_id() != cpu {
            sched::migrate_current(cpu);
        }
        Pin
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        sched::current()
            .affinity
            .store(sched::task::NO_CPU, Ordering::Relaxed);
    }
}

struct Rounds {
    wq: WaitQueue,
    /// Rounds the test has released, and rounds the sleeper has finished.
    go: AtomicU64,
    done: AtomicU64,
}

/// A task pinned to a CPU that sleeps until each of `ROUNDS` rounds is
/// released.
pub(super) struct Sleeper {
    r: Arc<Rounds>,
    task: Arc<Task>,
}

impl Sleeper {
    pub(super) fn spawn(name: &str, cpu: usize) -> Self {
        let r = Arc::new(Rounds {
            wq: WaitQueue::new(),
            go: AtomicU64::new(0),
            done: AtomicU64::new(0),
        });
        let rr = r.clone();
        let task = sched::spawn(name, Some(cpu), move || {
            for n in 1..=ROUNDS {
                // Acquire/Release: pair with the test's `go` store and
                // `done` load; the wait queue orders the sleep against the
                // wakeup.
                rr.wq.wait_until(|| rr.go.load(Ordering::Acquire) >= n);
                rr.done.store(n, Ordering::Release);
            }
        });
        Sleeper { r, task }
    }

    pub(super) fn task(&self) -> &Task {
        &self.task
    }

    /// Each round: wait until the sleeper sleeps and `ready()` (`what`
    /// names it for the failure), then wake it and wait until it ran.
    /// Joins the sleeper, letting it finish whatever round it is in if a
    /// wait got stuck.
    pub(super) fn run(&self, what: &str, ready: impl Fn() -> bool) -> Result<(), String> {
        let res = self.rounds(what, ready);
        if res.is_err() {
            self.r.go.store(ROUNDS, Ordering::Release);
            self.r.wq.wake_all();
        }
        sched::join(&self.task);
        res
    }

    fn rounds(&self, what: &str, ready: impl Fn() -> bool) -> Result<(), String> {
        let r = &self.r;
        for n in 1..=ROUNDS {
            wait_for(what, || {
                r.done.load(Ordering::Acquire) == n - 1
                    && self.task.state() == State::Blocked
                    && ready()
            })?;
            r.go.store(n, Ordering::Release);
            r.wq.wake_all();
            wait_for("the woken sleeper to run", || {
                r.done.load(Ordering::Acquire) >= n
            })?;
        }
        Ok(())
    }
}
