//! What `mm` needs from the platform, and what the platform must guarantee.
//!
//! All functions are associated functions (no `self`): the kernel implements
//! the traits on a zero-sized type, so every call compiles to a direct call.
//! Three implementations exist: the kernel's, the host's (`crate::host`, std
//! threads, for `cargo test` and the benchmark) and the model checker's
//! (`crate::loom_platform`, under `--cfg loom`).
//!
//! # The kernel's contract
//!
//! The lock protocol in `vma_lock.rs` is only correct if the platform keeps
//! these promises. Each one names the code that relies on it.
//!
//! - **CPU identity** ([`Platform::cpu_id`], [`Platform::cpu_count`]): ids are
//!   dense, `cpu_id() < cpu_count() <= 64` (a `u64` is a cpumask). The id may
//!   be stale by the time it is used (the task can migrate); `mm` only uses it
//!   to pick a per-CPU counter and to mark a CPU in an address space's cpumask,
//!   both of which tolerate a stale id. The kernel must mark the CPU in
//!   [`crate::mm::Mm::cpumask`] (via `Mm::note_cpu`) before it first runs user
//!   code of that address space on that CPU, so a TLB shootdown reaches it.
//! - **Wait slot** ([`WaitSlot`], one per `Mm`, like Linux's `rcuwait`): at
//!   most one waiter at a time (the VMA writer, serialized by the `mmap_lock`
//!   write side). `wait_until(cond)` must publish the waiter *before* it
//!   re-tests `cond`, with a full (SeqCst) fence between the publication and
//!   the test; `wake_up()` starts with a full fence and then looks for a
//!   waiter. Callers change the state `cond` reads *before* calling
//!   `wake_up()`. Together this is the store-buffering pattern: either the
//!   waiter sees the new state, or the waker sees the waiter, so no wakeup is
//!   lost (`vma_refcount_put` relies on it). `wake_up()` must not sleep and may
//!   be called from an RCU read-side section; spurious wakeups are fine
//!   (`cond` is re-tested).
//! - **`mmap_lock`** ([`RwSemaphore`]): a sleeping reader/writer semaphore.
//!   Unlock has Release semantics and lock has Acquire semantics (everything
//!   done under a write lock is visible to the next holder). Writers must not
//!   starve: once a writer waits, new readers queue behind it. Not recursive.
//!   `downgrade` turns the caller's write hold into a read hold in one step:
//!   no writer may get the lock between the two (`Mm::unmap` relies on it:
//!   what it detached under write stays as it left it while it tears the
//!   page table down under read).
//! - **RCU** ([`Rcu`]): classic RCU. `call_rcu(f)` runs `f` only after every
//!   read-side section that began before the call has ended, with the ending
//!   of those sections happening-before `f` runs. `read_lock` may nest and
//!   must not sleep. `call_rcu` must not sleep (it is called with the
//!   `mmap_lock` held, and may be called inside a read-side section).
//! - **Frames** ([`Platform::alloc_frame`], [`Platform::free_frame`],
//!   [`Platform::frame_ptr`]): 4 KiB frames named by their physical address
//!   (4 KiB aligned, below 2^52 so it fits a page-table entry).
//!   `frame_ptr(pa)` is a pointer to the frame's 4096 bytes that stays valid
//!   until the frame is freed (the kernel's direct map). The contents of a new
//!   frame are unspecified; `mm` zeroes what it needs.
//! - **TLB shootdown** ([`Platform::tlb_shootdown`]): when it returns, no CPU
//!   in `cpus` (nor the calling CPU) still uses a translation for any address
//!   in `range` of the page table rooted at `root` (the physical address of
//!   the PML4), including cached upper-level (paging-structure) entries. `mm`
//!   frees frames and page-table pages only after it returns.
//! - **Lock annotations** ([`Platform::lock_event`]): one funnel for the
//!   lock-dependency checker. `mm` reports every acquire and release of the
//!   `mmap_lock` and of each VMA lock (read or write) from the task that does
//!   it; the checker may panic or report on an imbalance. The host counts per
//!   thread; the kernel feeds its lockdep (which also checks lock order:
//!   each `LockClass` is one lockdep class). It must not sleep.
//!
//! Every function here may be called concurrently from several CPUs.

use alloc::boxed::Box;
use core::ops::Range;

/// Read-copy-update, as `mm` uses it: lockless readers of the VMA tree, and
/// deferred freeing of what they might still be looking at.
pub trait Rcu {
    /// Held for the duration of a read-side critical section; dropping it ends
    /// the section. Must not be sent to another thread.
    type ReadGuard;

    /// Begin a read-side critical section (may nest).
    fn read_lock() -> Self::ReadGuard;

    /// Run `callback` once every read-side section that might have begun
    /// before this call has ended (after a grace period).
    fn call_rcu(callback: Box<dyn FnOnce() + Send>);

    /// Sleep until a full grace period has elapsed.
    fn synchronize();
}

/// A single-waiter wait slot (Linux's `rcuwait`). See the module docs for the
/// fence contract.
pub trait WaitSlot: Send + Sync {
    /// An empty slot.
    fn new() -> Self;
    /// Sleep until `cond()` returns true. `cond` is re-tested after the waiter
    /// is published and after every wakeup.
    fn wait_until(&self, cond: impl FnMut() -> bool);
    /// Wake the waiter, if any. The caller has already changed the state the
    /// waiter's `cond` reads.
    fn wake_up(&self);
}

