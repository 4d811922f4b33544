//! Atomics used by the lock protocol.
//!
//! Under `--cfg loom` these are loom's instrumented types, so the model checker
//! sees (and permutes) every access; otherwise they are `core`'s.
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(loom)]
pub use loom::sync::atomic::AtomicBool;

#[cfg(not(loom))]
pub use core::sync::atomic::AtomicBool;

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::AtomicBool as CoreAtomicBool;

/// A minimal spin lock for short, non-sleeping bookkeeping (the VMA cache's
/// free list). It deliberately uses `core`'s atomic even under loom: its
/// critical sections contain no loom operation, so loom (which switches
/// threads only at its own operations) never sees it contended, and modelling
/// it would only multiply the states loom explores.
pub struct SpinLock<T> {
    locked: CoreAtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one holder at a time, so sharing the
// lock across threads is like sending `T` between them.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: as above, the lock owns its `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> Self {
        SpinLock {
            locked: CoreAtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    pub fn lock(&self) -> SpinGuard<'_, T> {
        // Acquire pairs with the Release in `SpinGuard::drop`: the previous
        // holder's writes to `value` are visible to us.
        while self
            .locked
            .compare_exchange_weak(
                false,
                true,
                core::sync::atomic::Ordering::Acquire,
                core::sync::atomic::Ordering::Relaxed,
            )
            .is_err()
        {
            core::hint::spin_loop();
        }
        SpinGuard { lock: self }
    }
}

pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock, so no one else has a reference to `value`.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the lock, so no one else has a reference to `value`.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        // Release pairs with the Acquire in `SpinLock::lock`.
        self.lock
            .locked
            .store(false, core::sync::atomic::Ordering::Release);
    }
}

/// `assert!` in debug builds and under loom (whose models run in release
/// builds for speed), compiled out otherwise: the lock protocol's internal
/// checks, which the model checker must see.
#[macro_export]
#[doc(hidden)]
macro_rules! protocol_assert {
    ($($t:tt)*) => {
        if cfg!(any(debug_assertions, loom)) {
            assert!($($t)*);
        }
    };
}
