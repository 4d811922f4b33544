//! The kernel's side of `mm::phases`: per-CPU cycle sums of each phase,
//! switched on by `phases=on` on the command line, printed when the booted
//! program exits (`make bench-linux` and `bench/bench_linux.py --phases`
//! collect the lines).
//!
//! Off (the default) a phase costs one Relaxed load and a branch. On, two
//! `rdtsc` and two additions to this CPU's own counters.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mm::phases::{PHASE_NAMES, PHASES, Phase};

use crate::arch::cpu;
use crate::arch::percpu::{self, MAX_CPUS};

/// Whether phases are timed. Relaxed: a setting, read on its own.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// One CPU's sums: (calls, cycles) per phase, on their own cache lines.
#[repr(align(64))]
struct PerCpu([[AtomicU64; 2]; PHASES]);

static SUMS: [PerCpu; MAX_CPUS] =
    [const { PerCpu([const { [AtomicU64::new(0), AtomicU64::new(0)] }; PHASES]) }; MAX_CPUS];

/// Switch timing on or off (the command line's `phases=on`).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// A phase starts: the TSC, or 0 when timing is off.
#[inline(always)]
pub fn start() -> u64 {
    if ENABLED.load(Ordering::Relaxed) {
        cpu::rdtsc().max(1)
    } else {
        0
    }
}

/// A phase that started at `start` (not 0) ends now.
#[inline]
pub fn end(phase: Phase, start: u64) {
    let cycles = cpu::rdtsc().saturating_sub(start);
    // The CPU we end on (the task may have moved): any CPU's row will do, the
    // report sums them. Relaxed: statistics.
    let row = &SUMS[percpu::cpu_id() % MAX_CPUS].0[phase as usize];
    row[0].fetch_add(1, Ordering::Relaxed);
    row[1].fetch_add(cycles, Ordering::Relaxed);
}

/// Print every phase that ran: calls, nanoseconds per call, total
/// milliseconds. Nothing when timing is off.
pub fn report() {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let per_us = crate::time::tsc_per_us().max(1);
    for (i, name) in PHASE_NAMES.iter().enumerate() {
        let (mut calls, mut cycles) = (0u64, 0u64);
        for c in &SUMS {
            calls += c.0[i][0].load(Ordering::Relaxed);
            cycles += c.0[i][1].load(Ordering::Relaxed);
        }
        if calls == 0 {
            continue;
        }
        let ns = cycles as u128 * 1000 / per_us as u128;
        crate::println_raw!(
            "phase {name} calls={calls} ns_per_call={} total_ms={}",
            ns / calls as u128,
            ns / 1_000_000
        );
    }
    crate::memory::heap::report();
}
