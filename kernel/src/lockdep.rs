//! The lock-annotation funnel: every acquire and release of every lock type
//! (spinlocks, mutexes, the reader/writer semaphore, the VMA lock's
//! annotations) passes through `acquire` / `release` here, with the lock's
//! address, its class name and the caller's source location.
//!
//! What it checks today (debug builds):
//! - each task's list of held locks: releasing a lock not held, and exiting
//!   with locks held, are reported with the call sites;
//! - sleeping while holding a spinlock (or inside an RCU read section, or in
//!   an interrupt handler) is reported with the site of the spinlock.
//!
//! A lock-order checker builds on the same records (DESIGN.md §5).

use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::{cpu, percpu};
use crate::sched::{self, Task, preempt, task::HeldLock};

/// Reports made (tests read these to see a check fire).
pub static SLEEP_IN_ATOMIC_REPORTS: AtomicU64 = AtomicU64::new(0);
pub static IMBALANCE_REPORTS: AtomicU64 = AtomicU64::new(0);

const ENABLED: bool = cfg!(debug_assertions);

/// The held-lock list of the running task, if we are in task context.
fn with_held<R>(f: impl FnOnce(&mut ([Option<HeldLock>; 24], usize)) -> R) -> Option<R> {
    if !ENABLED || percpu::irq_depth() != 0 {
        return None;
    }
    let task = sched::try_current()?;
    let irq = cpu::irq_save();
    // SAFETY: only the task itself touches its list, with interrupts off
    // (and interrupt handlers never record), so there is no concurrent access.
    let r = f(unsafe { &mut *task.held.get() });
    cpu::irq_restore(irq);
    Some(r)
}

pub fn acquire(lock: usize, class: &'static str, site: &'static Location<'static>, read: bool) {
    with_held(|(held, n)| {
        if *n < held.len() {
            held[*n] = Some(HeldLock {
                lock,
                class,
                site,
                read,
            });
            *n += 1;
        }
    });
}

pub fn release(lock: usize, site: &'static Location<'static>) {
    let found = with_held(|(held, n)| {
        // Locks are usually released in reverse order; search from the top.
        match held[..*n]
            .iter()
            .rposition(|h| h.is_some_and(|h| h.lock == lock))
        {
            Some(i) => {
                held.copy_within(i + 1..*n, i);
                *n -= 1;
                held[*n] = None;
                true
            }
            None => *n == held.len(), // the list overflowed: cannot tell
        }
    });
    if found == Some(false) {
        IMBALANCE_REPORTS.fetch_add(1, Ordering::Relaxed);
        crate::error!("lockdep: releasing lock {lock:#x} that this task does not hold, at {site}");
        crate::backtrace::print_here();
    }
}

/// A task about to exit must hold nothing.
pub fn check_task_exit(task: &Task) {
    let leftover = with_held(|(held, n)| {
        let mut any = false;
        for h in held[..*n].iter().flatten() {
            crate::error!(
                "lockdep: task {} '{}' exits holding {} {:#x} taken at {}",
                task.id,
                task.name,
                h.class,
                h.lock,
                h.site
            );
            any = true;
        }
        any
    });
    if leftover == Some(true) {
        IMBALANCE_REPORTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Number of locks the current task holds (tests use it).
pub fn held_count() -> usize {
    with_held(|(_, n)| *n).unwrap_or(0)
}

/// Called at the top of every function that may sleep (Linux's might_sleep).
#[track_caller]
pub fn might_sleep() {
    if !ENABLED {
        return;
    }
    let in_irq = percpu::irq_depth() != 0;
    if preempt::count() == 0 && !in_irq {
        return;
    }
    SLEEP_IN_ATOMIC_REPORTS.fetch_add(1, Ordering::Relaxed);
    crate::error!(
        "BUG: sleeping function called from {} at {} (cpu{}, preempt count {})",
        if in_irq {
            "an interrupt handler"
        } else {
            "atomic context"
        },
        Location::caller(),
        percpu::cpu_id(),
        preempt::count()
    );
    with_held(|(held, n)| {
        for h in held[..*n]
            .iter()
            .flatten()
            .filter(|h| h.class == "spinlock")
        {
            crate::error!("  holding spinlock {:#x} taken at {}", h.lock, h.site);
        }
    });
    crate::backtrace::print_here();
}
