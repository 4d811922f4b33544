//! A wait queue: tasks sleeping until a condition holds.
//!
//! The condition is re-checked under the queue lock after the sleeper has
//! marked itself blocked and queued itself; a waker changes the condition and
//! then takes the same lock to find sleepers. Either the sleeper's check sees
//! the change, or the waker finds the sleeper queued: no lost wakeup.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::SpinLock;
use crate::sched::{self, State, Task};

pub struct WaitQueue {
    sleepers: SpinLock<VecDeque<Arc<Task>>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    pub const fn new() -> Self {
        WaitQueue {
            sleepers: SpinLock::new(VecDeque::new()),
        }
    }

    /// Sleep until `cond()` is true (returns at once if it already is).
    #[track_caller]
    pub fn wait_until(&self, cond: impl Fn() -> bool) {
        if cond() {
            return;
        }
        crate::lockdep::might_sleep();
        let me = sched::clone_current();
        loop {
            {
                let mut q = self.sleepers.lock_irqsave();
                me.set_state(State::Blocked);
                if !cond() {
                    q.push_back(me.clone());
                } else {
                    drop(q);
                    sched::cancel_sleep(&me);
                    return;
                }
            }
            sched::schedule();
            self.sleepers
                .lock_irqsave()
                .retain(|t| !Arc::ptr_eq(t, &me));
            if cond() {
                return;
            }
        }
    }

    pub fn wake_one(&self) -> bool {
        let t = self.sleepers.lock_irqsave().pop_front();
        match t {
            Some(t) => {
                sched::wake(&t);
                true
            }
            None => false,
        }
    }

    pub fn wake_all(&self) {
        let all: Vec<_> = self.sleepers.lock_irqsave().drain(..).collect();
        for t in &all {
            sched::wake(t);
        }
    }
}
