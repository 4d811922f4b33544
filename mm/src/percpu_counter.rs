//! A counter split per CPU (Linux's `percpu_counter`, without its batching):
//! each CPU adds to its own cache line, and a reader sums the lines.
//!
//! For a count every page fault changes (an address space's resident
//! pages): one shared atomic would be written by every faulting CPU, and
//! its cache line would move between them on every fault. Here a CPU's add
//! touches only its own line, so faults on different CPUs share nothing;
//! the price is a read that visits every line.
//!
//! **Exactness.** Every add goes to some slot with an atomic read-modify-
//! write (a stale CPU id only means a shared line, never a lost update), so
//! once the adders are done the sum is exact. A sum taken while others add
//! counts every add that happened before it began (each slot's load sees
//! at least those) and some of those running meanwhile; it can miss only
//! adds concurrent with it. A slot may go negative (pages counted in on one
//! CPU and out on another); only the sum means anything.
//!
//! Statistics and a soft limit, not synchronisation: Relaxed, and `core`
//! atomics even under loom (as `counters.rs`).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI64, Ordering};

/// One CPU's share, alone in its cache line.
#[repr(align(64))]
struct Slot(AtomicI64);

/// A count kept as one signed share per CPU.
pub struct PerCpuCounter {
    /// One share per CPU the machine has (a cache line each: 64 bytes per
    /// CPU, not per possible CPU, since every address space has one).
    cpus: Box<[Slot]>,
}

impl PerCpuCounter {
    /// A counter at 0 with a share for each of `cpus` CPUs (at least one).
    /// A CPU id beyond them shares a slot (`cpu % cpus`): still exact.
    pub fn new(cpus: usize) -> Self {
        let cpus: Vec<Slot> = (0..cpus.max(1)).map(|_| Slot(AtomicI64::new(0))).collect();
        PerCpuCounter {
            cpus: cpus.into_boxed_slice(),
        }
    }

    /// Add `delta` (may be negative) to `cpu`'s share.
    pub fn add(&self, cpu: usize, delta: i64) {
        self.cpus[cpu % self.cpus.len()]
            .0
            .fetch_add(delta, Ordering::Relaxed);
    }

    /// The sum of the shares (0 if it is negative, which only a sum racing
    /// with adds can see: see the module docs).
    pub fn sum(&self) -> u64 {
        let s: i64 = self.cpus.iter().map(|c| c.0.load(Ordering::Relaxed)).sum();
        s.max(0) as u64
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn sums_shares_that_cross_cpus() {
        let c = PerCpuCounter::new(64);
        c.add(0, 5);
        c.add(63, 2);
        c.add(1, -4); // pages counted in on CPUs 0 and 63, out on CPU 1
        c.add(64, 1); // wraps onto CPU 0
        assert_eq!(c.sum(), 4);
        c.add(1, -4);
        assert_eq!(c.sum(), 0);
        let small = PerCpuCounter::new(2);
        small.add(5, 3); // beyond the shares: CPU 1's
        small.add(0, -1);
        assert_eq!(small.sum(), 2);
    }

    /// A task can read its CPU id, move to another CPU, and add to the old
    /// id's share while that CPU's own tasks add to it too: several CPUs
    /// then add to one share at once, and no add may be lost (a plain load
    /// and store would lose some).
    #[test]
    fn adds_to_one_share_from_many_threads_all_count() {
        const THREADS: usize = 4;
        const ADDS: usize = 200_000;
        let c = PerCpuCounter::new(2);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let c = &c;
                // Even threads use the stale id 0, odd ones 2, which wraps
                // onto share 0 as well.
                s.spawn(move || {
                    for _ in 0..ADDS {
                        c.add(2 * (t % 2), 1);
                    }
                });
            }
        });
        assert_eq!(c.sum(), (THREADS * ADDS) as u64);
    }
}
