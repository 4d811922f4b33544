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
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

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
    /// A user thread preempted for a kernel task, or for another user thread.
    UserPreemptedForKernel,
    UserPreemptedForUser,
    /// User threads stolen from another CPU's queue, and of those, the ones
    /// queued there less than half a millisecond before.
    StealsUser,
    StealsUserRecent,
    /// User threads stolen that had been preempted, not woken, since they
    /// last ran.
    StealsUserPreempted,
}

const STATS: usize = 22;
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
    "user_preempted_for_kernel",
    "user_preempted_for_user",
    "steals_user",
    "steals_user_recent",
    "steals_user_preempted",
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
pub fn woken_ran(t: &super::Task, stamp: u64) {
    if !enabled() || stamp == 0 {
        return;
    }
    let wait = crate::time::uptime_ns().saturating_sub(stamp & !3);
    let how = (stamp & 3) as usize;
    if how >= 1 {
        t.waits.woken[how - 1].fetch_add(1, Ordering::Relaxed);
        t.waits.woken_wait_ns[how - 1].fetch_add(wait, Ordering::Relaxed);
    }
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
    super::idle_poll::report();
}

/// `t` goes back in a run queue while still runnable (`preempted`: not by
/// its own yield).
pub fn note_requeued(t: &super::Task, preempted: bool) {
    if !enabled() {
        return;
    }
    note_queued(t, t.cpu.load(Ordering::Relaxed));
    t.requeued_ns
        .store(crate::time::uptime_ns().max(1), Ordering::Relaxed);
    if preempted {
        t.preempted.fetch_add(1, Ordering::Relaxed);
    }
}

