//! The kernel's side of the `mm` crate's platform contract
//! (`mm/src/platform.rs` says what each function must guarantee).
//!
//! This file is the whole boundary: `mm` reaches CPUs, sleeping, RCU,
//! frames, TLBs and lockdep only through `Kernel`.

use alloc::boxed::Box;
use core::ops::Range;
use core::panic::Location;
use core::sync::atomic::{AtomicU64, Ordering, fence};

use mm::counters::Event;
use mm::platform::{LockClass, LockOp, Platform, Rcu, RwSemaphore, WaitSlot};

use crate::arch::percpu::{self, MAX_CPUS};
use crate::arch::{cpu, smp};
use crate::lockdep::{self, LockMap};
use crate::memory::{frame, heap, phys_to_virt};
use crate::rcu;
use crate::sync::{RcuWait, RwSem};

mod counters;
pub mod phases;

pub use counters::{count_segv, fault_counters, fault_counters_total};

/// The platform type every kernel address space is parameterized with.
pub struct Kernel;

impl Rcu for Kernel {
    type ReadGuard = rcu::RcuReadGuard;

    fn read_lock() -> Self::ReadGuard {
        rcu::read_lock()
    }

    fn call_rcu(callback: Box<dyn FnOnce() + Send>) {
        rcu::call_rcu(callback);
    }

    fn synchronize() {
        rcu::synchronize_rcu();
    }
}

pub struct Slot(RcuWait);

impl WaitSlot for Slot {
    fn new() -> Self {
        Slot(RcuWait::new())
    }

    fn wait_until(&self, cond: impl FnMut() -> bool) {
        self.0.wait_until(cond);
    }

    fn wake_up(&self) {
        self.0.wake_up();
    }
}

pub struct MmapLock(RwSem);

impl RwSemaphore for MmapLock {
    fn new() -> Self {
        // Every address space's mmap_lock is one lockdep class.
        MmapLock(RwSem::named("mmap_lock"))
    }
    #[track_caller]
    fn read_lock(&self) {
        self.0.read_lock();
    }
    #[track_caller]
    fn read_unlock(&self) {
        self.0.read_unlock();
    }
    #[track_caller]
    fn write_lock(&self) {
        self.0.write_lock();
    }
    #[track_caller]
    fn write_unlock(&self) {
        self.0.write_unlock();
    }
    #[track_caller]
    fn downgrade(&self) {
        self.0.downgrade();
    }
}

/// The page table each CPU has loaded (the root's physical address), as
/// `note_loaded_root` last recorded it: a shootdown skips CPUs running
/// another table.
static LOADED_ROOT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Record that this CPU (`cpu`) is about to load the table at `root`. Call
/// it *before* the CR3 write. Without PCIDs a CR3 write drops every
/// translation of the previous table, so a CPU whose recorded root is not a
/// table's holds none of its translations once its CR3 write is done, and
/// until then it is in the scheduler, using no user address.
///
/// The SeqCst fence pairs with the one in `Mm::cpus_to_flush` (store
/// buffering, as `Mm::note_cpu`): either a shootdown that changed entries
/// of `root` reads our store and sends us an IPI, or our table walks after
/// the CR3 write see its new entries.
pub fn note_loaded_root(cpu: usize, root: u64) {
    LOADED_ROOT[cpu % MAX_CPUS].store(root, Ordering::Relaxed);
    fence(Ordering::SeqCst);
}

/// The CPUs of `cpus` whose loaded table is `root`.
fn running_root(cpus: u64, root: u64) -> u64 {
    (0..MAX_CPUS)
        .filter(|&c| cpus & (1 << c) != 0)
        // Relaxed: ordered by the caller's fence in `Mm::cpus_to_flush`
        // (see `note_loaded_root`).
        .filter(|&c| LOADED_ROOT[c].load(Ordering::Relaxed) == root)
        .fold(0, |m, c| m | (1 << c))
}

