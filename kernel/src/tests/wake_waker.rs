//! A woken task that cannot preempt on its last CPU looks for another CPU
//! it may preempt, but not its waker's: a waker that releases a lock often
//! takes it again next, and preempting it sends it to the back of its
//! queue. Counted over rounds, never timed.
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use super::wake_common::{ROUNDS, blocked_wakee};
use crate::arch::percpu;
use crate::sched;
use crate::{kassert, ktest, time};

/// The waker's CPU (first in the search order, so that a search that does
/// not skip it finds it first) and the CPU whose task keeps changing.
const WAKER_CPU: usize = 0;
const FRESH_CPU: usize = 1;

/// One round: a reader that last ran on `FRESH_CPU` (where two tasks yield
/// to each other, so its task has always just got it) is woken by our
/// unlock after we have run for 2 ms. Returns the CPU it was queued on.
fn wakee_placed_on() -> Result<usize, String> {
    let wakee = blocked_wakee(FRESH_CPU)?;
    // Past the wakeup granularity, so that our CPU qualifies as one a woken
    // task may preempt.
    time::delay_us(2_000);
    Ok(wakee.release())
}

fn spawn_spinner(name: &str, cpu: usize, stop: &Arc<AtomicBool>, yields: bool) -> Arc<sched::Task> {
    let stop = stop.clone();
    sched::spawn(name, Some(cpu), move || {
        // Acquire: pairs with the test's Release store.
        while !stop.load(Ordering::Acquire) {
            if yields {
                sched::yield_now();
            } else {
                core::hint::spin_loop();
            }
        }
    })
}

ktest!(
    fn wake_does_not_move_to_preempt_waker() {
        if percpu::online_count() < 2 {
            return Ok(());
        }
        let me = sched::current();
        let was = me.affinity.swap(WAKER_CPU, Ordering::Relaxed);
        sched::migrate_current(WAKER_CPU);
        let stop = Arc::new(AtomicBool::new(false));
        // Two yielders keep FRESH_CPU's task freshly switched in; hogs keep
        // every other CPU busy (not idle, and long-running).
        let mut helpers: Vec<_> = (0..2)
            .map(|_| spawn_spinner("yielder", FRESH_CPU, &stop, true))
            .collect();
        helpers.extend(
            percpu::online_cpus()
                .map(|c| c.cpu_id as usize)
                .filter(|&c| c != WAKER_CPU && c != FRESH_CPU)
                .map(|c| spawn_spinner("hog", c, &stop, false)),
        );
        let mut result = Ok(());
        let mut on_waker = 0;
        for _ in 0..ROUNDS {
            match wakee_placed_on() {
                Ok(c) => on_waker += usize::from(c == WAKER_CPU),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Release: pairs with the helpers' Acquire loads.
        stop.store(true, Ordering::Release);
        for h in &helpers {
            sched::join(h);
        }
        me.affinity.store(was, Ordering::Relaxed);
        result?;
        kassert!(
            on_waker * 2 < ROUNDS,
            "a woken task was moved onto its waker's CPU to preempt it in {} of {} rounds",
            on_waker,
            ROUNDS
        );
        Ok(())
    }
);
