//! Where a woken task goes: not in front of its waker, and onto an idle CPU
//! rather than behind a busy one. Both are counted over rounds (a timer tick
//! landing between the wakeup and the check can spoil one round), never
//! timed.
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use super::wake_common::{ROUNDS, blocked_wakee, until_blocked};
use crate::arch::percpu;
use crate::sched;
use crate::sync::RwSem;
use crate::{kassert, ktest, time};

/// One round: a reader pinned to our CPU blocks behind our write lock; we
/// unlock (which wakes it) and look at once whether it has run yet.
/// Returns true if we kept the CPU.
fn waker_kept_cpu(cpu: usize) -> Result<bool, alloc::string::String> {
    let sem = Arc::new(RwSem::new());
    let asked = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicBool::new(false));
    sem.write_lock();
    let reader = {
        let (sem, asked, ran) = (sem.clone(), asked.clone(), ran.clone());
        sched::spawn("wakee", Some(cpu), move || {
            // Release: pairs with the Acquire in `until_blocked`.
            asked.store(true, Ordering::Release);
            sem.read_lock();
            ran.store(true, Ordering::Release);
            sem.read_unlock();
        })
    };
    until_blocked(&reader, &asked)?;
    sem.write_unlock();
    // Acquire: pairs with the reader's Release after it got the lock.
    let kept = !ran.load(Ordering::Acquire);
    sched::join(&reader);
    Ok(kept)
}

ktest!(
    fn wake_does_not_preempt_waker() {
        let cpu = percpu::cpu_id();
        let me = sched::current();
        let was = me.affinity.swap(cpu, Ordering::Relaxed);
        let mut kept = 0;
        let mut result = Ok(());
        for _ in 0..ROUNDS {
            match waker_kept_cpu(cpu) {
                Ok(k) => kept += usize::from(k),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        me.affinity.store(was, Ordering::Relaxed);
        result?;
        kassert!(
            kept * 2 >= ROUNDS,
            "the woken task preempted its waker in {} of {} rounds",
            ROUNDS - kept,
            ROUNDS
        );
        Ok(())
    }
);

/// One round: an unpinned reader that last ran on our (busy) CPU is woken
/// by our unlock. Returns the CPU whose queue it was put on.
fn wakee_placed_on(cpu: usize) -> Result<usize, alloc::string::String> {
    let wakee = blocked_wakee(cpu)?;
    // Our CPU is busy (we run on it) and, between tests, the others idle.
    // The last round's reader may still be leaving another CPU.
    let deadline = time::uptime_ns() + 30_000_000_000;
    while !percpu::online_cpus().any(|c| sched::cpu_idle(c.cpu_id as usize)) {
        if time::uptime_ns() > deadline {
            return Err(alloc::string::String::from("no other CPU went idle"));
        }
        sched::yield_now();
    }
    Ok(wakee.release())
}

ktest!(
    fn wake_prefers_idle_cpu() {
        if percpu::online_count() < 2 {
            return Ok(());
        }
        let cpu = percpu::cpu_id();
        let me = sched::current();
        let was = me.affinity.swap(cpu, Ordering::Relaxed);
        let mut elsewhere = 0;
        let mut result = Ok(());
        for _ in 0..ROUNDS {
            match wakee_placed_on(cpu) {
                Ok(c) => elsewhere += usize::from(c != cpu),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        me.affinity.store(was, Ordering::Relaxed);
        result?;
        kassert!(
            elsewhere * 2 >= ROUNDS,
            "a task woken while its CPU was busy and others idle stayed queued there in {} of {} rounds",
            ROUNDS - elsewhere,
            ROUNDS
        );
        Ok(())
    }
);
