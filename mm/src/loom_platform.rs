//! The platform under the loom model checker (`--cfg loom`).
//!
//! Everything the lock protocol's correctness depends on is a loom object, so
//! loom explores its interleavings and weak-memory outcomes:
//! - the wait slot's "waiter published" flag and its fences are loom atomics,
//!   and sleeping is `loom::thread::park` (a lost wakeup leaves every thread
//!   parked, which loom reports as a deadlock);
//! - the `mmap_lock` is a loom atomic with a yielding spin;
//! - lock annotations are counted per loom thread.
//!
//! RCU has an infinitely long grace period: `call_rcu` queues the callback and
//! [`Loom::run_rcu_callbacks`] runs the queue once the model's threads have
//! been joined. That is sound (nothing is freed under a reader) and keeps the
//! model small. `synchronize` is not used by `mm` and panics here.

extern crate std;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ops::Range;
use std::sync::Mutex;

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use loom::thread::{self, Thread};

use crate::platform::{LockClass, LockOp, Platform, Rcu, RwSemaphore, WaitSlot};

/// The loom platform (zero-sized).
pub struct Loom;

type Callback = Box<dyn FnOnce() + Send>;

loom::lazy_static! {
    /// Per execution: queued RCU callbacks. (A std mutex: its critical
    /// sections hold no loom operation, so loom never switches inside them.)
    static ref QUEUE: Mutex<Vec<Callback>> = Mutex::new(Vec::new());
}

loom::thread_local! {
    static HELD: RefCell<Vec<(LockClass, usize, LockOp)>> = RefCell::new(Vec::new());
}

impl Loom {
    /// Run every queued RCU callback (call after joining the model's
    /// threads: the grace period then has certainly ended).
    pub fn run_rcu_callbacks() {
        loop {
            let batch = core::mem::take(&mut *QUEUE.lock().unwrap());
            if batch.is_empty() {
                return;
            }
            batch.into_iter().for_each(|f| f());
        }
    }

    /// Locks the current loom thread holds, per the annotations.
    pub fn held_locks() -> usize {
        HELD.with(|h| h.borrow().len())
    }
}

/// An RCU read section (nothing to do with an infinite grace period).
pub struct LoomRcuGuard(core::marker::PhantomData<*const ()>);

impl Rcu for Loom {
    type ReadGuard = LoomRcuGuard;

    fn read_lock() -> LoomRcuGuard {
        LoomRcuGuard(core::marker::PhantomData)
    }

    fn call_rcu(callback: Box<dyn FnOnce() + Send>) {
        QUEUE.lock().unwrap().push(callback);
    }

    fn synchronize() {
        panic!("synchronize_rcu is not modelled under loom");
    }
}

/// `rcuwait` with loom atomics and park/unpark.
pub struct LoomWaitSlot {
    /// Whether a waiter is published. Its store and the waker's load are what
    /// the fences order, so loom sees the store-buffering pattern.
    waiting: AtomicBool,
    thread: Mutex<Option<Thread>>,
}

// SAFETY: loom's `Thread` handle is only used to unpark; the slot is shared
// the same way the kernel's rcuwait is.
unsafe impl Send for LoomWaitSlot {}
// SAFETY: as above.
unsafe impl Sync for LoomWaitSlot {}

impl WaitSlot for LoomWaitSlot {
    fn new() -> Self {
        LoomWaitSlot {
            waiting: AtomicBool::new(false),
            thread: Mutex::new(None),
        }
    }

    fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        if cond() {
            return;
        }
        *self.thread.lock().unwrap() = Some(thread::current());
        self.waiting.store(true, Ordering::Relaxed);
        // Full fence: publication before the re-test (pairs with `wake_up`).
        fence(Ordering::SeqCst);
        while !cond() {
            thread::park();
        }
        self.waiting.store(false, Ordering::Relaxed);
    }

    fn wake_up(&self) {
        // Full fence: the caller's state change before our look.
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) {
            if let Some(t) = self.thread.lock().unwrap().as_ref() {
                t.unpark();
            }
        }
    }
}

/// A spinning reader/writer lock (loom explores the spin with yields).
pub struct LoomRwSemaphore {
    /// usize::MAX: write-locked; otherwise the number of readers.
    state: AtomicUsize,
}

const WRITER: usize = usize::MAX;

impl RwSemaphore for LoomRwSemaphore {
    fn new() -> Self {
        LoomRwSemaphore {
            state: AtomicUsize::new(0),
        }
    }

    fn read_lock(&self) {
        loop {
            let s = self.state.load(Ordering::Relaxed);
            // Acquire pairs with the Release of `write_unlock`.
            if s != WRITER
                && self
                    .state
                    .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            thread::yield_now();
        }
    }

    fn read_unlock(&self) {
        self.state.fetch_sub(1, Ordering::Release);
    }

    fn write_lock(&self) {
        // Acquire pairs with the Release of both unlocks.
        while self
            .state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            thread::yield_now();
        }
    }

    fn write_unlock(&self) {
        self.state.store(0, Ordering::Release);
    }

    fn downgrade(&self) {
        // One store from WRITER to one reader: there is no moment at which
        // the lock is free, so no writer's compare-exchange can succeed.
        // Release: what was done under the write lock is visible to the
        // readers that get in now (pairs with `read_lock`'s Acquire).
        let prev = self.state.swap(1, Ordering::Release);
        assert_eq!(prev, WRITER, "downgrade of a lock not write-locked");
    }
}

const FRAME: core::alloc::Layout = match core::alloc::Layout::from_size_align(4096, 4096) {
    Ok(l) => l,
    Err(_) => panic!(),
};

impl Platform for Loom {
    type WaitSlot = LoomWaitSlot;
    type RwSemaphore = LoomRwSemaphore;

    fn cpu_id() -> usize {
        0
    }

    fn cpu_count() -> usize {
        1
    }

    fn alloc_frame() -> Option<u64> {
        // SAFETY: non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(FRAME) };
        (!p.is_null()).then_some(p as u64)
    }

    fn free_frame(pa: u64) {
        // SAFETY: from `alloc_frame`, no longer used (caller's contract).
        unsafe { std::alloc::dealloc(pa as *mut u8, FRAME) };
    }

    fn frame_ptr(pa: u64) -> *mut u8 {
        pa as *mut u8
    }

    fn tlb_shootdown(_root: u64, _cpus: u64, _range: Range<u64>) {}

    fn lock_event(class: LockClass, key: usize, op: LockOp) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            match op {
                LockOp::AcquireRead | LockOp::AcquireWrite => h.push((class, key, op)),
                LockOp::Downgrade => crate::platform::downgrade_held(&mut h, class, key),
                LockOp::Release => {
                    let i = h
                        .iter()
                        .rposition(|&(c, k, _)| c == class && k == key)
                        .unwrap_or_else(|| {
                            panic!("release of {class:?} {key:#x}, which this thread does not hold")
                        });
                    h.remove(i);
                }
            }
        });
    }
}