/// A sleeping reader/writer semaphore (the `mmap_lock`). Writers must not
/// starve. Unlocks are explicit (kernel style) so a lock can be released on a
/// different path than it was taken; `Mm` wraps them in guards.
pub trait RwSemaphore: Send + Sync {
    /// An unlocked semaphore.
    fn new() -> Self;
    /// `#[track_caller]` (also for the unlocks and `lock_event`): the
    /// checker names the code in `mm` that took the lock, not the platform.
    #[track_caller]
    fn read_lock(&self);
    #[track_caller]
    fn read_unlock(&self);
    #[track_caller]
    fn write_lock(&self);
    #[track_caller]
    fn write_unlock(&self);
    /// Turn the caller's write hold into a read hold (Linux's
    /// `downgrade_write`), atomically: no writer gets in between, and
    /// readers waiting at the head of the queue may get in at once. The
    /// caller then releases with `read_unlock`.
    #[track_caller]
    fn downgrade(&self);
}

/// Which lock an annotation is about (lockdep's "lock class").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockClass {
    /// An address space's `mmap_lock`.
    MmapLock,
    /// A VMA's reference-count lock.
    VmaLock,
}

/// What happened to the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockOp {
    AcquireRead,
    AcquireWrite,
    /// A write hold becomes a read hold (the lock stays held).
    Downgrade,
    Release,
}

/// The host's and loom's annotation bookkeeping for [`LockOp::Downgrade`]:
/// turn the thread's write hold of `key` in `held` into a read hold.
#[cfg(any(loom, not(target_os = "none")))]
pub(crate) fn downgrade_held(
    held: &mut [(LockClass, usize, LockOp)],
    class: LockClass,
    key: usize,
) {
    let e = held
        .iter_mut()
        .rev()
        .find(|(c, k, _)| *c == class && *k == key)
        .unwrap_or_else(|| {
            panic!("downgrade of {class:?} {key:#x}, which this thread does not hold")
        });
    assert_eq!(e.2, LockOp::AcquireWrite, "downgrade of a read hold");
    e.2 = LockOp::AcquireRead;
}

/// Everything `mm` needs from the machine. `Platform: Rcu` so the same type
/// parameterizes the VMA tree.
pub trait Platform: Rcu + Sized + Send + Sync + 'static {
    /// The `rcuwait`-like slot a VMA writer sleeps on.
    type WaitSlot: WaitSlot;
    /// The `mmap_lock`.
    type RwSemaphore: RwSemaphore;

    /// The CPU this code runs on (may be stale at once; see module docs).
    fn cpu_id() -> usize;
    /// Number of CPUs, at most 64.
    fn cpu_count() -> usize;

    /// A 4 KiB frame (physical address), or `None` when memory is exhausted.
    fn alloc_frame() -> Option<u64>;
    /// Return a frame obtained from `alloc_frame`.
    fn free_frame(pa: u64);
    /// Return many frames at once (an unmap's): the kernel takes its frame
    /// allocator's lock once for all of them. The default frees one by one.
    fn free_frames(frames: &[u64]) {
        for &pa in frames {
            Self::free_frame(pa);
        }
    }
    /// The frame's 4096 bytes, valid until the frame is freed.
    fn frame_ptr(pa: u64) -> *mut u8;

    /// Zero a frame that no one else can see yet (a fresh frame for a fault
    /// or a new page table). A platform may override it with a faster way
    /// to clear a page.
    fn zero_frame(pa: u64) {
        // SAFETY: `frame_ptr` maps the frame's 4096 bytes; the caller owns
        // the frame until it publishes it.
        unsafe { core::ptr::write_bytes(Self::frame_ptr(pa), 0, crate::vma::PAGE_SIZE as usize) };
    }

    /// Invalidate translations of `range` in the page table rooted at `root`
    /// on every CPU in `cpus` (bit n = CPU n) and on the calling CPU, and wait
    /// until they are gone.
    fn tlb_shootdown(root: u64, cpus: u64, range: Range<u64>);

    /// Lock-dependency annotation: `op` on the lock of class `class` whose
    /// identity is `key` (its address).
    #[track_caller]
    fn lock_event(class: LockClass, key: usize, op: LockOp);

    /// Whether memory is so low that the kernel should not spend more of it
    /// on behalf of a process: `map`, `unmap` and `protect` then fail with
    /// `NoMemory` before they allocate VMAs or tree nodes (the kernel keeps a
    /// reserve for itself; see its frame allocator). The default: never.
    fn memory_low() -> bool {
        false
    }

    /// A fault-path event was counted on `cpu` (see `counters.rs`). The
    /// kernel keeps machine-wide per-CPU counters with it; the default does
    /// nothing.
    fn fault_event(_cpu: usize, _event: crate::counters::Event) {}

    /// The start of a timed phase (`phases.rs`): a cycle count, or 0 when
    /// timing is off. The default: off.
    #[inline(always)]
    fn phase_start() -> u64 {
        0
    }

    /// The end of a phase started at `start` (never 0). The default: nothing.
    #[inline(always)]
    fn phase_end(_phase: crate::phases::Phase, _start: u64) {}
}
