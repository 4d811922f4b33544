//! A single-waiter wait slot, like Linux's `rcuwait`: one task sleeps until
//! a condition holds; whoever changes the condition calls `wake_up`.
//!
//! No lost wakeup, by the classic pairing:
//! - waiter: publish itself in the slot, mark itself blocked, full fence,
//!   re-test the condition, and only then sleep;
//! - waker: change the condition, full fence, look in the slot.
//!
//! Either the waiter's re-test sees the new condition, or the waker sees the
//! waiter in the slot (and its blocked state) and wakes it.
//!
//! Linux keeps the waiter alive across the waker's look with RCU; we hold a
//! counted reference in the slot, under a spinlock, for the same effect.

use alloc::sync::Arc;
use core::sync::atomic::{Ordering, fence};

use super::SpinLock;
use crate::sched::{self, State, Task};

pub struct RcuWait {
    waiter: SpinLock<Option<Arc<Task>>>,
}

impl Default for RcuWait {
    fn default() -> Self {
        Self::new()
    }
}

impl RcuWait {
    pub const fn new() -> Self {
        RcuWait {
            waiter: SpinLock::new(None),
        }
    }

    #[track_caller]
    pub fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        if cond() {
            return;
        }
        crate::lockdep::might_sleep();
        let me = sched::clone_current();
        {
            let mut w = self.waiter.lock_irqsave();
            assert!(w.is_none(), "rcuwait: a second waiter");
            *w = Some(me.clone());
        }
        loop {
            me.set_state(State::Blocked);
            // Pairs with the fence in `wake_up`: our slot and state are
            // visible before we test, or we see the waker's update.
            fence(Ordering::SeqCst);
            if cond() {
                sched::cancel_sleep(&me);
                break;
            }
            sched::schedule();
        }
        *self.waiter.lock_irqsave() = None;
    }

    /// Call after changing the condition.
    pub fn wake_up(&self) {
        // Pairs with the fence in `wait_until`.
        fence(Ordering::SeqCst);
        let w = self.waiter.lock_irqsave().clone();
        if let Some(t) = w {
            sched::wake(&t);
        }
    }
}
