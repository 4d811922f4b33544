//! Where a woken task goes when every CPU is busy: to a CPU whose task has
//! had it long enough to be preempted, rather than behind a task that just
//! got its CPU (where it would wait for the tick). Counted over rounds (a
//! tick or another task can spoil one round), never timed.
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::wake_common::{ROUNDS, blocked_wakee};
use crate::arch::percpu;
use crate::sched;
use crate::{kassert, ktest, time};

/// A task pinned to `cpu` that spins (preemptible) until `stop`.
fn spawn_hog(cpu: usize, stop: &Arc<AtomicBool>, started: &Arc<AtomicUsize>) -> Arc<sched::Task> {
    let (stop, started) = (stop.clone(), started.clone());
    sched::spawn("hog", Some(cpu), move || {
        started.fetch_add(1, Ordering::Release);
        // Acquire: pairs with the test's Release store of `stop`.
        while !stop.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    })
}

/// One round: an unpinned reader that last ran on our CPU is woken by our
/// unlock right after we got the CPU back (so we have not run long), while
/// hogs that have run for a while hold every other CPU. Returns the CPU
/// whose queue the reader was put on.
fn wakee_placed_on(cpu: usize) -> Result<usize, String> {
    let wakee = blocked_wakee(cpu)?;
    // Sleep to the next tick: we come back freshly switched in, and the
    // hogs have by then run for a tick (10 ms) since anything preempted
    // them.
    sched::sleep_ns(1_000_000);
    Ok(wakee.release())
}

ktest!(
    fn wake_prefers_cpu_it_can_preempt() {
        if percpu::online_count() < 2 {
            return Ok(());
        }
        let cpu = percpu::cpu_id();
        let me = sched::current();
        let was = me.affinity.swap(cpu, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let hogs: Vec<_> = percpu::online_cpus()
            .map(|c| c.cpu_id as usize)
            .filter(|&c| c != cpu)
            .map(|c| spawn_hog(c, &stop, &started))
            .collect();
        let mut result = Ok(());
        let mut elsewhere = 0;
        let deadline = time::uptime_ns() + 30_000_000_000;
        // Acquire: pairs with each hog's Release increment.
        while started.load(Ordering::Acquire) < hogs.len() {
            if time::uptime_ns() > deadline {
                result = Err(String::from("a hog never started"));
                break;
            }
            sched::yield_now();
        }
        for _ in 0..ROUNDS {
            if result.is_err() {
                break;
            }
            match wakee_placed_on(cpu) {
                Ok(c) => elsewhere += usize::from(c != cpu),
                Err(e) => result = Err(e),
            }
        }
        // Release: pairs with the hogs' Acquire loads.
        stop.store(true, Ordering::Release);
        for h in &hogs {
            sched::join(h);
        }
        me.affinity.store(was, Ordering::Relaxed);
        result?;
        kassert!(
            elsewhere * 2 >= ROUNDS,
            "a task woken while its CPU's task had just got it stayed queued there, \
             with long-running tasks on every other CPU, in {} of {} rounds",
            ROUNDS - elsewhere,
            ROUNDS
        );
        Ok(())
    }
);
