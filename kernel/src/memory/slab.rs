//! Slabs: where the small heap blocks of each size class live, behind the
//! per-CPU caches (`heap_cache.rs`).
//!
//! A *slab* is one 16 KiB block of the first-fit heap, aligned to its size,
//! carved into objects of one class (Linux's SLUB, simplified). Its header,
//! at its start, keeps the slab's own free list (objects linked through
//! their first word) and how many of its objects are out. So the slab of any
//! object is its address rounded down to 16 KiB, and giving an object back
//! is a push onto that list: O(1), however many come back at once. That
//! matters because RCU frees what a writer retired during a whole grace
//! period in one go (a hundred and more range-tree nodes on one CPU while
//! `faultbench`'s writer runs), far more than a per-CPU cache holds; before
//! slabs, the overflow went one by one to the first-fit heap, whose free
//! list every later allocation then walked.
//!
//! Each class has a lock, a list of its *partial* slabs (those with a free
//! object) and a few spare empty slabs. Full slabs are on no list: a free
//! into one puts it back on the partial list. A slab whose last object
//! comes back goes back to the heap, unless it becomes a spare, so a class
//! holds no more memory than its objects in use need, plus the free room
//! of its partial slabs and its spares; and the heap takes the spares back
//! before it grows. The per-CPU caches take and give objects in batches,
//! one lock hold per batch, as chains linked the same way.
//!
//! Lock order: a class lock is never held while the heap lock is taken
//! (new slabs come from the heap, and empty ones go back, outside it).

use core::alloc::Layout;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::heap;
use crate::sync::SpinLock;

/// Bytes of one slab (and its alignment).
pub const SLAB_BYTES: usize = 16 << 10;
/// Room for the header at the start of a slab; objects start after it, so
/// they keep every alignment up to this that their size has.
const HEADER_BYTES: usize = 64;
/// Written into every slab's header; a free of a pointer that is not in a
/// slab of its class finds anything else.
const SLAB_MAGIC: u64 = 0x736c_6162_5f68_6472; // "slab_hdr"

/// Free objects linked through their first word, `len` of them. Every
/// object on a chain was put there by `push`, so `pop` is safe.
pub struct Chain {
    pub head: *mut u8,
    pub len: usize,
}

impl Chain {
    pub const EMPTY: Chain = Chain {
        head: ptr::null_mut(),
        len: 0,
    };

    /// Add `obj`.
    ///
    /// # Safety
    /// `obj` is a free object of at least 8 bytes, 8-aligned, that nothing
    /// else uses until it is popped.
    pub unsafe fn push(&mut self, obj: *mut u8) {
        // SAFETY: the caller's contract; the first word is free for the link.
        unsafe { *(obj as *mut *mut u8) = self.head };
        self.head = obj;
        self.len += 1;
    }

    /// Take the first object, or null.
    pub fn pop(&mut self) -> *mut u8 {
        let obj = self.head;
        if !obj.is_null() {
            // SAFETY: an object on a chain is free, and `push` wrote its
            // first word.
            self.head = unsafe { *(obj as *const *mut u8) };
            self.len -= 1;
        }
        obj
    }
}

#[repr(C, align(64))]
struct Slab {
    magic: u64,
    class: usize,
    /// Objects out of this slab (in a per-CPU cache or in use).
    out: usize,
    free: Chain,
    /// Neighbours on the class's partial list, when on it.
    prev: *mut Slab,
    next: *mut Slab,
}

const _: () = assert!(size_of::<Slab>() <= HEADER_BYTES);

/// One class's slabs. Raw pointers into heap blocks this class owns.
struct Class {
    /// Slabs with a free object, but the spares; doubly linked.
    partial: *mut Slab,
    /// Empty slabs kept back (linked by `next`), at most `MAX_SPARES`, so
    /// a class whose use goes up and down by a grace period's worth of
    /// objects does not take slabs from the heap and give them back each
    /// time.
    spares: *mut Slab,
    nspares: usize,
}

/// Empty slabs a class keeps: 64 KiB. Enough that `faultbench`'s writer,
/// whose range-tree nodes come and go a grace period's worth (a few slabs)
/// at a time, seldom goes to the heap for a slab.
pub const MAX_SPARES: usize = 4;

// SAFETY: the slabs a `Class` points to are owned by it, reached only
// under its lock.
unsafe impl Send for Class {}

static CLASSES: [SpinLock<Class>; super::heap_cache::CLASSES] = [const {
    SpinLock::new(Class {
        partial: ptr::null_mut(),
        spares: ptr::null_mut(),
        nspares: 0,
    })
}; super::heap_cache::CLASSES];

