//! Machine-wide page-fault counters, per CPU: what `mm` reports through
//! `Platform::fault_event`, summed over every address space (the
//! `fault_counters` syscall and the tests read them).

use core::sync::atomic::{AtomicU64, Ordering};

use mm::counters::Event;

use crate::arch::percpu::{self, MAX_CPUS};

/// One CPU's counters, on a cache line of their own: every fault adds to
/// them, and two CPUs faulting at once must not bounce a shared line.
#[repr(align(64))]
struct PerCpu([AtomicU64; 6]);

/// Machine-wide fault counters per CPU, in the order of `abi::fault::FaultCounters`
/// (success, abort, retry, miss, fallback, segv).
static FAULTS: [PerCpu; MAX_CPUS] = [const { PerCpu([const { AtomicU64::new(0) }; 6]) }; MAX_CPUS];

/// Count the current thread's user page fault that `mm` refused as `segv`:
/// called once per fault, when the kernel gives up on it (delivers it to the
/// handler or ends the process). Only for page faults: other exceptions are
/// not faults in these counters.
pub fn count_segv() {
    let cpu = percpu::cpu_id();
    // The faulting thread has not begun exiting, as `with_mm` requires.
    crate::user::current_process().with_mm(|mm| mm.count_bad_fault(cpu));
}

pub fn fault_counters(cpu: usize) -> abi::fault::FaultCounters {
    let f = |i: usize| FAULTS[cpu].0[i].load(Ordering::Relaxed);
    abi::fault::FaultCounters {
        success: f(0),
        abort: f(1),
        retry: f(2),
        miss: f(3),
        fallback: f(4),
        segv: f(5),
    }
}

/// The sums over all CPUs.
pub fn fault_counters_total() -> abi::fault::FaultCounters {
    (0..MAX_CPUS).fold(abi::fault::FaultCounters::default(), |acc, c| {
        acc.sum(&fault_counters(c))
    })
}

/// Count `event` on `cpu` (the platform's `fault_event`).
pub(super) fn record(cpu: usize, event: Event) {
    let i = match event {
        Event::Success => 0,
        Event::Abort => 1,
        Event::Retry => 2,
        Event::Miss => 3,
        Event::Fallback => 4,
        Event::Segv => 5,
    };
    FAULTS[cpu % MAX_CPUS].0[i].fetch_add(1, Ordering::Relaxed);
}
