//! The host platform: `mm` on std threads, for `cargo test` and benchmarks.
//!
//! Simple but correct versions of what the kernel provides:
//! - RCU: each thread publishes the grace-period epoch it entered its
//!   outermost read section in; `synchronize` advances the epoch and waits
//!   until no thread is still in a section entered before. `call_rcu` queues
//!   callbacks and runs them in batches after a `synchronize` (never from
//!   inside a read section); [`Host::rcu_barrier`] runs them all.
//! - The wait slot: a published `Thread` handle plus park/unpark, with the
//!   `rcuwait` fences.
//! - `mmap_lock`: a writer-preferring reader/writer semaphore (mutex+condvar).
//! - Frames: 4 KiB heap blocks; the "physical address" is the pointer.
//! - Lock annotations: each thread keeps the list of locks it holds; releasing
//!   a lock not held panics, and tests check the list is empty at the end.

extern crate std;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::marker::PhantomData;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Condvar, Mutex};
use std::thread::{self, Thread};

use crate::platform::{LockClass, LockOp, Platform, Rcu, RwSemaphore, WaitSlot};

/// The host platform (a zero-sized type, like the kernel's).
pub struct Host;

// ---------------------------------------------------------------- RCU

static EPOCH: AtomicU64 = AtomicU64::new(1);
static READERS: Mutex<Vec<Arc<AtomicU64>>> = Mutex::new(Vec::new());
type Callback = Box<dyn FnOnce() + Send>;
static QUEUE: Mutex<Vec<Callback>> = Mutex::new(Vec::new());
/// Queue length at which `call_rcu` runs a batch itself.
const BATCH: usize = 256;

std::thread_local! {
    /// Epoch this thread's outermost read section began in; 0 when outside.
    static SLOT: Arc<AtomicU64> = {
        let s = Arc::new(AtomicU64::new(0));
        READERS.lock().unwrap().push(s.clone());
        s
    };
    static NESTING: Cell<usize> = const { Cell::new(0) };
}

/// An RCU read-side section of the current thread (not `Send`).
pub struct HostRcuGuard(PhantomData<*const ()>);

impl Drop for HostRcuGuard {
    fn drop(&mut self) {
        let n = NESTING.with(|n| {
            n.set(n.get() - 1);
            n.get()
        });
        if n == 0 {
            // Release: our reads in the section happen before a
            // `synchronize` that sees the slot cleared.
            SLOT.with(|s| s.store(0, Ordering::Release));
        }
    }
}

fn in_read_section() -> bool {
    NESTING.with(|n| n.get() > 0)
}

impl Rcu for Host {
    type ReadGuard = HostRcuGuard;

    fn read_lock() -> HostRcuGuard {
        if NESTING.with(|n| n.get()) == 0 {
            SLOT.with(|s| {
                s.store(EPOCH.load(Ordering::SeqCst), Ordering::SeqCst);
            });
            // SeqCst fence: our slot store is ordered before our reads of
            // shared pointers. Pairs with the fence in `synchronize`: either
            // it sees our slot, or we see what the updater unpublished.
            fence(Ordering::SeqCst);
        }
        NESTING.with(|n| n.set(n.get() + 1));
        HostRcuGuard(PhantomData)
    }

    fn call_rcu(callback: Box<dyn FnOnce() + Send>) {
        let batch = {
            let mut q = QUEUE.lock().unwrap();
            q.push(callback);
            if q.len() >= BATCH && !in_read_section() {
                core::mem::take(&mut *q)
            } else {
                Vec::new()
            }
        };
        if !batch.is_empty() {
            Host::synchronize();
            batch.into_iter().for_each(|f| f());
        }
    }

    fn synchronize() {
        assert!(
            !in_read_section(),
            "synchronize_rcu inside a read-side section"
        );
        // Readers that enter from now on publish an epoch >= target.
        let target = EPOCH.fetch_add(1, Ordering::SeqCst) + 1;
        fence(Ordering::SeqCst);
        let slots: Vec<Arc<AtomicU64>> = READERS.lock().unwrap().clone();
        for s in slots {
            loop {
                let e = s.load(Ordering::SeqCst);
                if e == 0 || e >= target {
                    break;
                }
                thread::yield_now();
            }
        }
    }
}

impl Host {
    /// Wait for every queued RCU callback to have run (Linux's
    /// `rcu_barrier`). Tests call it before checking for leaks.
    pub fn rcu_barrier() {
        loop {
            let batch = core::mem::take(&mut *QUEUE.lock().unwrap());
            if batch.is_empty() {
                return;
            }
            Host::synchronize();
            batch.into_iter().for_each(|f| f());
        }
    }
}

// ---------------------------------------------------------------- wait slot

/// Linux's `rcuwait` on std threads.
pub struct HostWaitSlot {
    waiter: Mutex<Option<Thread>>,
}

impl WaitSlot for HostWaitSlot {
    fn new() -> Self {
        HostWaitSlot {
            waiter: Mutex::new(None),
        }
    }

    fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        if cond() {
            return;
        }
        *self.waiter.lock().unwrap() = Some(thread::current());
        // Full fence between publishing ourselves and re-testing: pairs with
        // the fence in `wake_up` (store-buffering: one side sees the other).
        fence(Ordering::SeqCst);
        // `park` returns at once if an `unpark` came after we published, so
        // a wakeup between the test and the park is not lost.
        while !cond() {
            thread::park();
        }
        *self.waiter.lock().unwrap() = None;
    }

    fn wake_up(&self) {
        // Full fence between the caller's state change and our look.
        fence(Ordering::SeqCst);
        if let Some(t) = self.waiter.lock().unwrap().as_ref() {
            t.unpark();
        }
    }
}

