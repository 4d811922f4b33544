//! A sleeping reader/writer semaphore (this becomes each address space's
//! `mmap_lock`).
//!
//! Fairness is by arrival order: once anyone is waiting, newcomers queue
//! behind them instead of barging in. A releasing holder hands the semaphore
//! to the head of the queue: a writer alone, or a reader together with every
//! reader right behind it. So a steady stream of readers cannot starve a
//! writer (new readers queue behind it), and a steady stream of writers
//! cannot starve readers (each writer hands over to the readers queued before
//! the next writer).
//!
//! The state sits under a spinlock. A waiter takes a ticket (its place in
//! the queue) and sleeps until the tickets granted reach it; the granter has
//! already counted it as a holder, and wakes exactly the waiters it granted
//! (no thundering herd: a waiter not granted is not woken). Waiting
//! allocates nothing but the queue's growth.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::panic::Location;

use super::SpinLock;
use crate::lockdep::{self, LockMap};
use crate::sched::{self, State as TaskState, Task};

struct Waiter {
    write: bool,
    ticket: u64,
    task: Arc<Task>,
}

struct State {
    readers: usize,
    writer: bool,
    queue: VecDeque<Waiter>,
    /// The ticket the next waiter gets.
    next_ticket: u64,
    /// Every ticket below this one has been granted. Grants go in queue
    /// order, and tickets are handed out in queue order, so this one number
    /// says whether a given waiter has been granted.
    granted: u64,
}

pub struct RwSem {
    /// The lockdep class: the line that created the semaphore.
    map: LockMap,
    state: SpinLock<State>,
}

impl Default for RwSem {
    fn default() -> Self {
        Self::new()
    }
}

/// Not `#[track_caller]`: the internal locks of all semaphores are one
/// lockdep class (this line), as Linux's rwsem `wait_lock`s are.
const fn new_state() -> SpinLock<State> {
    SpinLock::new(State {
        readers: 0,
        writer: false,
        queue: VecDeque::new(),
        next_ticket: 0,
        granted: 0,
    })
}

impl RwSem {
    /// `#[track_caller]`: the caller's line is the semaphore's lockdep class.
    #[track_caller]
    pub const fn new() -> Self {
        Self::named("rwsem")
    }

    /// As `new`, with a class name for reports (e.g. "mmap_lock").
    #[track_caller]
    pub const fn named(name: &'static str) -> Self {
        RwSem {
            map: LockMap::new(name),
            state: new_state(),
        }
    }

    fn id(&self) -> usize {
        self as *const Self as usize
    }

    #[track_caller]
    pub fn read_lock(&self) {
        lockdep::might_sleep();
        // Before waiting: a real deadlock is reported, not just hung on.
        lockdep::acquire(&self.map, self.id(), Location::caller(), true);
        self.acquire(false);
    }

    #[track_caller]
    pub fn write_lock(&self) {
        lockdep::might_sleep();
        lockdep::acquire(&self.map, self.id(), Location::caller(), false);
        self.acquire(true);
    }

    fn acquire(&self, write: bool) {
        let mut s = self.state.lock_irqsave();
        let free = if write {
            !s.writer && s.readers == 0
        } else {
            !s.writer
        };
        if free && s.queue.is_empty() {
            if write {
                s.writer = true;
            } else {
                s.readers += 1;
            }
            return;
        }
        let ticket = s.next_ticket;
        s.next_ticket += 1;
        let me = sched::clone_current();
        s.queue.push_back(Waiter {
            write,
            ticket,
            task: me.clone(),
        });
        // Sleep until granted. The grant and our check are both made under
        // `state`, and we mark ourselves Blocked before we let go of it: a
        // granter that comes after our check finds us Blocked and wakes us.
        // The lock's release/acquire orders the previous holder's work
        // before our return.
        loop {
            if s.granted > ticket {
                return;
            }
            me.set_state(TaskState::Blocked);
            drop(s);
            sched::schedule();
            s = self.state.lock_irqsave();
        }
    }

    #[track_caller]
    pub fn read_unlock(&self) {
        lockdep::release(self.id(), Location::caller());
        let mut s = self.state.lock_irqsave();
        assert!(
            s.readers > 0 && !s.writer,
            "read_unlock of an rwsem not read-locked"
        );
        s.readers -= 1;
        if s.readers == 0 {
            self.grant(&mut s);
        }
    }

    #[track_caller]
    pub fn write_unlock(&self) {
        lockdep::release(self.id(), Location::caller());
        let mut s = self.state.lock_irqsave();
        assert!(s.writer, "write_unlock of an rwsem not write-locked");
        s.writer = false;
        self.grant(&mut s);
    }

    /// Turn the caller's write hold into a read hold (Linux's
    /// `downgrade_write`). One step under `state`: a queued writer never
    /// sees the semaphore free, and the readers at the head of the queue
    /// (up to the first writer, as `grant` goes) get in with us at once.
    #[track_caller]
    pub fn downgrade(&self) {
        lockdep::downgrade(self.id(), Location::caller());
        let mut s = self.state.lock_irqsave();
        assert!(s.writer, "downgrade of an rwsem not write-locked");
        s.writer = false;
        s.readers = 1;
        self.grant(&mut s);
    }

    /// Hand the semaphore to the head of the queue (called with `state`
    /// held, when it is free, or held by readers only just after a
    /// downgrade) and wake those granted. Waking under `state` keeps the
    /// grant and the wakeup in one step (the scheduler's run-queue locks
    /// nest inside; nothing takes a semaphore's state under them).
    fn grant(&self, s: &mut State) {
        let mut woke = false;
        while let Some(w) = s.queue.front() {
            if w.write {
                if s.readers > 0 || woke {
                    break;
                }
                s.writer = true;
            } else {
                s.readers += 1;
            }
            let w = s.queue.pop_front().unwrap();
            s.granted = w.ticket + 1;
            sched::wake(&w.task);
            woke = true;
            if w.write {
                break;
            }
        }
    }

    /// Tasks queued right now (tests and debugging).
    pub fn waiters(&self) -> usize {
        self.state.lock_irqsave().queue.len()
    }

    /// Holders right now (tests and debugging).
    pub fn holders(&self) -> (usize, bool) {
        let s = self.state.lock_irqsave();
        (s.readers, s.writer)
    }
}
