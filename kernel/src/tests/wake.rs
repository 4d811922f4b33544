//! Where a woken task goes: not in front of its waker, and onto an idle CPU
//! rather than behind a busy one. Both are counted over rounds (a timer tick
//! landing between the wakeup and the check can spoil one round), never
//! timed.
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::arch::percpu;
use crate::sched::{self, State, task::NO_CPU};
use crate::sync::RwSem;
use crate::{kassert, ktest, time};

const ROUNDS: usize = 20;

/// Yield until `t` sleeps in `sem` (`asked` says it got as far as asking).
fn until_blocked(t: &sched::Task, asked: &AtomicBool) -> Result<(), alloc::string::String> {
    let deadline = time::uptime_ns() + 30_000_000_000;
    while !(asked.load(Ordering::Acquire) && t.state() == State::Blocked) {
        if time::uptime_ns() > deadline {
            return Err(alloc::string::String::from("the reader never blocked"));
        }
        sched::yield_now();
    }
    Ok(())
}

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
    let sem = Arc::new(RwSem::new());
    let asked = Arc::new(AtomicBool::new(false));
    let woke_on = Arc::new(AtomicUsize::new(NO_CPU));
    sem.write_lock();
    let reader = {
        let (sem, asked) = (sem.clone(), asked.clone());
        // Starts pinned here, so that here is where it last ran, then lets
        // itself be placed anywhere.
        sched::spawn("wakee", Some(cpu), move || {
            sched::current().affinity.store(NO_CPU, Ordering::Relaxed);
            asked.store(true, Ordering::Release);
            sem.read_lock();
            sem.read_unlock();
        })
    };
    until_blocked(&reader, &asked)?;
    // Our CPU is busy (we run on it) and, between tests, the others idle.
    // The wakeup puts the reader on some queue; read which before a tick
    // lets another CPU steal it.
    // The last round's reader may still be leaving another CPU.
    let deadline = time::uptime_ns() + 30_000_000_000;
    while !percpu::online_cpus().any(|c| sched::cpu_idle(c.cpu_id as usize)) {
        if time::uptime_ns() > deadline {
            return Err(alloc::string::String::from("no other CPU went idle"));
        }
        sched::yield_now();
    }
    let irq = crate::arch::cpu::irq_save();
    sem.write_unlock();
    woke_on.store(reader.cpu.load(Ordering::Relaxed), Ordering::Relaxed);
    crate::arch::cpu::irq_restore(irq);
    sched::join(&reader);
    Ok(woke_on.load(Ordering::Relaxed))
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
