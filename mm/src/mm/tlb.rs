//! Which CPUs a TLB shootdown must reach: the address space's CPU mask.

use super::Mm;
use crate::platform::Platform;
use crate::sync::{Ordering, fence};

impl<P: Platform> Mm<P> {
    /// CPUs that may cache translations of this address space (a snapshot
    /// for statistics and tests; a shootdown uses [`Mm::cpus_to_flush`]).
    pub fn cpumask(&self) -> u64 {
        self.cpumask.load(Ordering::Relaxed)
    }

    /// Record that `cpu` may now cache translations. The kernel calls it
    /// when it switches to this address space, *before* loading its page
    /// table; faults call it too.
    ///
    /// This is one side of a store-buffering pattern with
    /// [`Mm::cpus_to_flush`]: this CPU sets its bit, then (through the MMU)
    /// reads page-table entries; a CPU changing the table stores entries,
    /// then reads the mask. Without a full fence on both sides each could
    /// miss the other's store: the changer sends no IPI to this CPU, and
    /// this CPU caches the old translation, which then outlives the change
    /// (and the frame it points to may be reused).
    pub fn note_cpu(&self, cpu: usize) {
        let bit = 1u64 << (cpu % 64);
        // Relaxed: when the bit is set already, the fence below was executed
        // by whoever set it, before this CPU's first table walk, and bits are
        // never cleared, so the pairing still holds for later walks.
        if self.cpumask.load(Ordering::Relaxed) & bit == 0 {
            self.cpumask.fetch_or(bit, Ordering::Relaxed);
            // SeqCst fence: pairs with the one in `cpus_to_flush`. Either the
            // changer's mask load sees this bit (and it flushes us), or our
            // table walks after this point see its new entries.
            fence(Ordering::SeqCst);
        }
    }

    /// The CPUs a TLB shootdown must reach after this caller changed
    /// page-table entries (the other side of the pattern in `note_cpu`).
    /// Public for the loom litmus test of the pattern.
    pub fn cpus_to_flush(&self) -> u64 {
        // SeqCst fence: pairs with the one in `note_cpu`. Our entry stores
        // are ordered before the mask load, so a CPU whose bit we miss set it
        // after the fence and will walk the table after our stores.
        fence(Ordering::SeqCst);
        self.cpumask.load(Ordering::Relaxed)
    }
}
