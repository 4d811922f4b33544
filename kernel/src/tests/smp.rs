//! SMP: cross-CPU calls and the per-CPU timer.
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::arch::percpu::{self, MAX_CPUS};
use crate::arch::smp;
use crate::{kassert, kassert_eq, ktest, time};

ktest!(
    fn ipi_call_function_all_cpus() {
        // Every CPU calls every CPU (itself included) ROUNDS times, all at once:
        // each (caller, target) pair must be counted exactly ROUNDS times, and
        // the simultaneous calls must not deadlock.
        const ROUNDS: usize = 20;
        let counts: [[AtomicUsize; MAX_CPUS]; MAX_CPUS] =
            [const { [const { AtomicUsize::new(0) }; MAX_CPUS] }; MAX_CPUS];
        crate::sched::run_on_cpus(smp::online_mask(), &|caller| {
            for _ in 0..ROUNDS {
                smp::call_on_all_cpus(&|| {
                    counts[caller][percpu::cpu_id()].fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        let n = percpu::online_count();
        for (caller, row) in counts.iter().enumerate() {
            for (target, c) in row.iter().enumerate() {
                let want = if caller < n && target < n { ROUNDS } else { 0 };
                kassert_eq!(
                    c.load(Ordering::Relaxed),
                    want,
                    "calls from cpu{} run on cpu{}",
                    caller,
                    target
                );
            }
        }
        Ok(())
    }
);

ktest!(
    fn lapic_timer_ticks_on_all_cpus() {
        let start: [u64; MAX_CPUS] =
            core::array::from_fn(|c| percpu::get(c).ticks.load(Ordering::Relaxed));
        // Wait until every online CPU has taken a few timer interrupts. The
        // deadline only keeps a broken timer from hanging the run.
        let deadline = time::uptime_ns() + 20_000_000_000;
        loop {
            let behind: alloc::vec::Vec<_> = percpu::online_cpus()
                .filter(|c| c.ticks.load(Ordering::Relaxed) < start[c.cpu_id as usize] + 3)
                .map(|c| c.cpu_id)
                .collect();
            if behind.is_empty() {
                return Ok(());
            }
            kassert!(
                time::uptime_ns() < deadline,
                "no timer ticks on CPUs {:?}",
                behind
            );
            core::hint::spin_loop();
        }
    }
);

ktest!(
    fn cpus_online_run_work() {
        // Pinned tasks reach every CPU exactly once per call.
        let hits = [const { AtomicUsize::new(0) }; MAX_CPUS];
        for _ in 0..10 {
            crate::sched::run_on_cpus(smp::online_mask(), &|cpu| {
                hits[cpu].fetch_add(1, Ordering::Relaxed);
            });
        }
        for c in percpu::online_cpus() {
            kassert_eq!(hits[c.cpu_id as usize].load(Ordering::Relaxed), 10);
        }
        Ok(())
    }
);
