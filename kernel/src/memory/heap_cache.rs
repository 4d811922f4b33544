//! Per-CPU caches of small heap blocks, in front of the first-fit heap.
//!
//! `linked_list_allocator` walks one free list behind one lock for every
//! allocation and every free. Most kernel allocations are small and of a
//! few sizes that come and go at a high rate (range-tree nodes, VMAs, the
//! vectors and boxed callbacks of one `mmap`), so each CPU keeps, per size
//! class from 16 to 1024 bytes, a short stack of freed blocks of exactly
//! that size, linked through their first word (Linux's per-CPU slab
//! freelists, simplified). The classes are spaced like `kmalloc`'s (16-byte
//! steps at first, then about 1.25x), so rounding a request up wastes
//! little: the heap grows no faster than without the caches. An allocation that finds its stack empty, and a
//! free that finds it full, go to the heap as before, always with the
//! class's size and alignment, so any block in a stack fits any request of
//! its class.
//!
//! A stack belongs to one CPU and is touched only with interrupts off on
//! that CPU (an interrupt handler may allocate), so it needs no lock. A block
//! freed on another CPU than the one that allocated it simply joins that
//! CPU's stack. `heap::used` leaves cached blocks out: they are free
//! memory.

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::arch::cpu;
use crate::arch::percpu::{self, MAX_CPUS};

/// The block sizes, in bytes. (A range-tree node is a little over 512
/// bytes, a VMA 40.)
const SIZES: [usize; CLASSES] = [
    16, 32, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 448, 512, 576, 640, 768, 1024,
];
const CLASSES: usize = 18;
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
/// Blocks a CPU keeps per class: 32, but at most 16 KiB worth (28 range-tree
/// nodes, 16 blocks of 1 KiB; about 130 KiB per CPU in all if every class
/// filled up, much less in practice). The big classes need the depth: RCU
/// frees the tree nodes an `mmap` writer retired in a batch per grace period
/// (about ten at a time in `writerbench`), and with 7 per CPU (the old 4 KiB
/// bound) most of each batch, and so most node allocations after it, went
/// through the first-fit heap.
const fn depth(class: usize) -> usize {
    let n = 16384 / SIZES[class];
    if n < 32 { n } else { 32 }
}
/// The alignment a class's blocks have: the largest power of two dividing
/// its size, up to this.
const MAX_ALIGN: usize = 64;

struct Stack {
    head: *mut u8,
    len: usize,
}

#[repr(align(64))]
struct CpuCache(UnsafeCell<[Stack; CLASSES]>, AtomicUsize);

// SAFETY: each CPU's cache is touched only by that CPU with interrupts off
// (see `with_stack`), so there is never concurrent access.
unsafe impl Sync for CpuCache {}

static CACHES: [CpuCache; MAX_CPUS] = [const {
    CpuCache(
        UnsafeCell::new(
            [const {
                Stack {
                    head: ptr::null_mut(),
                    len: 0,
                }
            }; CLASSES],
        ),
        AtomicUsize::new(0),
    )
}; MAX_CPUS];

/// Bytes held in all CPUs' stacks (a snapshot).
pub fn cached_bytes() -> usize {
    // Relaxed: statistics; each CPU writes only its own counter.
    CACHES.iter().map(|c| c.1.load(Ordering::Relaxed)).sum()
}

/// The class of `layout` and the layout its blocks have, or `None` when it
/// is not cached (too big, or aligned beyond what a class guarantees).
pub fn class_of(layout: Layout) -> Option<(usize, Layout)> {
    let class = *CLASS_OF.get(layout.size().div_ceil(16))? as usize;
    let size = SIZES[class];
    let align = (1 << size.trailing_zeros()).min(MAX_ALIGN);
    if layout.align() > align {
        return None;
    }
    // Cannot fail: a multiple of 16 up to 1024, aligned to a power of two.
    Layout::from_size_align(size, align)
        .ok()
        .map(|l| (class, l))
}

/// Run `f` on this CPU's stack of `class`, with interrupts off.
fn with_stack<R>(class: usize, f: impl FnOnce(&mut Stack, &AtomicUsize) -> R) -> R {
    let was = cpu::irq_save();
    let cache = &CACHES[percpu::cpu_id() % MAX_CPUS];
    // SAFETY: this CPU's cache, interrupts off: nothing else can reach it
    // until we restore them (see `CpuCache`).
    let r = f(unsafe { &mut (*cache.0.get())[class] }, &cache.1);
    cpu::irq_restore(was);
    r
}

/// A cached block of `class`, or null.
pub fn pop(class: usize) -> *mut u8 {
    with_stack(class, |s, bytes| {
        let p = s.head;
        if !p.is_null() {
            // SAFETY: a block on the stack is free memory of at least 16
            // bytes whose first word `push` wrote.
            s.head = unsafe { *(p as *const *mut u8) };
            s.len -= 1;
            // Relaxed: statistics (see `cached_bytes`).
            bytes.fetch_sub(SIZES[class], Ordering::Relaxed);
        }
        p
    })
}

/// Keep `block` of `class`; false if the stack is full (the caller frees it).
///
/// # Safety
/// `block` is a free block of the class's layout, no longer used.
pub unsafe fn push(class: usize, block: *mut u8) -> bool {
    with_stack(class, |s, bytes| {
        if s.len == depth(class) {
            return false;
        }
        // Relaxed: statistics (see `cached_bytes`).
        bytes.fetch_add(SIZES[class], Ordering::Relaxed);
        // SAFETY: the block is ours (caller) and at least 16 bytes, aligned.
        unsafe { *(block as *mut *mut u8) = s.head };
        s.head = block;
        s.len += 1;
        true
    })
}
