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
//! # Per-CPU caches
//! Every page fault takes a frame and every unmap gives many back; with one
//! lock for all CPUs, two CPUs faulting at once bounce it between them. So
//! each CPU keeps a small stack of free frames (Linux's per-CPU page lists),
//! behind its own lock, which only that CPU takes, except to drain it. An
//! allocation takes from it first; when it is empty, `CACHE_REFILL` frames
//! come from the shared pool in one lock hold; a free puts the frame on it,
//! and when it is full half of it goes back to the pool. Cached frames are
//! free: `free_count` counts them. Caches are used only while the pool is
//! well above the reserve (`CACHE_MIN_POOL`); near it, every allocation and
//! free goes to the pool, and an allocation the pool cannot serve first
//! drains every CPU's cache into it (Linux's `drain_all_pages`), so no frame
//! is stranded in another CPU's cache when memory runs out, and the reserve
//! check stays exact.
//!
//! # The kernel's reserve
//! Frames for user memory (a process's pages and page tables, its threads'
//! kernel stacks) come from [`alloc_user`], which fails once only the
//! *reserve* is left; the kernel's own allocations ([`alloc`]: heap growth,
//! kernel page tables, kernel stacks) may use the reserve. So a process that
//! touches more memory than the machine has runs out first and is ended (or
//! gets `ENOMEM`), while the kernel still has frames to clean up after it
//! and carry on (Linux's `min_free_kbytes` watermark plays the same role).

use core::sync::atomic::{AtomicUsize, Ordering};

use super::bootinfo::{E820_RAM, EarlyMemoryMap};
use super::{PAGE_SIZE, phys_to_virt};
use crate::arch::percpu::{self, MAX_CPUS};
use crate::sync::SpinLock;

const MAX_RANGES: usize = 64;
const NONE: u64 = u64::MAX;

