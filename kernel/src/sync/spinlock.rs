//! A fair (ticket) spinlock.
//!
//! Each locker takes a ticket and waits until `serving` reaches it, so CPUs get
//! the lock in the order they asked for it: no CPU can be starved by faster
//! neighbours. `lock_irqsave` also disables interrupts on this CPU while the
//! lock is held, which any lock also taken by an interrupt handler needs (or
//! the handler could spin forever on a lock its own CPU holds).

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch::cpu;

pub struct SpinLock<T: ?Sized> {
    next_ticket: AtomicU32,
    now_serving: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `data` to one holder at a time.
unsafe impl<T: ?Sized + Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the data; requires T: Send.
unsafe impl<T: ?Sized + Send> Send for SpinLock<T> {}

pub struct SpinLockGuard<'a, T: ?Sized> {
    lock: &'a SpinLock<T>,
    irq_was_enabled: Option<bool>,
}

impl<T> SpinLock<T> {
    pub const fn new(data: T) -> Self {
        SpinLock { next_ticket: AtomicU32::new(0), now_serving: AtomicU32::new(0), data: UnsafeCell::new(data) }
    }
}

impl<T: ?Sized> SpinLock<T> {
    fn acquire(&self) {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        // Acquire pairs with the Release in `release`: the previous holder's
        // writes to `data` are visible once we see our ticket served.
        while self.now_serving.load(Ordering::Acquire) != ticket {
            cpu::pause();
        }
    }

    fn release(&self) {
        // Only the holder writes `now_serving`, so load + store is enough.
        let next = self.now_serving.load(Ordering::Relaxed).wrapping_add(1);
        self.now_serving.store(next, Ordering::Release);
    }

    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        self.acquire();
        SpinLockGuard { lock: self, irq_was_enabled: None }
    }

    /// Lock with interrupts disabled on this CPU until the guard drops.
    pub fn lock_irqsave(&self) -> SpinLockGuard<'_, T> {
        let was = cpu::irq_save();
        self.acquire();
        SpinLockGuard { lock: self, irq_was_enabled: Some(was) }
    }

    pub fn is_locked(&self) -> bool {
        self.next_ticket.load(Ordering::Relaxed) != self.now_serving.load(Ordering::Relaxed)
    }
}

impl<T: ?Sized> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this CPU holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves this CPU holds the lock, exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.release();
        if let Some(was) = self.irq_was_enabled {
            cpu::irq_restore(was);
        }
    }
}