// ---------------------------------------------------------------- mmap_lock

#[derive(Default)]
struct SemState {
    readers: usize,
    writer: bool,
    writers_waiting: usize,
}

/// A writer-preferring reader/writer semaphore.
pub struct HostRwSemaphore {
    state: Mutex<SemState>,
    cv: Condvar,
}

impl RwSemaphore for HostRwSemaphore {
    fn new() -> Self {
        HostRwSemaphore {
            state: Mutex::new(SemState::default()),
            cv: Condvar::new(),
        }
    }

    fn read_lock(&self) {
        let mut s = self.state.lock().unwrap();
        // Queue behind waiting writers so they cannot starve.
        while s.writer || s.writers_waiting > 0 {
            s = self.cv.wait(s).unwrap();
        }
        s.readers += 1;
    }

    fn read_unlock(&self) {
        let mut s = self.state.lock().unwrap();
        s.readers -= 1;
        if s.readers == 0 {
            self.cv.notify_all();
        }
    }

    fn write_lock(&self) {
        let mut s = self.state.lock().unwrap();
        s.writers_waiting += 1;
        while s.writer || s.readers > 0 {
            s = self.cv.wait(s).unwrap();
        }
        s.writers_waiting -= 1;
        s.writer = true;
    }

    fn write_unlock(&self) {
        let mut s = self.state.lock().unwrap();
        s.writer = false;
        self.cv.notify_all();
    }

    fn downgrade(&self) {
        let mut s = self.state.lock().unwrap();
        assert!(s.writer, "downgrade of a semaphore not write-locked");
        // One step under the state mutex: a waiting writer sees a reader,
        // never a free lock. Readers get in unless a writer waits.
        s.writer = false;
        s.readers = 1;
        self.cv.notify_all();
    }
}

// ---------------------------------------------------------------- frames, CPUs, TLB, annotations

static FRAMES: AtomicUsize = AtomicUsize::new(0);
static SHOOTDOWNS: AtomicU64 = AtomicU64::new(0);
static NEXT_CPU: AtomicUsize = AtomicUsize::new(0);
const FRAME: core::alloc::Layout = match core::alloc::Layout::from_size_align(4096, 4096) {
    Ok(l) => l,
    Err(_) => panic!(),
};

std::thread_local! {
    static CPU: usize = NEXT_CPU.fetch_add(1, Ordering::Relaxed) % 64;
    static FAIL_FRAMES: Cell<usize> = const { Cell::new(0) };
    static HELD: RefCell<Vec<(LockClass, usize, LockOp)>> = const { RefCell::new(Vec::new()) };
}

impl Host {
    /// Frames allocated and not freed, over all address spaces.
    pub fn frames_in_use() -> usize {
        FRAMES.load(Ordering::Relaxed)
    }

    /// TLB shootdowns requested so far.
    pub fn shootdowns() -> u64 {
        SHOOTDOWNS.load(Ordering::Relaxed)
    }

    /// Make the next `n` frame allocations of this thread fail.
    pub fn fail_next_frames(n: usize) {
        FAIL_FRAMES.with(|f| f.set(n));
    }

    /// Locks the current thread holds, per the annotations.
    pub fn held_locks() -> usize {
        HELD.with(|h| h.borrow().len())
    }
}

impl Platform for Host {
    type WaitSlot = HostWaitSlot;
    type RwSemaphore = HostRwSemaphore;

    fn cpu_id() -> usize {
        CPU.with(|c| *c)
    }

    fn cpu_count() -> usize {
        64
    }

    fn alloc_frame() -> Option<u64> {
        let fail = FAIL_FRAMES.with(|f| {
            let n = f.get();
            if n > 0 {
                f.set(n - 1);
            }
            n > 0
        });
        if fail {
            return None;
        }
        // SAFETY: `FRAME` has a non-zero size.
        let p = unsafe { std::alloc::alloc(FRAME) };
        if p.is_null() {
            return None;
        }
        FRAMES.fetch_add(1, Ordering::Relaxed);
        let pa = p as u64;
        assert!(
            pa & !crate::page_table::ADDR_MASK == 0,
            "host frame address does not fit a PTE"
        );
        Some(pa)
    }

    fn free_frame(pa: u64) {
        let p = pa as *mut u8;
        // SAFETY: `pa` came from `alloc_frame` with layout `FRAME` and is not
        // used any more (the caller's contract). Poisoning first makes a
        // use-after-free of a page-table page visible as garbage entries.
        unsafe {
            core::ptr::write_bytes(p, 0x5a, 4096);
            std::alloc::dealloc(p, FRAME);
        }
        FRAMES.fetch_sub(1, Ordering::Relaxed);
    }

    fn frame_ptr(pa: u64) -> *mut u8 {
        pa as *mut u8
    }

    fn tlb_shootdown(_root: u64, _cpus: u64, _range: Range<u64>) {
        // No MMU on the host: nothing caches translations. Counted so tests
        // can check that unmap and protect ask for one.
        SHOOTDOWNS.fetch_add(1, Ordering::Relaxed);
    }

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
