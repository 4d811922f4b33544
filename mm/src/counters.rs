//! Per-CPU fault counters: how each user fault was resolved.
//!
//! **The rule: every fault is counted exactly once as `success`, `fallback`
//! or `segv`** (its terminal event), so `success + fallback + segv` is the
//! number of faults. `abort`, `retry` and `miss` count events on the way and
//! may occur any number of times per fault (or not at all).
//!
//! Terminal events:
//! - `success`: the page was mapped (or found mapped) under the per-VMA read
//!   lock alone.
//! - `fallback`: the page was mapped (or found mapped) under `mmap_lock`
//!   (after an abort or retry, for every fault while the per-VMA path is
//!   switched off, and for kernel-mode faults on user addresses).
//! - `segv`: the fault was not resolved: the access is not allowed (no VMA,
//!   or against the VMA's rights), or there was no memory for the page.
//!
//! Events on the way:
//! - `abort`: the per-VMA path gave up (no VMA, write-locked, writer pending,
//!   reused memory, wrong range) and the fault fell back to `mmap_lock`.
//! - `retry`: the VMA was locked but the handler needed `mmap_lock`.
//! - `miss`: `vma_start_read` found the VMA detached; the walk restarted.
//!
//! Who counts the terminal event: `fault::handle_user_fault` counts
//! `success`, `fallback`, and `segv` for out-of-memory; a refused access it
//! returns uncounted, because only its caller knows when to give up (the
//! kernel looks again when the mapping changed under the fault, and retries):
//! the caller counts it with `Mm::count_bad_fault` once, when it does.
//! `fault::handle_fault_mmap_locked` (kernel-mode faults) counts everything.
//!
//! Each CPU increments its own cache line, so counting costs no shared write.
//! The counters are statistics, not synchronisation: Relaxed everywhere, and
//! `core` atomics even under loom (the model need not explore them).

use core::sync::atomic::{AtomicU64, Ordering};

/// The kinds of events counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Success,
    Abort,
    Retry,
    Miss,
    Fallback,
    Segv,
}

const EVENTS: usize = 6;
const MAX_CPUS: usize = 64;

#[repr(align(64))]
struct PerCpu([AtomicU64; EVENTS]);

/// A snapshot of the summed counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub success: u64,
    pub abort: u64,
    pub retry: u64,
    pub miss: u64,
    pub fallback: u64,
    pub segv: u64,
}

impl FaultStats {
    /// Every fault counted: the sum of the terminal events.
    pub fn faults(&self) -> u64 {
        self.success + self.fallback + self.segv
    }
}

/// Counters of one address space, one cache line per CPU.
pub struct FaultCounters {
    cpus: [PerCpu; MAX_CPUS],
}

impl FaultCounters {
    pub fn new() -> Self {
        FaultCounters {
            cpus: core::array::from_fn(|_| PerCpu(core::array::from_fn(|_| AtomicU64::new(0)))),
        }
    }

    /// Count `event` on `cpu` (a stale CPU id only costs a shared cache line).
    pub fn count(&self, cpu: usize, event: Event) {
        self.cpus[cpu % MAX_CPUS].0[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The sums over all CPUs (exact once the counting threads are done).
    pub fn snapshot(&self) -> FaultStats {
        let sum = |e: Event| {
            self.cpus
                .iter()
                .map(|c| c.0[e as usize].load(Ordering::Relaxed))
                .sum()
        };
        FaultStats {
            success: sum(Event::Success),
            abort: sum(Event::Abort),
            retry: sum(Event::Retry),
            miss: sum(Event::Miss),
            fallback: sum(Event::Fallback),
            segv: sum(Event::Segv),
        }
    }
}

impl Default for FaultCounters {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn sums_over_cpus() {
        let c = FaultCounters::new();
        c.count(0, Event::Success);
        c.count(63, Event::Success);
        c.count(64, Event::Miss); // wraps onto CPU 0
        c.count(5, Event::Fallback);
        c.count(7, Event::Segv);
        let s = c.snapshot();
        assert_eq!(
            s,
            FaultStats {
                success: 2,
                abort: 0,
                retry: 0,
                miss: 1,
                fallback: 1,
                segv: 1,
            }
        );
    }
}
