//! The scheduler's statistics (`phases=sched`) say where a task waited:
//! how its wakeups were placed (on an idle CPU, preempting a running task,
//! behind one) and what its CPU ran while it sat in the queue (kernel tasks,
//! user threads, idle). The benchmarks read the placement of threads off
//! these, so a wrong bucket misleads a whole measurement. Counted in events
//! and bounded by timer ticks, never timed.

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::percpu;
use crate::sched::{self, State, Task, stats};
use crate::sync::waitqueue::WaitQueue;
use crate::{kassert, ktest};

/// Wakeups, or yields, per test.
const ROUNDS: u64 = 20;
/// Ticks of the test's CPU a step may take before the test calls it stuck
/// (a step needs a tick or two; a slow host gives fewer ticks, not more).
const STUCK_TICKS: u64 = 2_000;

/// Statistics on for the test, back as they were when it ends (however).
struct StatsOn(bool);

impl StatsOn {
    fn new() -> Self {
        let was = stats::enabled();
        stats::set_enabled(true);
        StatsOn(was)
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        stats::set_enabled(self.0);
    }
}

/// Relaxed: a count the CPU keeps for itself; we only compare readings.
fn my_ticks() -> u64 {
    percpu::this().ticks.load(Ordering::Relaxed)
}

/// Yield until `cond()`, or fail naming `what` once this CPU has ticked
/// `STUCK_TICKS` times.
fn wait_for(what: &str, cond: impl Fn() -> bool) -> Result<(), String> {
    let t0 = my_ticks();
    while !cond() {
        if my_ticks() - t0 > STUCK_TICKS {
            return Err(alloc::format!("stuck waiting for {what}"));
        }
        sched::yield_now();
    }
    Ok(())
}

/// Pin the running test task to `cpu` and move there.
fn pin_me(cpu: usize) {
    let me = sched::current();
    me.affinity.store(cpu, Ordering::Relaxed);
    while percpu::cpu_id() != cpu {
        sched::migrate_current(cpu);
    }
}

fn unpin_me() {
    sched::current()
        .affinity
        .store(sched::task::NO_CPU, Ordering::Relaxed);
}

struct Rounds {
    wq: WaitQueue,
    /// Rounds the test has released, and rounds the sleeper has finished.
    go: AtomicU64,
    done: AtomicU64,
}

/// A task pinned to `cpu` that sleeps until each round is released.
fn spawn_sleeper(cpu: usize, r: &Arc<Rounds>) -> Arc<Task> {
    let r = r.clone();
    sched::spawn("place-sleeper", Some(cpu), move || {
        for n in 1..=ROUNDS {
            // Acquire/Release: pair with the test's `go` store and `done`
            // load; the wait queue orders the sleep against the wakeup.
            r.wq.wait_until(|| r.go.load(Ordering::Acquire) >= n);
            r.done.store(n, Ordering::Release);
        }
    })
}

/// Each round: wait until the sleeper has gone to sleep and left its CPU
/// idle, then wake it.
fn wake_on_idle_rounds(cpu: usize, sleeper: &Task, r: &Rounds) -> Result<(), String> {
    for n in 1..=ROUNDS {
        wait_for("the sleeper's CPU to go idle", || {
            r.done.load(Ordering::Acquire) == n - 1
                && sleeper.state() == State::Blocked
                && sched::cpu_idle(cpu)
        })?;
        r.go.store(n, Ordering::Release);
        r.wq.wake_all();
        wait_for("the woken sleeper to run", || {
            r.done.load(Ordering::Acquire) >= n
        })?;
    }
    Ok(())
}

ktest!(
    fn sched_place_wakeup_on_an_idle_cpu_counts_as_on_idle() {
        // A task woken onto an idle CPU "preempts" the idle task, and was
        // counted as preempting: the statistics then showed no wakeup on
        // an idle CPU at all, and slow wakeups on idle CPUs as slow
        // preemptions.
        let n = percpu::online_count();
        if n < 2 {
            return crate::ktest::skip("needs two CPUs");
        }
        let _on = StatsOn::new();
        let (me, cpu) = (n - 2, n - 1);
        pin_me(me);
        let r = Arc::new(Rounds {
            wq: WaitQueue::new(),
            go: AtomicU64::new(0),
            done: AtomicU64::new(0),
        });
        let sleeper = spawn_sleeper(cpu, &r);
        let res = wake_on_idle_rounds(cpu, &sleeper, &r);
        if res.is_err() {
            // Let the sleeper finish, whatever round it is in.
            r.go.store(ROUNDS, Ordering::Release);
            r.wq.wake_all();
        }
        sched::join(&sleeper);
        unpin_me();
        res?;
        let [on_idle, preempting, behind] = stats::woken_counts(&sleeper);
        // Another task may run on that CPU between our look and the
        // wakeup (a callback task), so not every one; most, by far.
        kassert!(
            2 * on_idle >= ROUNDS,
            "{ROUNDS} wakeups of a task whose CPU we saw idle: {on_idle} counted on idle, {preempting} preempting, {behind} behind"
        );
        Ok(())
    }
);

/// A task pinned to `cpu` that spins (preemptible) until `stop`.
fn spawn_hog(cpu: usize, stop: &Arc<AtomicBool>) -> Arc<Task> {
    let stop = stop.clone();
    sched::spawn("place-hog", Some(cpu), move || {
        // Acquire: pairs with the test's Release store of `stop`.
        while !stop.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    })
}

ktest!(
    fn sched_place_wait_behind_a_kernel_task_counts_as_behind_kernel() {
        // A task that yields to a spinning kernel task on its CPU spends
        // its time in the queue while that task runs (a tick each time):
        // its wait goes to "behind kernel tasks", none to user threads.
        let _on = StatsOn::new();
        let cpu = percpu::online_count() - 1;
        let stop = Arc::new(AtomicBool::new(false));
        let hog = spawn_hog(cpu, &stop);
        let yielder = sched::spawn("place-yielder", Some(cpu), || {
            for _ in 0..ROUNDS {
                sched::yield_now();
            }
        });
        let res = wait_for("the yielder to finish", || yielder.state() == State::Exited);
        // Release: pairs with the hog's Acquire load.
        stop.store(true, Ordering::Release);
        sched::join(&hog);
        sched::join(&yielder);
        res?;
        let [kernel, user, idle, _] = stats::wait_split_ns(&yielder);
        let total = yielder.wait_sum_ns.load(Ordering::Relaxed);
        kassert!(
            user == 0 && kernel > 0 && 4 * kernel >= 3 * total,
            "a task that yielded {ROUNDS} times to a kernel task waited {total} ns: {kernel} behind kernel tasks, {user} behind user threads, {idle} with its CPU idle"
        );
        Ok(())
    }
);
