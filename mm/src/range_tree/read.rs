//! The lockless readers.
//!
//! Every function here takes `&R::ReadGuard`: holding it proves the caller is
//! inside an RCU read-side section, so every node reachable from the root it
//! loads stays allocated until the guard is dropped, even if a writer unlinks
//! it meanwhile. Readers never write, and return copies, never references.

use core::ops::Range;

use alloc::vec::Vec;

use super::RangeTree;
use super::node::{Body, Entry, Node};
use crate::platform::Rcu;

/// Alignment of the addresses `find_gap` returns.
const PAGE_SIZE: u64 = 4096;

impl<V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> RangeTree<V, R, B> {
    /// The entry whose range contains `addr`.
    pub fn find(&self, addr: u64, guard: &R::ReadGuard) -> Option<(Range<u64>, V)> {
        self.find_next(addr, guard)
            .filter(|(range, _)| range.start <= addr)
    }

    /// The first entry with `end > addr`: the one containing `addr`, or else
    /// the next one above it.
    pub fn find_next(&self, addr: u64, _guard: &R::ReadGuard) -> Option<(Range<u64>, V)> {
        // SAFETY: the root is loaded inside the read-side section `_guard`
        // proves; every node reachable from it stays allocated until the
        // guard is dropped (writers free unlinked nodes after a grace period).
        unsafe { next_from(self.load_root(), addr) }.map(|e| (e.start..e.end, e.value))
    }

    /// All entries overlapping `range`, in address order.
    pub fn overlapping(&self, range: Range<u64>, guard: &R::ReadGuard) -> Vec<(Range<u64>, V)> {
        let mut out = Vec::new();
        if range.start < range.end
            && let Some(root) = self.node_ref(self.load_root(), guard)
        {
            self.collect(root, &range, guard, &mut out);
        }
        out
    }

    fn collect<'g>(
        &self,
        node: &'g Node<V, B>,
        range: &Range<u64>,
        guard: &'g R::ReadGuard,
        out: &mut Vec<(Range<u64>, V)>,
    ) {
        let overlaps = |start: u64, end: u64| start < range.end && range.start < end;
        match node.body() {
            Body::Leaf { .. } => out.extend(
                node.entries()
                    .iter()
                    .filter(|e| overlaps(e.start, e.end))
                    .map(|e| (e.start..e.end, e.value)),
            ),
            Body::Branch { .. } => {
                for (i, s) in node.sums().iter().enumerate() {
                    if overlaps(s.start, s.end)
                        && let Some(child) = self.node_ref(node.child(i), guard)
                    {
                        self.collect(child, range, guard, out);
                    }
                }
            }
        }
    }

    /// The lowest address `a`, a multiple of 4096, such that
    /// `[a, a + len)` lies inside `within` and overlaps no entry.
    /// `None` if there is none, or if `len` is 0.
    pub fn find_gap(&self, len: u64, within: Range<u64>, guard: &R::ReadGuard) -> Option<u64> {
        if len == 0 {
            return None;
        }
        let search = GapSearch { len, within };
        // `prev_end`: the end of the last entry left of where we are looking,
        // i.e. where the current hole begins. Below every entry, that is 0.
        let mut prev_end = 0;
        if let Some(root) = self.node_ref(self.load_root(), guard)
            && let Some(a) = self.gap_in(root, &search, &mut prev_end, guard)
        {
            return Some(a);
        }
        // The hole above the last entry is unbounded.
        search.fits(prev_end, u64::MAX)
    }

    /// Looks for the gap in the holes before and inside `node`'s entries,
    /// advancing `prev_end` past them.
    fn gap_in(
        &self,
        node: &Node<V, B>,
        search: &GapSearch,
        prev_end: &mut u64,
        guard: &R::ReadGuard,
    ) -> Option<u64> {
        match node.body() {
            Body::Leaf { .. } => {
                for e in node.entries() {
                    if let Some(a) = search.fits(*prev_end, e.start) {
                        return Some(a);
                    }
                    *prev_end = e.end;
                }
            }
            Body::Branch { .. } => {
                for (i, s) in node.sums().iter().enumerate() {
                    if let Some(a) = search.fits(*prev_end, s.start) {
                        return Some(a);
                    }
                    // Descend only if some hole inside the child is big enough
                    // and could lie inside the window; otherwise jump over it.
                    if s.max_gap >= search.len
                        && s.end > search.within.start
                        && s.start < search.within.end
                    {
                        *prev_end = s.start;
                        let child = self.node_ref(node.child(i), guard)?;
                        if let Some(a) = self.gap_in(child, search, prev_end, guard) {
                            return Some(a);
                        }
                    }
                    *prev_end = s.end;
                    if s.end >= search.within.end {
                        break; // every later hole starts above the window
                    }
                }
            }
        }
        None
    }

    /// Dereferences a node pointer loaded inside the read-side section.
    #[inline]
    fn node_ref<'g>(
        &self,
        node: *mut Node<V, B>,
        _guard: &'g R::ReadGuard,
    ) -> Option<&'g Node<V, B>> {
        if node.is_null() {
            return None;
        }
        // SAFETY: `node` was loaded (Acquire) from the root or from a node
        // reachable from it while `_guard` is held. Writers free an unlinked
        // node only after a grace period, which cannot end while the guard
        // lives, so the node is allocated and initialized for `'g`.
        let n = unsafe { &*node };
        n.check_alive();
        Some(n)
    }
}

/// The first entry below `node` with `end > addr`.
///
/// # Safety
/// `node` is null or points to a node that, with everything reachable from it,
/// stays allocated during the call: a reader holds an RCU read guard, or the
/// (serialized) writer is looking at its own draft.
pub(super) unsafe fn next_from<V: Copy, const B: usize>(
    mut node: *mut Node<V, B>,
    addr: u64,
) -> Option<Entry<V>> {
    loop {
        if node.is_null() {
            return None;
        }
        // SAFETY: the caller keeps every reachable node alive.
        let n = unsafe { &*node };
        race_point!(TreeNodeLoaded, addr = addr);
        n.check_alive();
        match n.body() {
            Body::Leaf { .. } => {
                let entries = n.entries();
                let i = entries.partition_point(|e| e.end <= addr);
                return entries.get(i).copied();
            }
            Body::Branch { .. } => {
                // The first child whose last entry ends above `addr` holds
                // the answer (its summary says it has such an entry).
                let i = n.sums().partition_point(|s| s.end <= addr);
                if i == n.len() {
                    return None;
                }
                node = n.child(i);
            }
        }
    }
}

/// The parameters of one `find_gap` call.
struct GapSearch {
    len: u64,
    within: Range<u64>,
}

impl GapSearch {
    /// The lowest aligned fit inside the hole `[lo, hi)` and the window.
    fn fits(&self, lo: u64, hi: u64) -> Option<u64> {
        let start = lo
            .max(self.within.start)
            .checked_next_multiple_of(PAGE_SIZE)?;
        let end = hi.min(self.within.end);
        (start.checked_add(self.len)? <= end).then_some(start)
    }
}
