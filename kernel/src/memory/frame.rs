//! The physical frame allocator.
//!
//! Free memory is kept two ways: the usable RAM ranges from the boot memory
//! map, handed out from their low end (so boot-time allocations, such as the
//! page tables the APs' trampoline needs, come from low memory), and a stack
//! of frames that were freed, linked through their own first word (reached
//! through the direct map). Nothing touches a frame until it is first used,
//! so a large guest does not make QEMU allocate all its memory at boot.
//!
//! `free_count()` is exact at every moment: leak checks in the tests compare
//! it before and after.
//!
//! # The kernel's reserve
//! Frames for user memory (a process's pages and page tables, its threads'
//! kernel stacks) come from [`alloc_user`], which fails once only the
//! *reserve* is left; the kernel's own allocations ([`alloc`]: heap growth,
//! kernel page tables, kernel stacks) may use the reserve. So a process that
//! touches more memory than the machine has runs out first and is ended (or
//! gets `ENOMEM`), while the kernel still has frames to clean up after it
//! and carry on (Linux's `min_free_kbytes` watermark plays the same role).

use super::bootinfo::{E820_RAM, EarlyMemoryMap};
use super::{PAGE_SIZE, phys_to_virt};
use crate::sync::SpinLock;

const MAX_RANGES: usize = 64;
const NONE: u64 = u64::MAX;

struct Allocator {
    /// [next, end) of each RAM range still never handed out.
    ranges: [(u64, u64); MAX_RANGES],
    nranges: usize,
    /// Head of the stack of freed frames (physical), NONE if empty.
    freed: u64,
    free: usize,
    total: usize,
    /// Frames `alloc_user` leaves for the kernel (see the module docs).
    reserve: usize,
    max_phys: u64,
}

/// The reserve: 1/16 of memory, at least 2 MiB and at most 64 MiB. Enough
/// for the heap, the page tables and the stacks the kernel needs while it
/// ends a process that ran out (and frees the process's frames).
fn reserve_for(total: usize) -> usize {
    (total / 16).clamp(512, 16384)
}

static ALLOC: SpinLock<Allocator> = SpinLock::new(Allocator {
    ranges: [(0, 0); MAX_RANGES],
    nranges: 0,
    freed: NONE,
    free: 0,
    total: 0,
    reserve: 0,
    max_phys: 0,
});

/// Take every RAM range above 1 MiB, minus the kernel image.
pub fn init(map: &EarlyMemoryMap, kernel_end_phys: u64) {
    let mut a = ALLOC.lock_irqsave();
    for r in &map.regions[..map.len] {
        if r.kind != E820_RAM {
            continue;
        }
        let end = (r.addr + r.size) & !(PAGE_SIZE - 1);
        a.max_phys = a.max_phys.max(end);
        // Below 1 MiB: BIOS data, the AP trampoline, the boot info. Then the
        // kernel image itself.
        let start = r
            .addr
            .max(0x10_0000)
            .max(kernel_end_phys)
            .next_multiple_of(PAGE_SIZE);
        if start >= end {
            continue;
        }
        assert!(a.nranges < MAX_RANGES, "too many memory ranges");
        let n = a.nranges;
        a.ranges[n] = (start, end);
        a.nranges += 1;
        let frames = ((end - start) / PAGE_SIZE) as usize;
        a.free += frames;
        a.total += frames;
    }
    let n = a.nranges;
    a.ranges[..n].sort_unstable_by_key(|r| r.0);
    a.reserve = reserve_for(a.total);
}

/// Highest RAM address + 1 (the direct map must cover it).
pub fn max_phys() -> u64 {
    ALLOC.lock_irqsave().max_phys
}

/// A frame for the kernel itself; may use the reserve. `None` only when
/// memory is exhausted.
pub fn alloc() -> Option<u64> {
    take(&mut ALLOC.lock_irqsave())
}

/// A frame for user memory (on behalf of a process): `None` once only the
/// reserve is left.
pub fn alloc_user() -> Option<u64> {
    let mut a = ALLOC.lock_irqsave();
    if a.free <= a.reserve {
        return None;
    }
    take(&mut a)
}

/// Whether `n` more frames could be had by `alloc_user` now (a snapshot;
/// for callers that take several frames through `alloc` on behalf of a
/// process, such as a user thread's kernel stack).
pub fn user_can_take(n: usize) -> bool {
    let a = ALLOC.lock_irqsave();
    a.free >= a.reserve + n
}

/// Frames kept back for the kernel.
pub fn reserve_count() -> usize {
    ALLOC.lock_irqsave().reserve
}

fn take(a: &mut Allocator) -> Option<u64> {
    let pa = if a.freed != NONE {
        let pa = a.freed;
        // SAFETY: a freed frame is ours and direct-mapped; its first word holds
        // the next free frame, written by `free`.
        a.freed = unsafe { *(phys_to_virt(pa) as *const u64) };
        pa
    } else {
        let n = a.nranges;
        let r = a.ranges[..n].iter_mut().find(|r| r.0 < r.1)?;
        let pa = r.0;
        r.0 += PAGE_SIZE;
        pa
    };
    a.free -= 1;
    Some(pa)
}

pub fn alloc_zeroed() -> Option<u64> {
    let pa = alloc()?;
    // SAFETY: the frame was just allocated to us and is direct-mapped.
    unsafe { core::ptr::write_bytes(phys_to_virt(pa), 0, PAGE_SIZE as usize) };
    Some(pa)
}

/// Return a frame. It must have come from `alloc` and be unused.
pub fn free(pa: u64) {
    free_many(&[pa]);
}

/// How many frames `free_many` gives back per lock hold: long enough to
/// amortize the lock, short enough that interrupts are not held off for
/// long (an unmap of 8 MiB frees 2048).
const FREE_BATCH: usize = 64;

/// Return frames, each from `alloc` and unused, taking the lock once per
/// `FREE_BATCH` of them.
pub fn free_many(frames: &[u64]) {
    for batch in frames.chunks(FREE_BATCH) {
        for &pa in batch {
            assert!(
                pa.is_multiple_of(PAGE_SIZE) && pa >= 0x10_0000,
                "freeing a bad frame address {pa:#x}"
            );
        }
        let mut a = ALLOC.lock_irqsave();
        for &pa in batch {
            assert!(pa < a.max_phys, "freeing a frame {pa:#x} beyond RAM");
            // SAFETY: the caller gives the frame back, so we may write its
            // first word.
            unsafe { *(phys_to_virt(pa) as *mut u64) = a.freed };
            a.freed = pa;
            a.free += 1;
            assert!(
                a.free <= a.total,
                "more frames freed than exist (double free of {pa:#x}?)"
            );
        }
    }
}

pub fn free_count() -> usize {
    ALLOC.lock_irqsave().free
}

pub fn total_count() -> usize {
    ALLOC.lock_irqsave().total
}
