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
//! The state sits under a spinlock; a waiter sleeps until its queue entry is
//! marked granted, and the granter has already counted it as a holder.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::panic::Location;
use core::sync::atomic::{AtomicBool, Ordering};

use super::SpinLock;
use super::waitqueue::WaitQueue;
use crate::lockdep::{self, LockMap};

struct Waiter {
    write: bool,
    granted: Arc<AtomicBool>,
}

struct State {
    readers: usize,
    writer: bool,
    queue: VecDeque<Waiter>,
}

pub struct RwSem {
    /// The lockdep class: the line that created the semaphore.
    map: LockMap,
    state: SpinLock<State>,
    /// Only for sleeping; grants are decided under `state`.
    sleep: WaitQueue,
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
            sleep: WaitQueue::new(),
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
        let granted = {
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
            let granted = Arc::new(AtomicBool::new(false));
            s.queue.push_back(Waiter {
                write,
                granted: granted.clone(),
            });
            granted
        };
        // Acquire pairs with the Release store in `grant`.
        self.sleep.wait_until(|| granted.load(Ordering::Acquire));
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

    /// Hand the semaphore to the head of the queue (called when it is free).
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
            w.granted.store(true, Ordering::Release);
            woke = true;
            if w.write {
                break;
            }
        }
        if woke {
            // The granted waiters sleep on `sleep`; waking all lets each
            // re-check its own flag (the others go back to sleep).
            self.sleep.wake_all();
        }
    }

    /// Holders right now (tests and debugging).
    pub fn holders(&self) -> (usize, bool) {
        let s = self.state.lock_irqsave();
        (s.readers, s.writer)
    }
}
