//! Idle polling (`sched/idle_poll.rs`): an idle CPU that polls sees a task
//! woken onto it without halting, and one that nobody wakes halts; the
//! window adapts as `haltpoll`'s does. Counted in polls and bounded by
//! timer ticks, never timed.

use super::sleeper_rounds::{Pin, ROUNDS, Sleeper};
use crate::arch::percpu;
use crate::sched;
use crate::sched::idle_poll::{self, GROW_START_NS};
use crate::{kassert, ktest};

/// A window the test's wakeups come well within, however slow the host
/// (the test task may wait a tick or two behind other tasks on its CPU,
/// and the host may not run its vCPU for a while).
const WINDOW_NS: u64 = 500_000_000;
/// A window well under a tick.
const SHORT_WINDOW_NS: u64 = 1_000_000;
/// Sleeps of the test task (a tick or so each) before it calls an idle
/// CPU that never halts stuck.
const SLEEPS: u32 = 500;

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

ktest!(
    fn idle_poll_sees_a_wakeup_without_halting() {
        let n = percpu::online_count();
        if n < 2 {
            return crate::ktest::skip("needs two CPUs");
        }
        let cpu = n - 1;
        let _pin = Pin::to(n - 2);
        let _w = Window::set(cpu, WINDOW_NS);
        let (_, hits0, halts_before) = idle_poll::counts(cpu);
        // Polling, not just idle: a wakeup that comes as the CPU switches
        // to its idle task finds the task queued before any poll starts.
        let sleeper = Sleeper::spawn("poll-sleeper", cpu);
        sleeper.run("the sleeper's CPU to poll", || idle_poll::polling(cpu))?;
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
