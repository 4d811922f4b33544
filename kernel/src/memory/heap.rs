//! The kernel heap: `linked_list_allocator` over a virtual region that grows
//! on demand, a page at a time from the frame allocator. Small blocks come
//! from slabs carved out of it (`slab.rs`), with per-CPU caches in front
//! (`heap_cache.rs`); only bigger ones are placed first-fit.
//!
//! The heap lock disables interrupts, so an allocation in an interrupt
//! handler cannot deadlock against the same CPU's allocation it interrupted.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use mm::phases::Phase;

use x86_64::structures::paging::PageTableFlags;

use super::paging;
use super::{HEAP_BASE, PAGE_SIZE, frame, heap_cache, slab};
use crate::sync::SpinLock;

type PhaseTimer = mm::phases::Timer<crate::mm_platform::Kernel>;

const INITIAL_SIZE: u64 = 1 << 20;
const GROW_MIN: u64 = 1 << 20;
/// The frames one growth step of the heap takes at least.
pub const GROW_MIN_FRAMES: usize = (GROW_MIN / PAGE_SIZE) as usize;
/// The page-table frames mapping one such step may add besides: a 1 MiB
/// step spans at most two last-level tables, plus one new table at each
/// level above.
pub const GROW_TABLE_FRAMES: usize = 4;
const HEAP_LIMIT: u64 = 64 << 30;

struct KernelHeap {
    heap: Heap,
    mapped_end: u64,
}

pub struct LockedHeap(SpinLock<KernelHeap>);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap(SpinLock::new(KernelHeap {
    heap: Heap::empty(),
    mapped_end: HEAP_BASE,
}));

/// Map `bytes` more at the end of the heap region. False if out of frames.
fn map_more(h: &mut KernelHeap, bytes: u64) -> bool {
    let end = h.mapped_end + bytes.next_multiple_of(PAGE_SIZE);
    if end > HEAP_BASE + HEAP_LIMIT {
        return false;
    }
    while h.mapped_end < end {
        let Some(pa) = frame::alloc() else {
            return false;
        };
        let flags = PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
        if !paging::map_4k(h.mapped_end, pa, flags) {
            frame::free(pa);
            return false;
        }
        h.mapped_end += PAGE_SIZE;
    }
    true
}

pub fn init() {
    let mut h = HEAP.0.lock_irqsave();
    assert!(
        map_more(&mut h, INITIAL_SIZE),
        "no memory for the kernel heap"
    );
    // SAFETY: [HEAP_BASE, HEAP_BASE + INITIAL_SIZE) was just mapped for the
    // heap alone and is never used for anything else.
    unsafe { h.heap.init(HEAP_BASE as *mut u8, INITIAL_SIZE as usize) };
}

/// Frames the heap has taken from the frame allocator (it never gives back).
pub fn mapped_frames() -> usize {
    ((HEAP.0.lock_irqsave().mapped_end - HEAP_BASE) / PAGE_SIZE) as usize
}

/// The heap's size and the bytes mapped for it, read together: they differ
/// only if a growth step lost pages it had mapped.
pub fn size_and_mapped() -> (usize, usize) {
    let h = HEAP.0.lock_irqsave();
    (h.heap.size(), (h.mapped_end - HEAP_BASE) as usize)
}

/// Bytes currently in use by allocations: the first-fit heap's blocks but
/// the slabs, plus the objects out of slabs, rounded up to their class,
/// but those waiting in the per-CPU caches (free, not in use). Room in the
/// slabs that no object uses counts as free too.
pub fn used() -> usize {
    let heap = HEAP.0.lock_irqsave().heap.used();
    (heap + slab::out_bytes())
        .saturating_sub(slab::slab_bytes())
        .saturating_sub(heap_cache::cached_bytes())
}

/// What the slabs of one size class hold (see `slab_counts`).
pub struct SlabCounts {
    /// Bytes of the blocks (the request rounded up to its class).
    pub size: usize,
    /// Blocks one slab holds.
    pub per_slab: usize,
    /// Slabs of the class, and how many of them are empty spares.
    pub slabs: usize,
    pub spares: usize,
}

/// The slabs of `layout`'s class (tests and statistics), or `None` if it
/// is not a small block.
pub fn slab_counts(layout: Layout) -> Option<SlabCounts> {
    let class = heap_cache::class_of(layout)?;
    let size = heap_cache::size_of_class(class);
    let (slabs, spares) = slab::count_slabs(class);
    Some(SlabCounts {
        size,
        per_slab: slab::capacity(size),
        slabs,
        spares,
    })
}

/// Spare empty slabs each class may keep.
pub const SLAB_SPARES: usize = slab::MAX_SPARES;

/// Print the small-object layer's statistics (the `phases=on` report).
pub fn report() {
    heap_cache::report();
}

/// A block of the first-fit heap, growing it if needed; null when out of
/// frames.
pub(super) fn alloc_block(layout: Layout) -> *mut u8 {
    if let Ok(p) = HEAP.0.lock_irqsave().heap.allocate_first_fit(layout) {
        return p.as_ptr();
    }
    // The slabs' spare empty slabs are free heap memory too: use them
    // before taking more frames. (Not under the heap lock: giving them back
    // takes it, and the slabs' locks come first.)
    slab::release_spares();
    let mut h = HEAP.0.lock_irqsave();
    loop {
        if let Ok(p) = h.heap.allocate_first_fit(layout) {
            return p.as_ptr();
        }
        let want = (layout.size() + layout.align()) as u64 + PAGE_SIZE;
        let grow = want.max(GROW_MIN).next_multiple_of(PAGE_SIZE);
        let old_end = h.mapped_end;
        let grown = map_more(&mut h, grow);
        // A growth step that ran out of frames partway still mapped some
        // pages: hand them to the heap too, or their frames are lost.
        let added = (h.mapped_end - old_end) as usize;
        if added > 0 {
            // SAFETY: the pages just mapped directly follow the heap's top.
            unsafe { h.heap.extend(added) };
        } else if !grown {
            return core::ptr::null_mut();
        }
    }
}

/// Give back a block of the first-fit heap.
///
/// # Safety
/// `ptr` came from `alloc_block(layout)` and is no longer used.
pub(super) unsafe fn free_block(ptr: *mut u8, layout: Layout) {
    // SAFETY: the caller's contract; `alloc_block` never returns null as a
    // block.
    unsafe {
        HEAP.0
            .lock_irqsave()
            .heap
            .deallocate(NonNull::new_unchecked(ptr), layout)
    }
}

// SAFETY: all access to the heap goes through the lock; memory handed out is
// mapped, writable and not handed out twice (linked_list_allocator's job for
// big blocks, the slabs' for small ones).
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _t = PhaseTimer::start(Phase::HeapAlloc);
        match heap_cache::class_of(layout) {
            Some(class) => heap_cache::alloc(class),
            None => alloc_block(layout),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _t = PhaseTimer::start(Phase::HeapFree);
        match heap_cache::class_of(layout) {
            // SAFETY: `alloc` gave `ptr` out of this class (same layout, so
            // the same class), and the caller is done with it.
            Some(class) => unsafe { heap_cache::free(class, ptr) },
            // SAFETY: `alloc` took `ptr` from the heap with this layout.
            None => unsafe { free_block(ptr, layout) },
        }
    }
}
