//! A fair (ticket) spinlock.
//!
//! Each locker takes a ticket and waits until `serving` reaches it, so CPUs get
//! the lock in the order they asked for it: no CPU can be starved by faster
//! neighbours. `lock_irqsave` also disables interrupts on this CPU while the
//! lock is held, which any lock also taken by an interrupt handler needs (or
//! the handler could spin forever on a lock its own CPU holds).
//!
//! Under a hypervisor a fair lock is a trap: the vCPU whose turn is next may
//! be descheduled by the host, and every other waiter then spins until the
//! host runs it again (QEMU with 8 vCPUs on 2 host cores turns microseconds
//! into minutes). Linux answers this with `virt_spin_lock()`: without
//! paravirtual spinlocks it falls back to a test-and-set lock, which any
//! running vCPU can take. We do the same, chosen once at boot from the CPUID
//! "hypervisor present" bit (`init_mode`), before any lock is taken.
//!
//! Hand-written rather than `spin::Mutex`: every acquire and release must go
//! through lockdep and the preempt count, the guard may disable interrupts,
//! and the algorithm switches at boot; `spin`'s locks have none of these
//! hooks.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use core::panic::Location;

use crate::arch::cpu;
use crate::lockdep::{self, LockMap};
use crate::sched::preempt;

/// True: test-and-set (under a hypervisor). False: ticket lock.
static VIRT_MODE: AtomicBool = AtomicBool::new(false);

/// Choose the lock algorithm; call once, first thing at boot.
pub fn init_mode() {
    let hypervisor = cpu::cpuid(1, 0).ecx & (1 << 31) != 0;
    VIRT_MODE.store(hypervisor, Ordering::Relaxed);
}

pub fn virt_mode() -> bool {
    VIRT_MODE.load(Ordering::Relaxed)
}

pub struct SpinLock<T: ?Sized> {
    /// The lockdep class: the line that created the lock.
    map: LockMap,
    /// Test-and-set mode: the lock word.
    locked: AtomicBool,
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
    site: &'static Location<'static>,
    /// Told to lockdep (every guard but `try_lock_irqsave`'s).
    tracked: bool,
}

impl<T> SpinLock<T> {
    /// `#[track_caller]`: the caller's line is the lock's lockdep class.
    #[track_caller]
    pub const fn new(data: T) -> Self {
        SpinLock {
            map: LockMap::new("spinlock"),
            locked: AtomicBool::new(false),
            next_ticket: AtomicU32::new(0),
            now_serving: AtomicU32::new(0),
            data: UnsafeCell::new(data),
        }
    }
}

impl<T: ?Sized> SpinLock<T> {
    fn acquire(&self) {
        if virt_mode() {
            // Test-and-test-and-set: spin on a plain load (the cache line
            // stays shared) and try the swap only when it looks free.
            // Acquire pairs with the Release store in `release`.
            while self.locked.swap(true, Ordering::Acquire) {
                while self.locked.load(Ordering::Relaxed) {
                    cpu::pause();
                }
            }
            return;
        }
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        // Acquire pairs with the Release in `release`: the previous holder's
        // writes to `data` are visible once we see our ticket served.
        while self.now_serving.load(Ordering::Acquire) != ticket {
            cpu::pause();
        }
    }

    fn release(&self) {
        if virt_mode() {
            self.locked.store(false, Ordering::Release);
            return;
        }
        // Only the holder writes `now_serving`, so load + store is enough.
        let next = self.now_serving.load(Ordering::Relaxed).wrapping_add(1);
        self.now_serving.store(next, Ordering::Release);
    }

    fn addr(&self) -> usize {
        self as *const Self as *const u8 as usize
    }

    /// Its lockdep class (tests).
    #[cfg(debug_assertions)]
    pub fn lockdep_map(&self) -> &LockMap {
        &self.map
    }

    /// Lock; preemption stays off on this CPU until the guard drops (a
    /// holder switched out would leave every other locker spinning).
    #[track_caller]
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        preempt::disable();
        let site = Location::caller();
        // Before spinning: a real deadlock is reported, not just hung on.
        lockdep::acquire(&self.map, self.addr(), site, false);
        self.acquire();
        SpinLockGuard {
            lock: self,
            irq_was_enabled: None,
            site,
            tracked: true,
        }
    }

    /// Lock with interrupts disabled on this CPU until the guard drops.
    #[track_caller]
    pub fn lock_irqsave(&self) -> SpinLockGuard<'_, T> {
        let was = cpu::irq_save();
        preempt::disable();
        let site = Location::caller();
        lockdep::acquire(&self.map, self.addr(), site, false);
        self.acquire();
        SpinLockGuard {
            lock: self,
            irq_was_enabled: Some(was),
            site,
            tracked: true,
        }
    }

    /// Lock with interrupts disabled, or `None` at once if it is held. For
    /// diagnostics that run in interrupt context while the code they look at
    /// may hold the lock: it never spins, so it cannot deadlock, and lockdep
    /// is not told (no ordering is implied by a lock that is never waited
    /// for).
    #[track_caller]
    pub fn try_lock_irqsave(&self) -> Option<SpinLockGuard<'_, T>> {
        let was = cpu::irq_save();
        preempt::disable();
        // Acquire pairs with the Release in `release`, as in `acquire`.
        let got = if virt_mode() {
            !self.locked.swap(true, Ordering::Acquire)
        } else {
            let serving = self.now_serving.load(Ordering::Relaxed);
            self.next_ticket
                .compare_exchange(
                    serving,
                    serving.wrapping_add(1),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
        };
        if !got {
            cpu::irq_restore(was);
            preempt::enable();
            return None;
        }
        Some(SpinLockGuard {
            lock: self,
            irq_was_enabled: Some(was),
            site: Location::caller(),
            tracked: false,
        })
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
        if self.tracked {
            lockdep::release(self.lock.addr(), self.site);
        }
        self.lock.release();
        if let Some(was) = self.irq_was_enabled {
            cpu::irq_restore(was);
        }
        // Last, so a switch that was held off happens with interrupts back on.
        preempt::enable();
    }
}
