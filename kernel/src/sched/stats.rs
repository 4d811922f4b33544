//! Scheduler statistics for benchmarks: per CPU, how often it switched and
//! why, how long it halted, which interrupts it took, and how long a woken
//! task waited in a run queue before it ran. Switched on with the phase
//! timers (`phases=on`, or alone with `phases=sched`), printed when the booted program exits as
//! `sched cpuN name=value ...` lines.
//!
//! Off (the default) each hook costs one Relaxed load and a branch. On, a
//! few additions to this CPU's own cache lines. Statistics, not
//! synchronisation: Relaxed everywhere.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::percpu::{self, MAX_CPUS};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// What is counted. `*_ns` entries are sums of nanoseconds.
#[derive(Clone, Copy)]
pub enum Stat {
    /// Switches to another task because the running one blocked or yielded.
    SwitchVoluntary,
    /// Switches because the running one was preempted (tick or wakeup).
    SwitchPreempt,
    /// Time the idle task had the CPU.
    IdleNs,
    /// Woken tasks that later ran here, and their total and worst wait
    /// between the wakeup and running.
    Wakeups,
    WakeWaitNs,
    WakeWaitMaxNs,
    /// Woken tasks that waited more than a millisecond, in all and by
    /// where they were queued (see `Placed`).
    WakeWaitOver1ms,
    SlowWakeIdle,
    SlowWakePreempting,
    SlowWakeBehind,
    /// Wakeups queued here behind a running task that kept the CPU.
    WakeQueuedBehind,
    /// Interrupts taken: timer ticks, wakeup IPIs, function-call IPIs.
    Ticks,
    WakeIpis,
    CallIpis,
    /// Tasks taken from another CPU's queue.
    Steals,
    /// Time run by kernel tasks (not idle) and by user threads, counted at
    /// each switch away from them.
    KernelTaskNs,
    UserTaskNs,
}

const STATS: usize = 17;
const NAMES: [&str; STATS] = [
    "switch_voluntary",
    "switch_preempt",
    "idle_ms",
    "wakeups",
    "wake_wait_us_avg",
    "wake_wait_max_us",
    "wake_wait_over_1ms",
    "slow_on_idle",
    "slow_preempting",
    "slow_behind",
    "wake_queued_behind",
    "ticks",
    "wake_ipis",
    "call_ipis",
    "steals",
    "kernel_task_ms",
    "user_task_ms",
];

#[repr(align(64))]
struct PerCpu([AtomicU64; STATS]);

static SUMS: [PerCpu; MAX_CPUS] =
    [const { PerCpu([const { AtomicU64::new(0) }; STATS]) }; MAX_CPUS];

pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

#[inline(always)]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn cell(stat: Stat) -> &'static AtomicU64 {
    &SUMS[percpu::cpu_id() % MAX_CPUS].0[stat as usize]
}

/// Add `n` to this CPU's `stat`.
#[inline]
pub fn add(stat: Stat, n: u64) {
    if enabled() {
        cell(stat).fetch_add(n, Ordering::Relaxed);
    }
}

/// Where a wakeup queued a task.
#[derive(Clone, Copy)]
pub enum Placed {
    /// On an idle CPU (or one that became busy meanwhile).
    Idle = 1,
    /// With a request that the running task give way.
    Preempting = 2,
    /// Behind a running task that keeps its CPU.
    Behind = 3,
}

/// The wakeup time `now` with `how` in its two low bits.
pub fn woken_stamp(now: u64, how: Placed) -> u64 {
    (now & !3) | how as u64
}

/// A woken task stamped `stamp` (see `woken_stamp`) runs now on this CPU.
pub fn woken_ran(stamp: u64) {
    if !enabled() || stamp == 0 {
        return;
    }
    let wait = crate::time::uptime_ns().saturating_sub(stamp & !3);
    add(Stat::Wakeups, 1);
    add(Stat::WakeWaitNs, wait);
    cell(Stat::WakeWaitMaxNs).fetch_max(wait, Ordering::Relaxed);
    if wait > 1_000_000 {
        add(Stat::WakeWaitOver1ms, 1);
        let slow = match stamp & 3 {
            1 => Stat::SlowWakeIdle,
            2 => Stat::SlowWakePreempting,
            _ => Stat::SlowWakeBehind,
        };
        add(slow, 1);
    }
}

/// Print one line per CPU that counted anything. Nothing when off.
pub fn report() {
    if !enabled() {
        return;
    }
    for (c, row) in SUMS.iter().enumerate() {
        let v: [u64; STATS] = core::array::from_fn(|i| row.0[i].load(Ordering::Relaxed));
        if v.iter().all(|&x| x == 0) {
            continue;
        }
        let shown = |i: usize| match i {
            i if i == Stat::IdleNs as usize
                || i == Stat::KernelTaskNs as usize
                || i == Stat::UserTaskNs as usize =>
            {
                v[i] / 1_000_000
            }
            i if i == Stat::WakeWaitNs as usize => v[i] / 1000 / v[Stat::Wakeups as usize].max(1),
            i if i == Stat::WakeWaitMaxNs as usize => v[i] / 1000,
            i => v[i],
        };
        let mut line = alloc::format!("sched cpu{c}");
        for (i, name) in NAMES.iter().enumerate() {
            let _ = write!(line, " {name}={}", shown(i));
        }
        crate::println_raw!("{line}");
    }
}

/// `t` goes back in a run queue while still runnable (`preempted`: not by
/// its own yield).
pub fn note_requeued(t: &super::Task, preempted: bool) {
    if !enabled() {
        return;
    }
    t.queued_ns
        .store(crate::time::uptime_ns().max(1), Ordering::Relaxed);
    if preempted {
        t.preempted.fetch_add(1, Ordering::Relaxed);
    }
}

/// A CPU picked `t`: add its time in the queue.
pub fn note_claimed(t: &super::Task) {
    let since = t.queued_ns.swap(0, Ordering::Relaxed);
    if since != 0 {
        let wait = crate::time::uptime_ns().saturating_sub(since);
        t.wait_sum_ns.fetch_add(wait, Ordering::Relaxed);
    }
}

/// A user thread exits: one line with its run and queue times.
pub fn task_exit(t: &super::Task) {
    if !enabled() || t.user.is_none() {
        return;
    }
    crate::println_raw!(
        "sched task {} id={} run_ms={} queued_ms={} switches={} preempted={}",
        t.name,
        t.id,
        t.run_sum_ns.load(Ordering::Relaxed) / 1_000_000,
        t.wait_sum_ns.load(Ordering::Relaxed) / 1_000_000,
        t.switches.load(Ordering::Relaxed),
        t.preempted.load(Ordering::Relaxed),
    );
}
