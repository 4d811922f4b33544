//! Idle polling (`sched/idle_poll.rs`): an idle CPU that polls sees a task
//! woken onto it without halting, and one that nobody wakes halts; the
//! window adapts as `haltpoll`'s does. Counted in polls and bounded by
//! timer ticks, never timed.

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::percpu;
use crate::sched::idle_poll::{self, GROW_START_NS};
use crate::sched::{self, State, Task};
use crate::sync::waitqueue::WaitQueue;
use crate::{kassert, ktest};

const ROUNDS: u64 = 20;
/// A window the test's wakeups come well within, however slow the host
/// (the test task may wait a tick or two behind other tasks on its CPU,
/// and the host may not run its vCPU for a while).
const WINDOW_NS: u64 = 500_000_000;
/// A window well under a tick.
const SHORT_WINDOW_NS: u64 = 1_000_000;
/// Sleeps of the test task (a tick or so each) before it calls an idle
/// CPU that never halts stuck.
const SLEEPS: u32 = 500;
/// Ticks of the test's CPU a step may take before the test calls it stuck.
const STUCK_TICKS: u64 = 2_000;

ktest!(
    fn idle_poll_window_grows_on_short_idles_and_shrinks_on_long() {
        let max = 1_000_000;
        let short = 10_000; // a wakeup the window just missed
        let long = 2 * max; // a CPU woken only by its tick
        let mut w = 0;
        let mut seen = alloc::vec::Vec::new();
        for _ in 0..6 {
            w = idle_poll::next_window(w, short, max);
            seen.push(w);
        }
        kassert!(
            seen == [GROW_START_NS, 100_000, 200_000, 400_000, 800_000, max],
            "short idles grew the window 0 -> {seen:?} (max {max})"
        );
        let mut down = alloc::vec::Vec::new();
        for _ in 0..6 {
            w = idle_poll::next_window(w, long, max);
            down.push(w);
        }
        kassert!(
            down == [500_000, 250_000, 125_000, 62_500, 0, 0],
            "long idles shrank the window {max} -> {down:?}"
        );
        kassert!(
            idle_poll::next_window(0, short, 0) == 0,
            "polling off (max 0) but a window grew"
        );
        Ok(())
    }
);

/// The largest window and `cpu`'s window set for the test, and back as
/// they were when it ends (however).
struct Window {
    cpu: usize,
    max: u64,
    window: u64,
}

impl Window {
    fn set(cpu: usize, ns: u64) -> Self {
        let (window, _, _) = idle_poll::counts(cpu);
        let w = Window {
            cpu,
            max: idle_poll::max_ns(),
            window,
        };
        idle_poll::set_max_ns(ns);
        idle_poll::set_window(cpu, ns);
        w
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        idle_poll::set_max_ns(self.max);
        idle_poll::set_window(self.cpu, self.window);
    }
}

/// The running test task pinned to a CPU, and unpinned when it ends.
struct Pin;

impl Pin {
    fn to(cpu: usize) -> Self {
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

fn my_ticks() -> u64 {
    // Relaxed: a count this CPU keeps; we only compare readings.
    percpu::this().ticks.load(Ordering::Relaxed)
}

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

struct Rounds {
    wq: WaitQueue,
    go: AtomicU64,
    done: AtomicU64,
}

fn spawn_sleeper(cpu: usize, r: &Arc<Rounds>) -> Arc<Task> {
    let r = r.clone();
    sched::spawn("poll-sleeper", Some(cpu), move || {
        for n in 1..=ROUNDS {
            // Acquire/Release: pair with the test's `go` store and `done`
            // load; the wait queue orders the sleep against the wakeup.
            r.wq.wait_until(|| r.go.load(Ordering::Acquire) >= n);
            r.done.store(n, Ordering::Release);
        }
    })
}

/// Each round: wait until the sleeper's CPU polls (with a window far
/// longer than the test needs to see it), then wake it.
fn rounds(cpu: usize, sleeper: &Task, r: &Rounds) -> Result<(), String> {
    for n in 1..=ROUNDS {
        idle_poll::set_window(cpu, WINDOW_NS);
        // Polling, not just idle: a wakeup that comes as the CPU switches
        // to its idle task finds the task queued before any poll starts.
        wait_for("the sleeper's CPU to poll", || {
            r.done.load(Ordering::Acquire) == n - 1
                && sleeper.state() == State::Blocked
                && idle_poll::polling(cpu)
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
    fn idle_poll_sees_a_wakeup_without_halting() {
        let n = percpu::online_count();
        if n < 2 {
            return crate::ktest::skip("needs two CPUs");
        }
        // The test pinned to another CPU: a yielding test task that could
        // move would be stolen by the very CPU we watch go idle.
        let cpu = n - 1;
        let _pin = Pin::to(n - 2);
        let _w = Window::set(cpu, WINDOW_NS);
        let (_, hits0, halts_before) = idle_poll::counts(cpu);
        let r = Arc::new(Rounds {
            wq: WaitQueue::new(),
            go: AtomicU64::new(0),
            done: AtomicU64::new(0),
        });
        let sleeper = spawn_sleeper(cpu, &r);
        let res = rounds(cpu, &sleeper, &r);
        if res.is_err() {
            r.go.store(ROUNDS, Ordering::Release);
            r.wq.wake_all();
        }
        sched::join(&sleeper);
        res?;
        let (_, hits, halts0) = idle_poll::counts(cpu);
        // A callback task may take the CPU between our look and the
        // wakeup, or the host may not run the vCPU for the whole window:
        // not every round, most by far.
        kassert!(
            2 * (hits - hits0) >= ROUNDS,
            "{ROUNDS} wakeups onto an idle CPU polling for {} ms: {} seen while polling ({} halts meanwhile)",
            WINDOW_NS / 1_000_000,
            hits - hits0,
            halts0 - halts_before
        );
        // Nobody wakes it now (but for what runs there each tick or so):
        // with a window shorter than a tick, its polls run out and it
        // halts.
        idle_poll::set_max_ns(SHORT_WINDOW_NS);
        idle_poll::set_window(cpu, SHORT_WINDOW_NS);
        // Sleeping, not yielding: a task that yields stays queued, and
        // an idle CPU that sees it there steals it rather than halt.
        for _ in 0..SLEEPS {
            if idle_poll::counts(cpu).2 > halts0 + 1 {
                return Ok(());
            }
            sched::sleep_ns(SHORT_WINDOW_NS);
        }
        Err(alloc::format!(
            "cpu{cpu}, idle, did not halt in {SLEEPS} sleeps of this task (polling with a {} ms window)",
            SHORT_WINDOW_NS / 1_000_000
        ))
    }
);
