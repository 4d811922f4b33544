//! Polling before halting: an idle CPU waits a little, running, for a task
//! to be woken onto it before it halts (Linux's cpuidle `haltpoll`
//! governor for virtual machines, simplified).
//!
//! Why: in a virtual machine a halted vCPU is a host thread asleep, and a
//! wakeup IPI to it costs a host wakeup, from 50 us to several ms under
//! QEMU's TCG on a loaded host. Threads that hand a lock back and forth
//! pay that on every hand-off: `faultbench -m writer` has a fault worker
//! whose `mmap`, first fault and `munmap` each queue behind the writer's
//! `mmap_lock`; the worker sleeps, its CPU halts, and the writer's release
//! then has to wake a halted vCPU, while the writer itself blocks behind
//! the worker and its CPU halts in turn. A CPU that polls sees the woken
//! task at once.
//!
//! Polling burns host time, so the window adapts per CPU, as `haltpoll`'s
//! does: it starts at 0; an idle period that outlasted the window but
//! ended within `max` (a wakeup the window just missed) grows it, to
//! `GROW_START_NS` and then doubling, up to `max`; a longer one (an idle
//! CPU woken only by its tick) halves it, to 0 below `GROW_START_NS`. A
//! poll that saw its wakeup leaves the window as it is. So a CPU that idles
//! for long stretches (most CPUs of a test run with more vCPUs than host
//! cores, where QEMU runs all vCPUs in one thread and a polling vCPU would
//! take the others' turn) soon halts at once again.
//!
//! `max` is `idle_poll_us=` on the command line; 0 turns polling off.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::cpu;
use crate::arch::percpu::{self, MAX_CPUS};

/// The largest window (`haltpoll`'s `guest_halt_poll_ns`, whose default is
/// 200 us). Under TCG, `faultbench -m writer` at T=1 measured best with
/// 1 ms, of 0.2, 0.5, 1 and 2 ms (docs/benchmarks.md, round seven).
const DEFAULT_MAX_NS: u64 = 1_000_000;
/// The window a growing one starts from (`guest_halt_poll_grow_start`).
pub const GROW_START_NS: u64 = 50_000;

/// Set at boot, read by every idle CPU (Relaxed: a setting, not a handle
/// on memory).
static MAX_NS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_NS);

/// The largest window now.
pub fn max_ns() -> u64 {
    MAX_NS.load(Ordering::Relaxed)
}

/// Tests: set `cpu`'s window (its idle loop adapts it from there).
pub fn set_window(cpu: usize, ns: u64) {
    CPUS[cpu].window_ns.store(ns, Ordering::Relaxed);
}

/// One CPU's window and counts. Written by that CPU in its idle loop (and
/// the window by tests; a stale one only polls too long or too short once).
/// Relaxed: read elsewhere only for the report and tests.
#[repr(align(64))]
struct PollState {
    window_ns: AtomicU64,
    /// Polls that saw a wakeup.
    hits: AtomicU64,
    /// Halts (after a poll that ran out, or none).
    halts: AtomicU64,
    /// Polling now (Linux's `TIF_POLLING_NRFLAG`), for tests.
    polling: AtomicBool,
}

static CPUS: [PollState; MAX_CPUS] = [const {
    PollState {
        window_ns: AtomicU64::new(0),
        hits: AtomicU64::new(0),
        halts: AtomicU64::new(0),
        polling: AtomicBool::new(false),
    }
}; MAX_CPUS];

/// Set the largest window (`idle_poll_us=`; 0: never poll).
pub fn set_max_ns(ns: u64) {
    MAX_NS.store(ns, Ordering::Relaxed);
}

/// The window after an idle period of `idle_ns` that the window `window`
/// did not cover (the CPU halted), with `max` the largest window.
pub fn next_window(window: u64, idle_ns: u64, max: u64) -> u64 {
    if idle_ns <= max {
        window.saturating_mul(2).max(GROW_START_NS).min(max)
    } else if window / 2 < GROW_START_NS {
        0
    } else {
        window / 2
    }
}

/// Called by the idle loop with interrupts off and nothing to run (its own
/// queue empty, nothing to steal). Polls this CPU's window for a wakeup,
/// interrupts on. A wakeup sets `need_resched` (`enqueue` does for an idle
/// CPU) and then sends its IPI, whose return may switch to the woken task
/// directly: so a wakeup shows as `need_resched`, or as `switches()` (the
/// CPU's switch count) moving on while we were away. Returns true,
/// interrupts on, if one came; false, interrupts off, if the window ran
/// out. The caller then looks at the queues again (a task to steal may
/// have appeared meanwhile, which a halted CPU would have found at its
/// next tick), and if there is still nothing halts (`sti; hlt`, so a
/// wakeup after our last look still ends the halt) and reports the whole
/// idle period to `halt_ended`.
pub fn poll(switches: impl Fn() -> u64) -> bool {
    let s = &CPUS[percpu::cpu_id()];
    let window = s.window_ns.load(Ordering::Relaxed);
    if window == 0 {
        return false;
    }
    let deadline = crate::time::uptime_ns().saturating_add(window);
    let switches0 = switches();
    let woken = || percpu::need_resched() || switches() != switches0;
    s.polling.store(true, Ordering::Relaxed);
    cpu::enable_interrupts();
    while crate::time::uptime_ns() < deadline {
        if woken() {
            s.polling.store(false, Ordering::Relaxed);
            s.hits.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        cpu::pause();
    }
    cpu::disable_interrupts();
    s.polling.store(false, Ordering::Relaxed);
    if woken() {
        cpu::enable_interrupts();
        s.hits.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    false
}

/// The CPU halted after `poll` ran out, and woke after an idle period of
/// `idle_ns` (poll included): adapt its window.
pub fn halt_ended(idle_ns: u64) {
    let s = &CPUS[percpu::cpu_id()];
    s.halts.fetch_add(1, Ordering::Relaxed);
    let max = MAX_NS.load(Ordering::Relaxed);
    let w = next_window(s.window_ns.load(Ordering::Relaxed), idle_ns, max);
    s.window_ns.store(w, Ordering::Relaxed);
}

/// Whether `cpu` is polling now (a snapshot, for tests).
pub fn polling(cpu: usize) -> bool {
    CPUS[cpu].polling.load(Ordering::Relaxed)
}

/// `cpu`'s window, its polls that saw a wakeup, and its halts.
pub fn counts(cpu: usize) -> (u64, u64, u64) {
    let s = &CPUS[cpu];
    (
        s.window_ns.load(Ordering::Relaxed),
        s.hits.load(Ordering::Relaxed),
        s.halts.load(Ordering::Relaxed),
    )
}

/// One line per CPU for the `phases=sched` report.
pub fn report() {
    for c in percpu::online_cpus().map(|c| c.cpu_id as usize) {
        let (w, hits, halts) = counts(c);
        crate::println_raw!(
            "idle_poll cpu{c} window_us={} hits={hits} halts={halts}",
            w / 1000
        );
    }
}
