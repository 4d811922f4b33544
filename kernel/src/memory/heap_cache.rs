//! Per-CPU caches of small heap blocks, in front of the slabs.
//!
//! Most kernel allocations are small and of a few sizes that come and go at
//! a high rate (range-tree nodes, VMAs, the vectors and boxed callbacks of
//! one `mmap`). Each size class from 16 to 1024 bytes has its slabs
//! (`slab.rs`, one lock per class), and each CPU keeps, per class, a short
//! stack of free objects in front of them, linked through their first word
//! (Linux's per-CPU slab freelists, simplified): an allocation or free that
//! the stack can serve takes no lock at all. An allocation that finds the
//! stack empty refills half of it from the slabs, and a free that finds it
//! full sends half of it back, each in one lock hold (Linux SLAB's
//! `batchcount`). The classes are spaced like `kmalloc`'s (16-byte steps
//! at first, then about 1.25x), so rounding a request up wastes little.
//! Requests bigger than the largest class, or aligned beyond what a class
//! guarantees, go to the first-fit heap.
//!
//! A stack belongs to one CPU and is touched only with interrupts off on
//! that CPU (an interrupt handler may allocate), so it needs no lock. An
//! object freed on another CPU than the one that allocated it simply joins
//! that CPU's stack. `heap::used` leaves cached objects out: they are free
//! memory.

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::slab::{self, Chain};
use crate::arch::cpu;
use crate::arch::percpu::{self, MAX_CPUS};

/// The block sizes, in bytes. (A range-tree node is a little over 512
/// bytes, a VMA 40.)
const SIZES: [usize; CLASSES] = [
    16, 32, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 448, 512, 576, 640, 768, 1024,
];
pub const CLASSES: usize = 18;
/// The class of each size in 16-byte steps: `CLASS_OF[(size + 15) / 16]`.
const CLASS_OF: [u8; 65] = {
    let mut t = [0u8; 65];
    let (mut i, mut c) = (0, 0);
    while i < 65 {
        while SIZES[c] < i * 16 {
            c += 1;
        }
        t[i] = c as u8;
        i += 1;
    }
    t
};
/// Objects a CPU keeps per class: 32, but at most 16 KiB worth (28 range-tree
/// nodes, 16 blocks of 1 KiB; about 130 KiB per CPU in all if every class
/// filled up, much less in practice). A refill or a flush moves half of
/// that, so one lock hold serves many allocations or frees.
const fn depth(class: usize) -> usize {
    let n = 16384 / SIZES[class];
    if n < 32 { n } else { 32 }
}
/// Objects a refill takes from the slabs, or a flush gives back.
const fn batch(class: usize) -> usize {
    depth(class).div_ceil(2)
}
/// The alignment a class's blocks have: the largest power of two dividing
/// its size, up to this.
const MAX_ALIGN: usize = 64;

#[repr(align(64))]
struct CpuCache(UnsafeCell<[Chain; CLASSES]>, AtomicUsize);

// SAFETY: each CPU's cache is touched only by that CPU with interrupts off
// (see `with_stack`), so there is never concurrent access.
unsafe impl Sync for CpuCache {}

static CACHES: [CpuCache; MAX_CPUS] = [const {
    CpuCache(
        UnsafeCell::new([const { Chain::EMPTY }; CLASSES]),
        AtomicUsize::new(0),
    )
}; MAX_CPUS];

/// Bytes held in all CPUs' stacks (a snapshot).
pub fn cached_bytes() -> usize {
    // Relaxed: statistics; each CPU writes only its own counter.
    CACHES.iter().map(|c| c.1.load(Ordering::Relaxed)).sum()
}

/// The class of `layout`, or `None` when it has none (too big, or aligned
/// beyond what a class guarantees).
pub fn class_of(layout: Layout) -> Option<usize> {
    let class = *CLASS_OF.get(layout.size().div_ceil(16))? as usize;
    let align = (1 << SIZES[class].trailing_zeros()).min(MAX_ALIGN);
    (layout.align() <= align).then_some(class)
}

/// The bytes of `class`'s objects.
pub fn size_of_class(class: usize) -> usize {
    SIZES[class]
}

/// Run `f` on this CPU's stack of `class`, with interrupts off.
fn with_stack<R>(class: usize, f: impl FnOnce(&mut Chain, &AtomicUsize) -> R) -> R {
    let was = cpu::irq_save();
    let cache = &CACHES[percpu::cpu_id() % MAX_CPUS];
    // SAFETY: this CPU's cache, interrupts off: nothing else can reach it
    // until we restore them (see `CpuCache`).
    let r = f(unsafe { &mut (*cache.0.get())[class] }, &cache.1);
    cpu::irq_restore(was);
    r
}

/// Count `n` more bytes in this CPU's cache. Only this CPU writes its
/// count, with interrupts off, so a plain load and store do (no locked
/// read-modify-write on the fast path). Relaxed: statistics, read by
/// `cached_bytes`.
fn add(bytes: &AtomicUsize, n: usize) {
    bytes.store(bytes.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

fn sub(bytes: &AtomicUsize, n: usize) {
    bytes.store(bytes.load(Ordering::Relaxed) - n, Ordering::Relaxed);
}

/// An object of `class`; null only if the heap is out of memory.
pub fn alloc(class: usize) -> *mut u8 {
    with_stack(class, |stack, bytes| {
        let size = SIZES[class];
        if stack.len == 0 {
            *stack = slab::take(class, size, batch(class));
            add(bytes, stack.len * size);
        }
        let p = stack.pop();
        if !p.is_null() {
            sub(bytes, size);
        }
        p
    })
}

/// Free `obj`, an object of `class`.
///
/// # Safety
/// `obj` came from `alloc(class)` and is no longer used.
pub unsafe fn free(class: usize, obj: *mut u8) {
    with_stack(class, |stack, bytes| {
        let size = SIZES[class];
        if stack.len == depth(class) {
            let mut flush = Chain::EMPTY;
            while flush.len < batch(class) {
                // SAFETY: a free object of our stack, moved to `flush`.
                unsafe { flush.push(stack.pop()) };
            }
            sub(bytes, flush.len * size);
            // SAFETY: objects of `class` from our stack: free, each once.
            unsafe { slab::give(class, size, flush) };
        }
        // SAFETY: the caller is done with `obj`, an object of `class`.
        unsafe { stack.push(obj) };
        add(bytes, size);
    })
}

/// The slabs' line per class for the `phases=on` report.
pub fn report() {
    slab::report(&SIZES);
}
