//! A 4-level x86-64 page table built from platform frames.
//!
//! The format is the hardware's, so the kernel can point CR3 at
//! [`PageTable::root`]. The kernel half (PML4 entries 256..512) belongs to the
//! kernel: this file never reads or writes it.
//!
//! # Concurrency
//! Faults in *different* VMAs run at the same time under per-VMA read locks
//! and may share upper-level tables. So a missing table is installed with a
//! compare-exchange on the empty entry (the loser frees its frame), and so is
//! a leaf. Everything that removes entries holds the `mmap_lock` and keeps
//! faults out of what it removes: protect rewrites leaves under the write
//! lock with the affected VMAs write-locked; unmap clears leaves and frees
//! tables under the read lock (downgraded from write) once the range's VMAs
//! are detached, so no fault can find a VMA there and nobody can map it
//! again before the read lock is dropped (`Mm::teardown` says why in
//! full). A table is freed only when no VMA covers any of its range, so no
//! fault in another VMA can be walking through it. Frames and tables are
//! freed only after the TLB shootdown.
//!
//! # Why the entries are hand-written
//! The `x86_64` crate's `PageTable` and `PageTableEntry` are plain `u64`s
//! changed through `&mut`, and its `PageTableFlags` would tie this crate to
//! one target. Here several faults write the same table at once, so every
//! entry is an `AtomicU64` changed with compare-exchange, and the code also
//! runs on the host and under loom. Only the bit names come from a crate
//! (`bitflags`: [`PteFlags`]); the entries stay atomics.

use alloc::vec::Vec;
use core::marker::PhantomData;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::platform::Platform;
use crate::vma::Prot;

bitflags::bitflags! {
    /// The bits of an entry this crate uses (the hardware's layout).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PteFlags: u64 {
        const PRESENT = 1 << 0;
        const WRITABLE = 1 << 1;
        const USER = 1 << 2;
        /// Software bit (ignored by the MMU when PRESENT is clear): a
        /// `PROT_NONE` page that still owns its frame.
        const PROT_NONE_PAGE = 1 << 9;
        const NX = 1 << 63;
    }
}

impl PteFlags {
    /// The flags of the entry value `pte` (the frame address dropped).
    pub fn of(pte: u64) -> PteFlags {
        PteFlags::from_bits_truncate(pte)
    }
}

/// The frame address bits of an entry.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Whether the entry value `pte` points to a frame (a table or a page).
fn present(pte: u64) -> bool {
    PteFlags::of(pte).contains(PteFlags::PRESENT)
}

/// First PML4 index of the kernel half.
const KERNEL_PML4_START: usize = 256;
const ENTRIES: usize = 512;

/// The leaf flags for a page of a VMA with protection `prot`.
pub fn leaf_flags(prot: Prot) -> PteFlags {
    if prot == Prot::NONE {
        return PteFlags::PROT_NONE_PAGE;
    }
    let mut f = PteFlags::PRESENT | PteFlags::USER;
    f.set(PteFlags::WRITABLE, prot.contains(Prot::WRITE));
    f.set(PteFlags::NX, !prot.contains(Prot::EXEC));
    f
}

/// Bytes covered by one entry of a table at `level` (1 = page table).
fn entry_span(level: u32) -> u64 {
    1u64 << (12 + 9 * (level - 1))
}

fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 511) as usize
}

/// Out of memory while allocating a page-table page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

/// Frames unhooked from the page table, to free after the TLB shootdown.
#[derive(Default)]
pub struct Unhooked {
    /// Data frames (pages of user memory).
    pub pages: Vec<u64>,
    /// Page-table pages.
    pub tables: Vec<u64>,
    /// The addresses whose translations (or paging-structure caches) must be
    /// shot down before these frames are freed.
    pub span: Option<Range<u64>>,
}

impl Unhooked {
    fn widen(&mut self, r: Range<u64>) {
        self.span = Some(match self.span.take() {
            None => r,
            Some(s) => s.start.min(r.start)..s.end.max(r.end),
        });
    }
}

/// The page table of one address space.
pub struct PageTable<P: Platform> {
    root: u64,
    _platform: PhantomData<fn() -> P>,
}

impl<P: Platform> PageTable<P> {
    /// A table with an empty user half.
    pub fn new() -> Result<Self, OutOfMemory> {
        let root = new_table::<P>()?;
        Ok(PageTable {
            root,
            _platform: PhantomData,
        })
    }

