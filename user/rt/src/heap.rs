//! The global allocator: power-of-two size classes carved from `mmap`'d
//! chunks, and a direct mapping for anything bigger.
//!
//! Small blocks (16 bytes to 2 KiB) come from one free list per size class.
//! An empty list is refilled by mapping a 64 KiB chunk and cutting it into
//! blocks of that class; freed blocks go back to their list (chunks are never
//! returned to the kernel). A block of size 2^k cut from a page-aligned chunk
//! is aligned to 2^k, so asking for the class `max(size, align)` honours any
//! alignment up to 2 KiB. Big requests get their own mapping, page-aligned,
//! and are unmapped on free.

use crate::sync::SpinLock;
use abi::mman::{PAGE_SIZE, PROT_READ, PROT_WRITE, page_align_up};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

const MIN_CLASS: usize = 4; // 16 bytes: room for the free-list link
const CLASSES: usize = 8; // 16 .. 2048 bytes
const CHUNK: usize = 64 * 1024;

/// A free block holds the link to the next free block of its class.
struct FreeBlock {
    next: *mut FreeBlock,
}

struct FreeLists([*mut FreeBlock; CLASSES]);

// SAFETY: the lists are only touched under the `Heap` lock, and the blocks
// they point to belong to the allocator, not to any one thread.
unsafe impl Send for FreeLists {}

pub struct Heap {
    lists: SpinLock<FreeLists>,
}

fn class_of(layout: &Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_CLASS);
    let class = size.next_power_of_two().trailing_zeros() as usize - MIN_CLASS;
    (class < CLASSES).then_some(class)
}

fn map(len: usize) -> *mut u8 {
    crate::sys::mmap_anon(0, len as u64, PROT_READ | PROT_WRITE).unwrap_or(ptr::null_mut())
}

// SAFETY: `alloc` returns blocks no one else holds, of at least the layout's
// size and alignment (see the module comment); `dealloc` takes back only such
// blocks, to the list or mapping they came from.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(&layout) else {
            if layout.align() as u64 > PAGE_SIZE {
                return ptr::null_mut();
            }
            return map(layout.size());
        };
        let mut lists = self.lists.lock();
        if lists.0[class].is_null() {
            let chunk = map(CHUNK);
            if chunk.is_null() {
                return chunk;
            }
            let block = 1usize << (class + MIN_CLASS);
            for off in (0..CHUNK).step_by(block).rev() {
                let b = chunk.wrapping_add(off).cast::<FreeBlock>();
                // SAFETY: `b` is inside the fresh chunk, aligned to `block`.
                unsafe {
                    b.write(FreeBlock {
                        next: lists.0[class],
                    })
                };
                lists.0[class] = b;
            }
        }
        let b = lists.0[class];
        // SAFETY: `b` heads the free list, so it is a free block we own.
        lists.0[class] = unsafe { (*b).next };
        b.cast()
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        match class_of(&layout) {
            Some(class) => {
                let mut lists = self.lists.lock();
                let b = p.cast::<FreeBlock>();
                // SAFETY: `p` was a block of this class, now free again.
                unsafe {
                    b.write(FreeBlock {
                        next: lists.0[class],
                    })
                };
                lists.0[class] = b;
            }
            None => {
                let len = page_align_up(layout.size() as u64).unwrap_or(0);
                // SAFETY: a big block is its own mapping of this length.
                let _ = unsafe { crate::sys::munmap(p, len) };
            }
        }
    }
}

#[global_allocator]
static HEAP: Heap = Heap {
    lists: SpinLock::new(FreeLists([ptr::null_mut(); CLASSES])),
};
