//! Per-CPU fault-counter snapshots and their differences.
//!
//! The kernel's counters run since boot; a program measures by reading them
//! before and after its work. The buffer is written by this program before it
//! is handed to the kernel, so the copy-out never faults on a fresh page (a
//! fault the measurement would count).

use abi::FaultCounters;
use alloc::vec;
use alloc::vec::Vec;

/// One counter set per CPU.
pub struct Snapshot(pub Vec<FaultCounters>);

impl Snapshot {
    /// A buffer for every CPU, already touched by this thread.
    pub fn new() -> Snapshot {
        Snapshot(vec![FaultCounters::default(); rt::cpu_count()])
    }

    /// Reads the counters into this buffer (no allocation, no fault).
    pub fn read(&mut self) {
        let n = rt::fault_counters(&mut self.0).expect("FAULT_COUNTERS");
        self.0.truncate(n);
    }

    /// Per-CPU `self - earlier`.
    pub fn delta(&self, earlier: &Snapshot) -> Vec<FaultCounters> {
        self.0
            .iter()
            .zip(&earlier.0)
            .map(|(a, b)| a.delta(b))
            .collect()
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::new()
    }
}

/// The sum over CPUs.
pub fn total(per_cpu: &[FaultCounters]) -> FaultCounters {
    per_cpu
        .iter()
        .fold(FaultCounters::default(), |acc, c| acc.sum(c))
}