/// CPU `me` picked `t`: add its time in the queue, split by what the CPUs
/// did meanwhile, and count a change of CPU.
pub fn note_claimed(t: &super::Task, me: usize) {
    let now = crate::time::uptime_ns();
    let w = &t.waits;
    let since = t.queued_ns.swap(0, Ordering::Relaxed);
    let queued_on = w.cpu.swap(usize::MAX, Ordering::Relaxed);
    if since != 0 {
        t.wait_sum_ns
            .fetch_add(now.saturating_sub(since), Ordering::Relaxed);
        if queued_on < MAX_CPUS {
            for ((sum, snap), v) in w.sum.iter().zip(&w.snap).zip(wait_clocks(queued_on, now)) {
                let d = v.saturating_sub(snap.load(Ordering::Relaxed));
                sum.fetch_add(d, Ordering::Relaxed);
            }
        }
    }
    let last = w.last_ran.swap(me, Ordering::Relaxed);
    if last != usize::MAX && last != me {
        if queued_on != me && queued_on < MAX_CPUS {
            w.stolen.fetch_add(1, Ordering::Relaxed);
        } else {
            w.moved_by_wakeup.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a CPU runs, for splitting a task's time in a queue (`TaskWaits`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Kernel = 0,
    User = 1,
    Idle = 2,
}

/// Per CPU: nanoseconds its tasks of each class ran, up to `since`, and the
/// class running since then. Written by the CPU itself at each switch.
#[repr(align(64))]
struct ClassClock {
    ns: [AtomicU64; 3],
    cur: AtomicU8,
    since: AtomicU64,
}

static CLOCKS: [ClassClock; MAX_CPUS] = [const {
    ClassClock {
        ns: [const { AtomicU64::new(0) }; 3],
        cur: AtomicU8::new(Class::Idle as u8),
        since: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// CPU `cpu` switches to a task of class `next` at `now`.
pub fn class_switch(cpu: usize, next: Class, now: u64) {
    if !enabled() {
        return;
    }
    let c = &CLOCKS[cpu];
    let since = c.since.swap(now, Ordering::Relaxed);
    let cur = c.cur.swap(next as u8, Ordering::Relaxed) as usize;
    c.ns[cur % 3].fetch_add(now.saturating_sub(since), Ordering::Relaxed);
}

/// CPU `cpu`'s run time by class up to `now` (racy against its switches:
/// statistics).
fn class_clock(cpu: usize, now: u64) -> [u64; 3] {
    let c = &CLOCKS[cpu];
    let mut v: [u64; 3] = core::array::from_fn(|i| c.ns[i].load(Ordering::Relaxed));
    let cur = c.cur.load(Ordering::Relaxed) as usize % 3;
    v[cur] += now.saturating_sub(c.since.load(Ordering::Relaxed));
    v
}

/// The four clocks a queued task's wait is split by: on its queue's CPU,
/// kernel tasks, user threads and idle; and idle on every other CPU.
fn wait_clocks(cpu: usize, now: u64) -> [u64; 4] {
    let own = class_clock(cpu, now);
    let others = percpu::online_cpus()
        .map(|c| c.cpu_id as usize)
        .filter(|&c| c != cpu)
        .map(|c| class_clock(c, now)[Class::Idle as usize])
        .sum();
    [own[0], own[1], own[2], others]
}

/// Per task: where its time in run queues went (see `wait_clocks`), and
/// how often it changed CPU.
pub struct TaskWaits {
    /// The CPU whose queue holds the task (`usize::MAX`: not queued), and
    /// the `wait_clocks` reading taken when it was queued there.
    cpu: AtomicUsize,
    snap: [AtomicU64; 4],
    /// The differences of those clocks over all its waits.
    sum: [AtomicU64; 4],
    /// The CPU it last ran on (`usize::MAX`: none yet).
    last_ran: AtomicUsize,
    stolen: AtomicU64,
    moved_by_wakeup: AtomicU64,
    /// Wakeups by where they were queued (`Placed`), and their waits.
    woken: [AtomicU64; 3],
    woken_wait_ns: [AtomicU64; 3],
}

impl TaskWaits {
    pub const fn new() -> Self {
        TaskWaits {
            cpu: AtomicUsize::new(usize::MAX),
            snap: [const { AtomicU64::new(0) }; 4],
            sum: [const { AtomicU64::new(0) }; 4],
            last_ran: AtomicUsize::new(usize::MAX),
            stolen: AtomicU64::new(0),
            moved_by_wakeup: AtomicU64::new(0),
            woken: [const { AtomicU64::new(0) }; 3],
            woken_wait_ns: [const { AtomicU64::new(0) }; 3],
        }
    }
}

/// `t`'s wakeups so far by where they were queued: on an idle CPU, to
/// preempt a running task, behind one (tests).
pub fn woken_counts(t: &super::Task) -> [u64; 3] {
    core::array::from_fn(|i| t.waits.woken[i].load(Ordering::Relaxed))
}

/// `t`'s time in run queues so far, split by what its CPU ran meanwhile
/// (kernel tasks, user threads, idle) and the other CPUs' idle time (tests).
pub fn wait_split_ns(t: &super::Task) -> [u64; 4] {
    core::array::from_fn(|i| t.waits.sum[i].load(Ordering::Relaxed))
}

/// `t` goes on `cpu`'s queue now.
pub fn note_queued(t: &super::Task, cpu: usize) {
    if !enabled() {
        return;
    }
    let now = crate::time::uptime_ns();
    t.queued_ns.store(now.max(1), Ordering::Relaxed);
    let w = &t.waits;
    w.cpu.store(cpu, Ordering::Relaxed);
    for (s, v) in w.snap.iter().zip(wait_clocks(cpu, now)) {
        s.store(v, Ordering::Relaxed);
    }
}

/// A user thread exits: one line with its run and queue times.
pub fn task_exit(t: &super::Task) {
    if !enabled() || t.user.is_none() {
        return;
    }
    let w = &t.waits;
    let ms = |i: usize| w.sum[i].load(Ordering::Relaxed) / 1_000_000;
    let avg_us = |i: usize| {
        w.woken_wait_ns[i].load(Ordering::Relaxed)
            / 1000
            / w.woken[i].load(Ordering::Relaxed).max(1)
    };
    crate::println_raw!(
        "sched task {} id={} run_ms={} queued_ms={} switches={} preempted={} \
         queued_behind_kernel_ms={} queued_behind_user_ms={} queued_cpu_idle_ms={} \
         queued_other_cpus_idle_ms={} stolen={} moved_by_wakeup={} \
         woken_on_idle={} woken_preempting={} woken_behind={} \
         woken_wait_us_idle={} woken_wait_us_preempting={} woken_wait_us_behind={}",
        t.name,
        t.id,
        t.run_sum_ns.load(Ordering::Relaxed) / 1_000_000,
        t.wait_sum_ns.load(Ordering::Relaxed) / 1_000_000,
        t.switches.load(Ordering::Relaxed),
        t.preempted.load(Ordering::Relaxed),
        ms(0),
        ms(1),
        ms(2),
        ms(3),
        w.stolen.load(Ordering::Relaxed),
        w.moved_by_wakeup.load(Ordering::Relaxed),
        w.woken[0].load(Ordering::Relaxed),
        w.woken[1].load(Ordering::Relaxed),
        w.woken[2].load(Ordering::Relaxed),
        avg_us(0),
        avg_us(1),
        avg_us(2),
    );
}