/// Slabs taken from the heap and not given back, all classes.
static SLABS: AtomicUsize = AtomicUsize::new(0);
/// Bytes of the objects out of slabs (in per-CPU caches or in use).
static OUT_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Per class, for the `phases=on` report: refills (per-CPU cache found
/// empty), flushes (found full), slabs taken from and given back to the
/// heap. Only the slow paths count, so the fast path pays nothing.
static EVENTS: [[AtomicUsize; 4]; super::heap_cache::CLASSES] =
    [const { [const { AtomicUsize::new(0) }; 4] }; super::heap_cache::CLASSES];
const REFILLS: usize = 0;
const FLUSHES: usize = 1;
const NEW_SLABS: usize = 2;
const RELEASED: usize = 3;

fn count(class: usize, event: usize) {
    // Relaxed: statistics.
    EVENTS[class][event].fetch_add(1, Ordering::Relaxed);
}

/// One line per class that was used: its slow-path events and the slabs
/// it holds now.
pub fn report(sizes: &[usize]) {
    for (class, e) in EVENTS.iter().enumerate() {
        let [refills, flushes, new, released] = e.each_ref().map(|a| a.load(Ordering::Relaxed));
        if refills == 0 {
            continue;
        }
        crate::println_raw!(
            "heap_class size={} refills={refills} flushes={flushes} slabs_new={new} slabs_released={released} slabs_now={}",
            sizes[class],
            new - released
        );
    }
}

/// `class`'s slabs, and how many of them are spares (empty).
pub fn count_slabs(class: usize) -> (usize, usize) {
    let spares = CLASSES[class].lock_irqsave().nspares;
    let e = &EVENTS[class];
    // Relaxed: statistics; exact when no other CPU uses the class.
    let slabs = e[NEW_SLABS].load(Ordering::Relaxed) - e[RELEASED].load(Ordering::Relaxed);
    (slabs, spares)
}

/// Bytes of heap held by slabs.
pub fn slab_bytes() -> usize {
    // Relaxed: statistics (see `heap::used`).
    SLABS.load(Ordering::Relaxed) * SLAB_BYTES
}

/// Bytes of objects given out of slabs (to per-CPU caches or callers).
pub fn out_bytes() -> usize {
    OUT_BYTES.load(Ordering::Relaxed)
}

const fn slab_layout() -> Layout {
    match Layout::from_size_align(SLAB_BYTES, SLAB_BYTES) {
        Ok(l) => l,
        Err(_) => panic!("slab layout"),
    }
}

/// How many objects of `size` bytes one slab holds.
pub const fn capacity(size: usize) -> usize {
    (SLAB_BYTES - HEADER_BYTES) / size
}

/// The slab holding `obj`.
fn slab_of(obj: *mut u8) -> *mut Slab {
    (obj as usize & !(SLAB_BYTES - 1)) as *mut Slab
}

/// A new slab of `class` from the heap, every object free; null if the
/// heap is out of memory.
fn new_slab(class: usize, size: usize) -> *mut Slab {
    let base = heap::alloc_block(slab_layout());
    if base.is_null() {
        return ptr::null_mut();
    }
    let mut free = Chain::EMPTY;
    // Pushed from the end, so the chain hands out objects in address order.
    for i in (0..capacity(size)).rev() {
        // SAFETY: object `i` lies inside the block just allocated, past the
        // header, and overlaps no other object; every class's size is a
        // multiple of 16.
        unsafe { free.push(base.add(HEADER_BYTES + i * size)) };
    }
    let slab = base as *mut Slab;
    // SAFETY: the block is ours, SLAB_BYTES-aligned, big enough for a
    // header (checked above), and no object overlaps the header.
    unsafe {
        slab.write(Slab {
            magic: SLAB_MAGIC,
            class,
            out: 0,
            free,
            prev: ptr::null_mut(),
            next: ptr::null_mut(),
        })
    };
    // Relaxed: statistics.
    SLABS.fetch_add(1, Ordering::Relaxed);
    count(class, NEW_SLABS);
    slab
}

/// Give an empty slab back to the heap.
///
/// # Safety
/// `slab` is empty and on no list: nothing refers to it any more.
unsafe fn release(slab: *mut Slab) {
    // SAFETY: the caller's contract; poisoning the magic makes a late free
    // into it fail loudly (unless the heap reused the block meanwhile).
    unsafe {
        count((*slab).class, RELEASED);
        (*slab).magic = 0;
        heap::free_block(slab as *mut u8, slab_layout());
    }
    SLABS.fetch_sub(1, Ordering::Relaxed);
}

impl Class {
    fn push_partial(&mut self, slab: *mut Slab) {
        // SAFETY: slabs on or entering our lists are ours (lock held).
        unsafe {
            (*slab).prev = ptr::null_mut();
            (*slab).next = self.partial;
            if !self.partial.is_null() {
                (*self.partial).prev = slab;
            }
        }
        self.partial = slab;
    }

    fn unlink_partial(&mut self, slab: *mut Slab) {
        // SAFETY: `slab` is on our partial list (lock held).
        unsafe {
            let (prev, next) = ((*slab).prev, (*slab).next);
            if prev.is_null() {
                self.partial = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
        }
    }

    /// A slab with a free object, from the partial list or the spares.
    fn slab_with_room(&mut self) -> Option<*mut Slab> {
        if self.partial.is_null() {
            let spare = self.pop_spare();
            if !spare.is_null() {
                self.push_partial(spare);
            }
        }
        (!self.partial.is_null()).then_some(self.partial)
    }

    fn pop_spare(&mut self) -> *mut Slab {
        let spare = self.spares;
        if !spare.is_null() {
            // SAFETY: a spare is ours (lock held).
            self.spares = unsafe { (*spare).next };
            self.nspares -= 1;
        }
        spare
    }

    /// Move up to `want` objects from partial slabs into `into`; returns
    /// how many moved.
    fn take(&mut self, want: usize, into: &mut Chain) -> usize {
        let mut moved = 0;
        while moved < want {
            let Some(slab) = self.slab_with_room() else {
                break;
            };
            // SAFETY: a slab on our partial list, lock held.
            let s = unsafe { &mut *slab };
            while moved < want && s.free.len > 0 {
                // SAFETY: a free object of this slab, now only on `into`.
                unsafe { into.push(s.free.pop()) };
                s.out += 1;
                moved += 1;
            }
            if s.free.len == 0 {
                self.unlink_partial(slab); // full: on no list
            }
        }
        moved
    }

    /// Return one object of this class to its slab; a slab left empty and
    /// not kept as a spare is returned for the caller to release.
    ///
    /// # Safety
    /// `obj` was taken from a slab of `class` and is free, used by nothing.
    unsafe fn give(&mut self, class: usize, obj: *mut u8) -> Option<*mut Slab> {
        let slab = slab_of(obj);
        // SAFETY: every object of a class lies in a slab of that class,
        // whose header stays valid while any of its objects is out; checked
        // loudly, as a wrong pointer or layout would corrupt the lists.
        let s = unsafe { &mut *slab };
        assert!(
            s.magic == SLAB_MAGIC && s.class == class && s.out > 0,
            "slab: freed {obj:p} is not an object out of a class-{class} slab"
        );
        let was_full = s.free.len == 0;
        // SAFETY: the caller's contract.
        unsafe { s.free.push(obj) };
        s.out -= 1;
        if was_full {
            self.push_partial(slab);
        }
        if s.out > 0 {
            return None;
        }
        self.unlink_partial(slab);
        if self.nspares == MAX_SPARES {
            return Some(slab);
        }
        s.next = self.spares;
        self.spares = slab;
        self.nspares += 1;
        None
    }
}

/// Up to `want` free objects of `class` (of `size` bytes), taking new slabs
/// from the heap as needed; fewer (even none) only if the heap is out of
/// memory.
pub fn take(class: usize, size: usize, want: usize) -> Chain {
    count(class, REFILLS);
    let mut got = Chain::EMPTY;
    loop {
        let moved = CLASSES[class].lock_irqsave().take(want - got.len, &mut got);
        // Relaxed: statistics.
        OUT_BYTES.fetch_add(moved * size, Ordering::Relaxed);
        if got.len == want {
            return got;
        }
        // Outside the class lock (see the lock order).
        let slab = new_slab(class, size);
        if slab.is_null() {
            return got;
        }
        CLASSES[class].lock_irqsave().push_partial(slab);
    }
}

/// Give the objects of `chain` back to their slabs, releasing slabs that
/// become empty (beyond the class's spares).
///
/// # Safety
/// Every object on `chain` was handed out by `take(class, size, ..)`, is
/// free, and appears once.
pub unsafe fn give(class: usize, size: usize, mut chain: Chain) {
    count(class, FLUSHES);
    let n = chain.len;
    let mut empty = Chain::EMPTY;
    {
        let mut c = CLASSES[class].lock_irqsave();
        loop {
            let obj = chain.pop();
            if obj.is_null() {
                break;
            }
            // SAFETY: our caller's contract, object by object.
            if let Some(slab) = unsafe { c.give(class, obj) } {
                // SAFETY: the slab is empty and on no list: nothing uses
                // its header, whose first word can link it.
                unsafe { empty.push(slab as *mut u8) };
            }
        }
    }
    OUT_BYTES.fetch_sub(n * size, Ordering::Relaxed);
    loop {
        let slab = empty.pop();
        if slab.is_null() {
            break;
        }
        // SAFETY: empty and on no list (taken off by `Class::give`).
        unsafe { release(slab as *mut Slab) };
    }
}

/// Give every class's spare slabs back to the heap (it needs memory).
pub fn release_spares() {
    for class in &CLASSES {
        loop {
            let spare = class.lock_irqsave().pop_spare();
            if spare.is_null() {
                break;
            }
            // SAFETY: a spare is empty and, taken off, on no list.
            unsafe { release(spare) };
        }
    }
}