/// The lockdep class of every VMA's lock (read and write annotations).
static VMA_LOCK_CLASS: LockMap = LockMap::new("vma_lock");

/// Flush `range` from this CPU's TLB if it is running the table at `root`.
/// (Without PCIDs a CPU that switched to another table kept no entries of
/// this one.) Many pages: one CR3 reload is cheaper than many `invlpg`s.
fn flush_local(root: u64, range: &Range<u64>) {
    if cpu::read_cr3() & !0xFFF != root {
        return;
    }
    let pages = (range.end - range.start) / 4096;
    if pages > 32 {
        crate::memory::paging::flush_tlb_local();
    } else {
        let mut va = range.start;
        while va < range.end {
            cpu::invlpg(va);
            va += 4096;
        }
    }
}

impl Platform for Kernel {
    type WaitSlot = Slot;
    type RwSemaphore = MmapLock;

    fn cpu_id() -> usize {
        percpu::cpu_id()
    }

    fn cpu_count() -> usize {
        // Ids are dense from 0; the MADT order gives every CPU an id below
        // the number started.
        percpu::online_count().max(1)
    }

    fn alloc_frame() -> Option<u64> {
        // Every frame `mm` asks for is user memory (a process's pages and
        // page tables): it must not eat into the kernel's reserve.
        frame::alloc_user()
    }

    fn free_frame(pa: u64) {
        frame::free(pa);
    }

    fn free_frames(frames: &[u64]) {
        frame::free_many(frames);
    }

    fn memory_low() -> bool {
        // VMAs and tree nodes come from the kernel heap, which may grow into
        // the frame reserve: refuse new ones once user memory has run out
        // (with a margin of one heap growth step and the page tables that map
        // it), so a process cannot spend the reserve on mappings.
        !frame::user_can_take(heap::GROW_MIN_FRAMES + heap::GROW_TABLE_FRAMES)
    }

    fn frame_ptr(pa: u64) -> *mut u8 {
        phys_to_virt(pa)
    }

    fn zero_frame(pa: u64) {
        // SAFETY: the direct map covers every frame, page-aligned; the
        // caller owns the frame until it publishes it (the trait's contract).
        unsafe { crate::memory::clear_page(phys_to_virt(pa)) };
    }

    fn tlb_shootdown(root: u64, cpus: u64, range: Range<u64>) {
        // `cpus` comes from `Mm::cpus_to_flush`, read after a full fence that
        // pairs with the one in `Mm::note_cpu`: a CPU missing from it loads
        // the table only after the entries changed. Of those, only CPUs that
        // have this table loaded now can hold its translations (see
        // `note_loaded_root`, whose fence the same one pairs with): an idle
        // CPU, or one running another process, is not interrupted (Linux
        // skips CPUs not running the mm the same way). One round of IPIs for
        // the whole operation (mm batches per call).
        let me = percpu::cpu_id();
        let targets = running_root(cpus & smp::online_mask(), root);
        smp::call_on_cpus(targets | (1 << me), &|| flush_local(root, &range));
    }

    #[track_caller]
    fn lock_event(class: LockClass, key: usize, op: LockOp) {
        // The mmap_lock is a `RwSem`, which annotates itself (with the same
        // acquire and release points); only the VMA lock needs this funnel.
        if class == LockClass::MmapLock {
            return;
        }
        let site = Location::caller();
        match op {
            LockOp::AcquireRead => lockdep::acquire(&VMA_LOCK_CLASS, key, site, true),
            LockOp::AcquireWrite => lockdep::acquire(&VMA_LOCK_CLASS, key, site, false),
            LockOp::Release => lockdep::release(key, site),
            LockOp::Downgrade => unreachable!("only the mmap_lock is downgraded"),
        }
    }

    fn fault_event(cpu: usize, event: Event) {
        counters::record(cpu, event);
    }

    #[inline(always)]
    fn phase_start() -> u64 {
        phases::start()
    }

    fn phase_end(phase: mm::phases::Phase, start: u64) {
        phases::end(phase, start);
    }
}
