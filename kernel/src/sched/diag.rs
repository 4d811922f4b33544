//! Lock-safe snapshots of scheduler state for hang reports (the RCU stall
//! warning). They run in the timer interrupt, possibly while the code they
//! describe holds a run-queue or sleeper lock, so they only load atomics
//! and *try* locks: a busy lock is reported as such instead of waited for.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::Ordering;

use super::{RQ, Task};
use crate::arch::percpu;

/// Where `t` is: its state, CPUs, switches, sleep deadline, and which run
/// queues and sleeper lists hold it.
pub fn describe_task(t: &Task) -> String {
    let now = crate::time::uptime_ns();
    let wake_at = t.wake_at.load(Ordering::Relaxed);
    let mut s = format!(
        "task '{}' id {}: {:?}, cpu {}, on_cpu {}, switches {}, ran_on {:#x}, wake_at {} ns ({}), now {} ns;",
        t.name,
        t.id,
        t.state(),
        t.cpu.load(Ordering::Relaxed),
        t.on_cpu.load(Ordering::Relaxed),
        t.switches.load(Ordering::Relaxed),
        t.ran_on.load(Ordering::Relaxed),
        wake_at,
        if wake_at <= now { "past" } else { "future" },
        now,
    );
    s.push_str(" queued on:");
    s.push_str(&where_listed(|c| {
        let q = RQ[c].queue.try_lock_irqsave()?;
        Some(q.iter().filter(|x| core::ptr::eq(&***x, t)).count())
    }));
    s.push_str("; sleeping on:");
    s.push_str(&where_listed(|c| {
        let q = RQ[c].sleepers.try_lock_irqsave()?;
        Some(q.iter().filter(|x| core::ptr::eq(&***x, t)).count())
    }));
    s
}

/// " cpuN" for every list that holds `t` (" cpuNxK" if K times), " cpuN?"
/// for every list whose lock was busy.
fn where_listed(count_on: impl Fn(usize) -> Option<usize>) -> String {
    let mut s = String::new();
    for c in percpu::online_cpus().map(|c| c.cpu_id as usize) {
        match count_on(c) {
            None => s.push_str(&format!(" cpu{c}?")),
            Some(0) => {}
            Some(1) => s.push_str(&format!(" cpu{c}")),
            Some(k) => s.push_str(&format!(" cpu{c}x{k}")),
        }
    }
    if s.is_empty() {
        s.push_str(" none");
    }
    s
}

/// One line per online CPU: what it runs, its queue and sleeper counts
/// ("?" if the lock was busy), need_resched, switches and ticks.
pub fn describe_cpus() -> String {
    let mut s = String::new();
    for pc in percpu::online_cpus() {
        let c = pc.cpu_id as usize;
        let rq = &RQ[c];
        let queued = rq.queue.try_lock_irqsave().map(|q| q.len());
        let sleepers = rq.sleepers.try_lock_irqsave().map(|q| q.len());
        s.push_str(&format!(
            "\n  cpu{c}: running '{}', queued {}, sleepers {}, need_resched {}, switches {}, ticks {}",
            running_on(c),
            count_or_busy(queued),
            count_or_busy(sleepers),
            pc.need_resched.load(Ordering::Relaxed),
            rq.nr_switches.load(Ordering::Relaxed),
            pc.ticks.load(Ordering::Relaxed),
        ));
    }
    s
}

fn count_or_busy(n: Option<usize>) -> String {
    n.map_or_else(|| String::from("?"), |n| format!("{n}"))
}

/// The running task's name; an AP's idle task has no label until its first
/// switch.
fn running_on(c: usize) -> String {
    let name = super::current_name_on(c);
    if name.is_empty() {
        format!("idle{c}")
    } else {
        name
    }
}