    /// Physical address of the PML4 (what CR3 will hold).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The leaf entry for `va`, installing missing tables. `tables` counts
    /// the tables this call installed.
    pub fn leaf_alloc(&self, va: u64, tables: &AtomicU64) -> Result<&AtomicU64, OutOfMemory> {
        let mut table = self.root;
        for level in (2..=4).rev() {
            let e = entry::<P>(table, index(va, level));
            // Acquire pairs with the Release compare-exchange below (ours or
            // another CPU's): the zeroed contents of the table are visible.
            let mut cur = e.load(Ordering::Acquire);
            if !present(cur) {
                let new = new_table::<P>()?;
                // Upper levels grant everything; the leaf decides the rights.
                let want = new | (PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::USER).bits();
                // Release: the zeroing of `new` happens before another CPU
                // walks into it. Acquire on failure: as the load above.
                match e.compare_exchange(0, want, Ordering::Release, Ordering::Acquire) {
                    Ok(_) => {
                        tables.fetch_add(1, Ordering::Relaxed);
                        cur = want;
                    }
                    Err(other) => {
                        // Another fault installed the table first.
                        P::free_frame(new);
                        cur = other;
                    }
                }
            }
            table = cur & ADDR_MASK;
        }
        Ok(entry::<P>(table, index(va, 1)))
    }

    /// The leaf entry for `va`, if its tables exist.
    pub fn leaf(&self, va: u64) -> Option<&AtomicU64> {
        let mut table = self.root;
        for level in (2..=4).rev() {
            // Acquire: as in `leaf_alloc`.
            let cur = entry::<P>(table, index(va, level)).load(Ordering::Acquire);
            if !present(cur) {
                return None;
            }
            table = cur & ADDR_MASK;
        }
        Some(entry::<P>(table, index(va, 1)))
    }

    /// Clear the leaves of `range` (mmap lock held, no VMA covering `range`
    /// any more, and none can be added: see `Mm::teardown`).
    pub fn clear(&self, range: Range<u64>, out: &mut Unhooked) {
        let mut any = false;
        self.for_each_leaf(range.clone(), &mut |e, _va| {
            // Relaxed: no fault can be installing here (see module docs); the
            // shootdown orders the MMU's view.
            let old = e.swap(0, Ordering::Relaxed);
            if old != 0 {
                out.pages.push(old & ADDR_MASK);
                any = true;
            }
        });
        if any {
            out.widen(range);
        }
    }

    /// Rewrite the flags of the pages present in `range` (mmap write lock
    /// held, VMAs write-locked). Returns whether anything changed.
    pub fn protect(&self, range: Range<u64>, flags: PteFlags) -> bool {
        let mut changed = false;
        self.for_each_leaf(range, &mut |e, _va| {
            let old = e.load(Ordering::Relaxed);
            if old != 0 {
                let new = (old & ADDR_MASK) | flags.bits();
                if new != old {
                    e.store(new, Ordering::Relaxed);
                    changed = true;
                }
            }
        });
        changed
    }

    /// Unhook the tables of the user half that lie in or around `range` and
    /// whose whole span `covered` says no VMA overlaps. Their leaves must be
    /// clear already.
    pub fn free_tables(
        &self,
        range: Range<u64>,
        covered: &impl Fn(Range<u64>) -> bool,
        out: &mut Unhooked,
    ) {
        free_tables_in::<P>(self.root, 4, 0, &range, covered, out);
    }

    /// Number of present (or PROT_NONE) leaves and of tables below the root,
    /// found by a full walk (for tests).
    pub fn census(&self) -> (u64, u64) {
        let mut leaves = 0;
        let mut tables = 0;
        census_in::<P>(self.root, 4, &mut leaves, &mut tables);
        (leaves, tables)
    }

    /// Addresses of the pages with a non-empty leaf (for tests).
    pub fn mapped_pages(&self) -> Vec<u64> {
        let mut out = Vec::new();
        walk::<P>(self.root, 4, 0, &(0..1u64 << 47), &mut |e, va| {
            if e.load(Ordering::Relaxed) != 0 {
                out.push(va);
            }
        });
        out
    }

    fn for_each_leaf(&self, range: Range<u64>, f: &mut impl FnMut(&AtomicU64, u64)) {
        walk::<P>(self.root, 4, 0, &range, f);
    }
}

impl<P: Platform> Drop for PageTable<P> {
    /// Frees the root. The user half must be empty (exit unmapped it and
    /// freed its tables); the kernel half is the kernel's.
    fn drop(&mut self) {
        for i in 0..KERNEL_PML4_START {
            assert_eq!(
                entry::<P>(self.root, i).load(Ordering::Relaxed),
                0,
                "page table freed with user tables"
            );
        }
        P::free_frame(self.root);
    }
}

/// Entry `idx` of the table in frame `table`.
fn entry<'a, P: Platform>(table: u64, idx: usize) -> &'a AtomicU64 {
    debug_assert!(idx < ENTRIES);
    // SAFETY: `table` is a page-table frame of this address space, alive
    // while it is reachable (tables are freed only after being unhooked under
    // the mmap lock, once no VMA covers them, and after a TLB shootdown);
    // `frame_ptr` maps its 4096 bytes, 8-aligned; every access to entries
    // is atomic.
    unsafe { AtomicU64::from_ptr(P::frame_ptr(table).cast::<u64>().add(idx)) }
}

