//! Type-stable VMA memory (Linux's `SLAB_TYPESAFE_BY_RCU` VMA cache).
//!
//! A freed VMA goes onto a free list and may be reused *at once* for a new VMA
//! of any address space sharing this cache. Its memory goes back to the
//! allocator only through `call_rcu`, after a grace period. So a reader that
//! found a VMA pointer inside an RCU read section can always dereference it
//! (the memory is a `Vma`), but may find a different VMA there: the lock
//! protocol's owner and range re-checks exist for exactly this.
//!
//! Why not simply free VMAs after a grace period? Because unmap would then
//! wait for (or queue behind) RCU for every VMA; Linux made VMAs type-stable in
//! 6.15 for the same reason.
//!
//! In debug builds (and under loom) a freed VMA is poisoned and the poison is
//! checked when it is reused, so a write to a freed VMA is caught.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::platform::Platform;
use crate::sync::SpinLock;
use crate::vma::{Vma, VmaPtr};

/// How many freed VMAs a cache keeps for reuse before it returns memory.
const MAX_FREE: usize = 64;

/// Number of `Vma` objects currently allocated from the global allocator by
/// all caches (for leak checks: 0 once every cache is gone and RCU has run
/// its callbacks). `core` atomic: a statistic, not part of the protocol.
static VMA_OBJECTS: AtomicUsize = AtomicUsize::new(0);

/// `Vma` objects allocated and not yet returned to the allocator.
pub fn vma_objects() -> usize {
    VMA_OBJECTS.load(Ordering::Relaxed)
}

const POISON_CHECKS: bool = cfg!(any(debug_assertions, loom));

/// A cache of VMA memory, shared by the address spaces created with it.
pub struct VmaCache<P: Platform> {
    free: SpinLock<Vec<VmaPtr<P>>>,
    /// VMAs handed out and not yet freed.
    in_use: AtomicUsize,
}

impl<P: Platform> VmaCache<P> {
    pub fn new() -> Self {
        VmaCache {
            free: SpinLock::new(Vec::new()),
            in_use: AtomicUsize::new(0),
        }
    }

    /// A detached VMA (`refcnt == 0`), possibly a reused one.
    pub fn alloc(&self) -> VmaPtr<P> {
        self.in_use.fetch_add(1, Ordering::Relaxed);
        if let Some(vma) = self.free.lock().pop() {
            // SAFETY: the free list holds live VMAs owned by this cache, and
            // `v` is not used after the VMA is handed out below.
            let v = unsafe { vma.get_unchecked() };
            assert_eq!(v.refcnt(), 0, "VMA on the free list has references");
            if POISON_CHECKS {
                assert!(
                    v.is_poisoned(),
                    "freed VMA written after free (poison damaged)"
                );
            }
            return vma;
        }
        VMA_OBJECTS.fetch_add(1, Ordering::Relaxed);
        VmaPtr(NonNull::from(Box::leak(Box::new(Vma::blank()))))
    }

    /// Give back a detached VMA. It may be reused at once; readers that still
    /// hold its address see `refcnt == 0` (or a new VMA) and back off.
    ///
    /// # Safety
    /// `vma` came from this cache's `alloc`, is detached, and the caller no
    /// longer uses it.
    pub unsafe fn free(&self, vma: VmaPtr<P>) {
        // SAFETY: caller passes a live VMA from this cache; it goes back to
        // the allocator only through `release`, after `v`'s last use.
        let v = unsafe { vma.get_unchecked() };
        // A VMA freed with readers in it is the bug the seed describes
        // (detach assuming 1 -> 0): catch it here, in every build.
        assert_eq!(v.refcnt(), 0, "VMA freed while referenced");
        race_point!(VmaFree, vma = v);
        if POISON_CHECKS {
            v.poison();
        }
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        let surplus = {
            let mut free = self.free.lock();
            free.push(vma);
            if free.len() > MAX_FREE {
                free.pop()
            } else {
                None
            }
        };
        if let Some(extra) = surplus {
            release::<P>(extra);
        }
    }

    /// VMAs handed out and not freed.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }
}

impl<P: Platform> Default for VmaCache<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> Drop for VmaCache<P> {
    fn drop(&mut self) {
        assert_eq!(self.in_use(), 0, "VMA cache dropped with VMAs in use");
        for vma in core::mem::take(&mut *self.free.lock()) {
            release::<P>(vma);
        }
    }
}

/// Return a VMA's memory to the allocator after a grace period: a reader may
/// still hold the address it found before the VMA was freed.
fn release<P: Platform>(vma: VmaPtr<P>) {
    P::call_rcu(Box::new(move || {
        race_point!(VmaRelease, vma = vma.as_raw());
        // SAFETY: the VMA came from `Box::leak` in `alloc`, is no longer on
        // any list, and the grace period has ended every reader that could
        // have found it.
        drop(unsafe { Box::from_raw(vma.as_raw()) });
        VMA_OBJECTS.fetch_sub(1, Ordering::Relaxed);
    }));
}
