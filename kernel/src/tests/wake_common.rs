//! What the wakeup-placement tests (`wake`, `wake_busy`, `wake_waker`)
//! share: a reader asleep behind our write lock, and where our unlock puts
//! it. Each test counts over `ROUNDS` rounds (a tick or another task can
//! spoil one round), never times.
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::sched::{self, State, Task, task::NO_CPU};
use crate::sync::RwSem;
use crate::time;

pub(super) const ROUNDS: usize = 20;

/// Yield until `t` sleeps in its semaphore (`asked`: it got that far).
pub(super) fn until_blocked(t: &Task, asked: &AtomicBool) -> Result<(), String> {
    let deadline = time::uptime_ns() + 30_000_000_000;
    // Acquire: pairs with the reader's Release store of `asked`.
    while !(asked.load(Ordering::Acquire) && t.state() == State::Blocked) {
        if time::uptime_ns() > deadline {
            return Err(String::from("the reader never blocked"));
        }
        sched::yield_now();
    }
    Ok(())
}

/// A reader asleep on `sem`, which we hold for writing.
pub(super) struct Wakee {
    sem: Arc<RwSem>,
    reader: Arc<Task>,
}

/// Starts a reader pinned to `cpu`, so that `cpu` is where it last ran,
/// which then lets itself be placed anywhere and blocks behind our write
/// lock. Returns once it sleeps.
pub(super) fn blocked_wakee(cpu: usize) -> Result<Wakee, String> {
    let sem = Arc::new(RwSem::new());
    let asked = Arc::new(AtomicBool::new(false));
    sem.write_lock();
    let reader = {
        let (sem, asked) = (sem.clone(), asked.clone());
        sched::spawn("wakee", Some(cpu), move || {
            sched::current().affinity.store(NO_CPU, Ordering::Relaxed);
            // Release: pairs with the Acquire in `until_blocked`.
            asked.store(true, Ordering::Release);
            sem.read_lock();
            sem.read_unlock();
        })
    };
    until_blocked(&reader, &asked)?;
    Ok(Wakee { sem, reader })
}

impl Wakee {
    /// Unlock, which wakes the reader, and return the CPU whose queue it
    /// was put on (read with interrupts off, before a tick can move it).
    pub(super) fn release(self) -> usize {
        let irq = crate::arch::cpu::irq_save();
        self.sem.write_unlock();
        let placed = self.reader.cpu.load(Ordering::Relaxed);
        crate::arch::cpu::irq_restore(irq);
        sched::join(&self.reader);
        placed
    }
}