struct Allocator {
    /// [next, end) of each RAM range still never handed out.
    ranges: [(u64, u64); MAX_RANGES],
    nranges: usize,
    /// The top chunk of freed frames (physical), NONE if none.
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

/// Frames a CPU's cache holds at most.
const CACHE_SIZE: usize = 64;
/// Frames a refill takes from the pool (and a full cache gives back).
const CACHE_REFILL: usize = CACHE_SIZE / 2;
/// Caches are used only while the pool has this many frames above the
/// reserve (more than any caller of `user_can_take` asks for).
const CACHE_MIN_POOL: usize = 4096;

struct Cache {
    frames: [u64; CACHE_SIZE],
    len: usize,
}

/// A CPU's cache, and its length for `free_count` to read without the lock.
#[repr(align(64))]
struct CpuCache(SpinLock<Cache>, AtomicUsize);

static CACHES: [CpuCache; MAX_CPUS] = [const {
    CpuCache(
        SpinLock::new(Cache {
            frames: [0; CACHE_SIZE],
            len: 0,
        }),
        AtomicUsize::new(0),
    )
}; MAX_CPUS];

/// The pool's free frames above the reserve, as last stored under `ALLOC`
/// (a hint for the fast paths; decisions near the reserve are made under
/// the lock). Relaxed: a hint.
static POOL_SPARE: AtomicUsize = AtomicUsize::new(0);

/// Run `f` on this CPU's cache. (If the task moves to another CPU before
/// it has the lock, it uses the old CPU's cache: correct, just not local.)
fn with_cache<R>(f: impl FnOnce(&mut Cache, &AtomicUsize) -> R) -> R {
    let c = &CACHES[percpu::cpu_id() % MAX_CPUS];
    f(&mut c.0.lock_irqsave(), &c.1)
}

/// Move every CPU's cached frames to the pool. Lock order: a cache, then
/// `ALLOC` (as in a refill).
fn drain_all() {
    for c in &CACHES {
        // Relaxed: a hint; a cache filled after this look is drained by
        // the next failure, and a refill needs a pool far from empty.
        if c.1.load(Ordering::Relaxed) == 0 {
            continue;
        }
        let mut cache = c.0.lock_irqsave();
        let mut a = ALLOC.lock_irqsave();
        while cache.len > 0 {
            cache.len -= 1;
            give(&mut a, cache.frames[cache.len]);
        }
        c.1.store(0, Ordering::Relaxed);
    }
}

fn caches_usable() -> bool {
    POOL_SPARE.load(Ordering::Relaxed) >= CACHE_MIN_POOL
}

/// A frame from this CPU's cache, refilled from the pool if empty; `None`
/// when caches are off (pool near the reserve) or the pool is empty.
fn cache_take() -> Option<u64> {
    if !caches_usable() {
        return None;
    }
    with_cache(|c, len| {
        if c.len == 0 {
            let mut a = ALLOC.lock_irqsave();
            while c.len < CACHE_REFILL && a.free > a.reserve + CACHE_MIN_POOL {
                let Some(pa) = take(&mut a) else { break };
                c.frames[c.len] = pa;
                c.len += 1;
            }
        }
        if c.len == 0 {
            return None;
        }
        c.len -= 1;
        // Relaxed: statistics for `free_count` (see `CpuCache`).
        len.store(c.len, Ordering::Relaxed);
        Some(c.frames[c.len])
    })
}

/// Put `pa` on this CPU's cache (half of a full one goes to the pool).
fn cache_put(pa: u64) {
    with_cache(|c, len| {
        if c.len == CACHE_SIZE {
            let mut a = ALLOC.lock_irqsave();
            while c.len > CACHE_SIZE - CACHE_REFILL {
                c.len -= 1;
                give(&mut a, c.frames[c.len]);
            }
        }
        c.frames[c.len] = pa;
        c.len += 1;
        // Relaxed: as in `cache_take`.
        len.store(c.len, Ordering::Relaxed);
    });
}

/// Frames in all CPUs' caches (a snapshot).
fn cached() -> usize {
    // Relaxed: statistics, exact when no CPU is allocating.
    CACHES.iter().map(|c| c.1.load(Ordering::Relaxed)).sum()
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
    POOL_SPARE.store(a.free.saturating_sub(a.reserve), Ordering::Relaxed);
}

/// Highest RAM address + 1 (the direct map must cover it).
pub fn max_phys() -> u64 {
    ALLOC.lock_irqsave().max_phys
}

/// A frame for the kernel itself; may use the reserve. `None` only when
/// memory is exhausted.
pub fn alloc() -> Option<u64> {
    if let Some(pa) = cache_take() {
        return Some(pa);
    }
    if let Some(pa) = take(&mut ALLOC.lock_irqsave()) {
        return Some(pa);
    }
    drain_all();
    take(&mut ALLOC.lock_irqsave())
}

/// A frame for user memory (on behalf of a process): `None` once only the
/// reserve is left.
pub fn alloc_user() -> Option<u64> {
    // The cache is on only while the pool is far above the reserve.
    if let Some(pa) = cache_take() {
        return Some(pa);
    }
    let mut a = ALLOC.lock_irqsave();
    if a.free <= a.reserve {
        // Frames may sit in CPUs' caches (filled while memory was plenty).
        drop(a);
        drain_all();
        a = ALLOC.lock_irqsave();
        if a.free <= a.reserve {
            return None;
        }
    }
    take(&mut a)
}

/// Whether `n` more frames could be had by `alloc_user` now (a snapshot;
/// for callers that take several frames through `alloc` on behalf of a
/// process, such as a user thread's kernel stack).
pub fn user_can_take(n: usize) -> bool {
    let a = ALLOC.lock_irqsave();
    a.free + cached() >= a.reserve + n
}

/// Frames kept back for the kernel.
pub fn reserve_count() -> usize {
    ALLOC.lock_irqsave().reserve
}

/// Frame addresses a chunk lists: the rest of its page after its header.
const CHUNK_ENTRIES: usize = (PAGE_SIZE as usize / 8) - 2;

/// A frame on the freed stack that lists others (see the module docs).
#[repr(C)]
struct Chunk {
    /// The chunk below this one, NONE if none.
    next: u64,
    len: u64,
    entries: [u64; CHUNK_ENTRIES],
}

const _: () = assert!(core::mem::size_of::<Chunk>() == PAGE_SIZE as usize);

/// The chunk at `pa`.
///
/// # Safety
/// `pa` is a chunk on the freed stack of the locked allocator the caller
/// borrows (`&mut Allocator`): free, direct-mapped, and touched by nobody
/// else while the lock is held.
unsafe fn chunk<'a>(pa: u64) -> &'a mut Chunk {
    // SAFETY: the caller's contract; a frame is page-aligned, so aligned for
    // a `Chunk`.
    unsafe { &mut *(phys_to_virt(pa) as *mut Chunk) }
}

fn take(a: &mut Allocator) -> Option<u64> {
    let pa = if a.freed != NONE {
        // SAFETY: `freed` is the top chunk, and we hold the allocator.
        let top = unsafe { chunk(a.freed) };
        if top.len > 0 {
            top.len -= 1;
            top.entries[top.len as usize]
        } else {
            // An empty chunk is a free frame like the ones it listed.
            let pa = a.freed;
            a.freed = top.next;
            pa
        }
    } else {
        let n = a.nranges;
        let r = a.ranges[..n].iter_mut().find(|r| r.0 < r.1)?;
        let pa = r.0;
        r.0 += PAGE_SIZE;
        pa
    };
    a.free -= 1;
    POOL_SPARE.store(a.free.saturating_sub(a.reserve), Ordering::Relaxed);
    Some(pa)
}

/// List `pa` in the top chunk; false if there is none or it is full.
fn push_entry(a: &mut Allocator, pa: u64) -> bool {
    if a.freed == NONE {
        return false;
    }
    // SAFETY: `freed` is the top chunk, and we hold the allocator.
    let top = unsafe { chunk(a.freed) };
    if top.len as usize == CHUNK_ENTRIES {
        return false;
    }
    top.entries[top.len as usize] = pa;
    top.len += 1;
    true
}

/// Put `pa` back in the pool.
fn give(a: &mut Allocator, pa: u64) {
    assert!(pa < a.max_phys, "freeing a frame {pa:#x} beyond RAM");
    if !push_entry(a, pa) {
        // SAFETY: `pa` is being given back (the caller's contract), so it is
        // ours to turn into the new top chunk; we hold the allocator.
        let new = unsafe { chunk(pa) };
        new.next = a.freed;
        new.len = 0;
        a.freed = pa;
    }
    a.free += 1;
    POOL_SPARE.store(a.free.saturating_sub(a.reserve), Ordering::Relaxed);
    assert!(
        a.free <= a.total,
        "more frames freed than exist (double free of {pa:#x}?)"
    );
}

pub fn alloc_zeroed() -> Option<u64> {
    let pa = alloc()?;
    // SAFETY: the frame was just allocated to us and is direct-mapped.
    unsafe { super::clear_page(phys_to_virt(pa)) };
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

/// Return frames, each from `alloc` and unused: the first ones to this
/// CPU's cache, the rest to the pool, taking its lock once per
/// `FREE_BATCH` of them.
pub fn free_many(frames: &[u64]) {
    for &pa in frames {
        assert!(
            pa.is_multiple_of(PAGE_SIZE) && pa >= 0x10_0000,
            "freeing a bad frame address {pa:#x}"
        );
    }
    let mut rest = frames;
    if caches_usable() {
        let n = frames.len().min(CACHE_REFILL);
        for &pa in &frames[..n] {
            cache_put(pa);
        }
        rest = &frames[n..];
    }
    for batch in rest.chunks(FREE_BATCH) {
        let mut a = ALLOC.lock_irqsave();
        for &pa in batch {
            give(&mut a, pa);
        }
    }
}

pub fn free_count() -> usize {
    ALLOC.lock_irqsave().free + cached()
}

pub fn total_count() -> usize {
    ALLOC.lock_irqsave().total
}
