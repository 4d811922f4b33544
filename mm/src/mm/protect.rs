//! `protect`: change the protection of a mapped range (Linux's `mprotect`).
//!
//! In steps: check the range has no holes; plan the new VMAs (the range with
//! its new protection, and the pieces of the edge VMAs left outside it);
//! take in equal neighbours so the result is merged; then either
//! - the plan is one VMA for one (the range is a whole VMA and nothing
//!   merges): write-lock that VMA and change its protection in place, as
//!   Linux's `mprotect` does (`vm_flags_reset`), no new VMA, no tree edit;
//! - or edit the tree (`Mm::edit`: new VMAs replace the old ones);
//!
//! and last rewrite the page-table entries and shoot down the TLB.

use alloc::vec::Vec;
use core::ops::Range;

use super::edit::{NewVma, coalesce};
use super::{Mm, MmError, MmapLocked, MmapWriteGuard, check_range};
use crate::page_table;
use crate::phases::{Phase, Timer};
use crate::platform::Platform;
use crate::vma::{Prot, Vma};
use crate::vma_lock::vma_start_write;

/// The VMAs to replace, and what replaces them.
struct Plan<'g, P: Platform> {
    remove: Vec<(Range<u64>, &'g Vma<P>)>,
    insert: Vec<NewVma>,
}

impl<P: Platform> Mm<P> {
    /// Change the protection of `[addr, addr + len)`, which must be fully
    /// mapped; the result is merged with equal neighbours.
    pub fn protect(&self, addr: u64, len: u64, prot: u32) -> Result<(), MmError> {
        let _t = Timer::<P>::start(Phase::ProtectTotal);
        check_range(addr, len)?;
        let prot = Prot::from_bits(prot).ok_or(MmError::BadFlags)?;
        let range = addr..addr + len;
        let w = self.write_lock();
        let old = w.overlapping(range.clone());
        check_no_holes(&old, &range)?;
        let mut plan = split_plan(old, &range, prot);
        plan.take_neighbours(&w, &range, prot);
        if let Some(vma) = plan.in_place() {
            {
                let _t = Timer::<P>::start(Phase::VmaStartWrite);
                vma_start_write(self, vma);
            }
            vma.set_prot(self, prot);
            race_point!(ProtectInPlace, mm = self, vma = vma);
            self.protect_pages(range, prot);
            return Ok(());
        }
        let merged = coalesce(plan.insert);
        self.room_for(merged.len().saturating_sub(plan.remove.len()))?;
        self.edit(&w, &plan.remove, &merged);
        self.protect_pages(range, prot);
        Ok(())
    }

    /// Rewrite the leaves of `range` for `prot`; shoot down if any changed.
    fn protect_pages(&self, range: Range<u64>, prot: Prot) {
        let changed = {
            let _t = Timer::<P>::start(Phase::PtProtect);
            self.page_table
                .protect(range.clone(), page_table::leaf_flags(prot))
        };
        if changed {
            let _t = Timer::<P>::start(Phase::Shootdown);
            P::tlb_shootdown(self.page_table.root(), self.cpus_to_flush(), range);
        }
    }
}

/// `NotMapped` unless the VMAs `old` (in address order) cover all of `range`.
fn check_no_holes<P: Platform>(
    old: &[(Range<u64>, &Vma<P>)],
    range: &Range<u64>,
) -> Result<(), MmError> {
    let mut expect = range.start;
    for (r, _) in old {
        if r.start > expect {
            return Err(MmError::NotMapped);
        }
        expect = r.end;
    }
    if expect < range.end {
        return Err(MmError::NotMapped);
    }
    Ok(())
}

/// Replace the VMAs `old` (covering `range`, at least one) by `range` with
/// `prot` and the pieces of the first and last VMA outside the range.
fn split_plan<'g, P: Platform>(
    old: Vec<(Range<u64>, &'g Vma<P>)>,
    range: &Range<u64>,
    prot: Prot,
) -> Plan<'g, P> {
    let anon = old.iter().all(|(_, v)| v.anon_ready());
    let first = old[0].1;
    let last = old[old.len() - 1].1;
    let mut insert = Vec::new();
    if first.start() < range.start {
        insert.push((first.start()..range.start, first.prot(), first.anon_ready()));
    }
    insert.push((range.clone(), prot, anon));
    if last.end() > range.end {
        insert.push((range.end..last.end(), last.prot(), last.anon_ready()));
    }
    Plan {
        remove: old,
        insert,
    }
}

/// A VMA as the description of a new one (to re-create it merged).
fn as_new<P: Platform>(vma: &Vma<P>) -> NewVma {
    (vma.range(), vma.prot(), vma.anon_ready())
}

impl<'g, P: Platform> Plan<'g, P> {
    /// The VMA to change in place, if the plan replaces exactly one VMA by
    /// one with the same range (the range is that whole VMA and neither
    /// neighbour merges with it).
    fn in_place(&self) -> Option<&'g Vma<P>> {
        match (self.remove.as_slice(), self.insert.as_slice()) {
            ([(r, vma)], [(new, _, _)]) if r == new => Some(*vma),
            _ => None,
        }
    }

    /// Take in the VMAs just left and right of `range` if they have `prot`
    /// already, so the result is merged with them. (A piece left over by a
    /// split is such a neighbour too; `coalesce` handles it.)
    fn take_neighbours(&mut self, w: &'g MmapWriteGuard<'_, P>, range: &Range<u64>, prot: Prot) {
        let first = self.remove[0].0.start;
        let last = self.remove[self.remove.len() - 1].0.end;
        let equal = |(r, v): &(Range<u64>, &Vma<P>)| {
            debug_assert_eq!(*r, v.range());
            v.prot() == prot
        };
        if first == range.start {
            let left = range.start.checked_sub(1).and_then(|a| w.find(a));
            if let Some(n) = left.filter(|n| n.0.end == range.start && equal(n)) {
                self.insert.insert(0, as_new(n.1));
                self.remove.push(n);
            }
        }
        if last == range.end {
            let right = w.find(range.end);
            if let Some(n) = right.filter(|n| n.0.start == range.end && equal(n)) {
                self.insert.push(as_new(n.1));
                self.remove.push(n);
            }
        }
    }
}