fn new_table<P: Platform>() -> Result<u64, OutOfMemory> {
    let pa = P::alloc_frame().ok_or(OutOfMemory)?;
    // A fresh frame, ours alone until published.
    P::zero_frame(pa);
    Ok(pa)
}

/// The entries of the table at `level` (covering from `base`) that overlap
/// `range`, as (index, start of the entry's span). The kernel half of the
/// PML4 is skipped. The index range is computed, not searched: a walk of a
/// few pages visits a few entries per level, not all 512 (under the
/// emulator, scanning them cost as much as the rest of an `mprotect`).
fn entries_in(level: u32, base: u64, range: &Range<u64>) -> impl Iterator<Item = (usize, u64)> {
    let span = entry_span(level);
    let limit = if level == 4 {
        KERNEL_PML4_START
    } else {
        ENTRIES
    };
    let (first, end) = index_range(span, limit, base, range);
    (first..end).map(move |i| (i, base + i as u64 * span))
}

/// Entries `first..end` of a table of `limit` entries of `span` bytes each,
/// starting at `base`: those with `start < range.end` and
/// `start + span > range.start`.
fn index_range(span: u64, limit: usize, base: u64, range: &Range<u64>) -> (usize, usize) {
    if range.end <= base {
        return (0, 0);
    }
    // The first entry whose span ends above `range.start`.
    let first = range.start.saturating_sub(base) / span;
    // One past the last entry that starts below `range.end`.
    let end = ((range.end - base - 1) / span + 1).min(limit as u64);
    (first.min(end) as usize, end as usize)
}

fn walk<P: Platform>(
    table: u64,
    level: u32,
    base: u64,
    range: &Range<u64>,
    f: &mut impl FnMut(&AtomicU64, u64),
) {
    for (i, start) in entries_in(level, base, range) {
        let e = entry::<P>(table, i);
        if level == 1 {
            f(e, start);
            continue;
        }
        let cur = e.load(Ordering::Acquire);
        if present(cur) {
            walk::<P>(cur & ADDR_MASK, level - 1, start, range, f);
        }
    }
}

fn free_tables_in<P: Platform>(
    table: u64,
    level: u32,
    base: u64,
    range: &Range<u64>,
    covered: &impl Fn(Range<u64>) -> bool,
    out: &mut Unhooked,
) {
    if level == 1 {
        return;
    }
    let span = entry_span(level);
    for (i, start) in entries_in(level, base, range) {
        let e = entry::<P>(table, i);
        let cur = e.load(Ordering::Relaxed);
        if !present(cur) {
            continue;
        }
        let child = cur & ADDR_MASK;
        free_tables_in::<P>(child, level - 1, start, range, covered, out);
        if !covered(start..start + span) {
            for j in 0..ENTRIES {
                assert_eq!(
                    entry::<P>(child, j).load(Ordering::Relaxed),
                    0,
                    "freeing a page table that is in use"
                );
            }
            e.store(0, Ordering::Relaxed);
            out.tables.push(child);
            out.widen(start..start + span);
        }
    }
}

fn census_in<P: Platform>(table: u64, level: u32, leaves: &mut u64, tables: &mut u64) {
    let limit = if level == 4 {
        KERNEL_PML4_START
    } else {
        ENTRIES
    };
    for i in 0..limit {
        let cur = entry::<P>(table, i).load(Ordering::Acquire);
        if level == 1 {
            *leaves += (cur != 0) as u64;
        } else if present(cur) {
            *tables += 1;
            census_in::<P>(cur & ADDR_MASK, level - 1, leaves, tables);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The computed index range against the definition (the filter the walk
    /// used before), entry by entry.
    #[test]
    fn index_range_is_the_overlapping_entries() {
        let span = 4096u64;
        let base = 0x10_0000u64;
        let top = base + 8 * span;
        let points = [0, base - 1, base, base + 1, base + span - 1, base + span]
            .into_iter()
            .chain([base + 3 * span + 7, top - 1, top, top + 1, u64::MAX / 2]);
        for start in points.clone() {
            for end in points.clone() {
                let want: alloc::vec::Vec<usize> = (0..8)
                    .filter(|&i| {
                        let s = base + i as u64 * span;
                        s < end && s + span > start
                    })
                    .collect();
                let (a, b) = index_range(span, 8, base, &(start..end));
                let got: alloc::vec::Vec<usize> = (a..b).collect();
                assert_eq!(got, want, "range {start:#x}..{end:#x}");
            }
        }
    }
}
