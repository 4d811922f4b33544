//! A sleeping mutex: contended lockers sleep on a wait queue.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::panic::Location;
use core::sync::atomic::{AtomicBool, Ordering};

use super::waitqueue::WaitQueue;
use crate::lockdep::{self, LockMap};

pub struct Mutex<T: ?Sized> {
    /// The lockdep class: the line that created the mutex.
    map: LockMap,
    locked: AtomicBool,
    waiters: WaitQueue,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex gives one holder at a time access to `data`.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the data.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    /// `#[track_caller]`: the caller's line is the mutex's lockdep class.
    #[track_caller]
    pub const fn new(data: T) -> Self {
        Mutex {
            map: LockMap::new("mutex"),
            locked: AtomicBool::new(false),
            waiters: WaitQueue::new(),
            data: UnsafeCell::new(data),
        }
    }
}

impl<T: ?Sized> Mutex<T> {
    fn try_acquire(&self) -> bool {
        // Acquire pairs with the Release in `unlock`: the previous holder's
        // writes are visible to us.
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        lockdep::might_sleep();
        // Before waiting: a real deadlock is reported, not just hung on.
        lockdep::acquire(
            &self.map,
            self as *const Self as *const u8 as usize,
            Location::caller(),
            false,
        );
        while !self.try_acquire() {
            self.waiters
                .wait_until(|| !self.locked.load(Ordering::Relaxed));
        }
        MutexGuard { mutex: self }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[track_caller]
    fn drop(&mut self) {
        lockdep::release(
            self.mutex as *const Mutex<T> as *const u8 as usize,
            Location::caller(),
        );
        self.mutex.locked.store(false, Ordering::Release);
        // A woken waiter may lose to a new locker; that locker wakes the next
        // waiter when it unlocks, so nobody sleeps forever.
        self.mutex.waiters.wake_one();
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves we hold the mutex.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves we hold the mutex exclusively.
        unsafe { &mut *self.mutex.data.get() }
    }
}
