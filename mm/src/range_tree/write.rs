//! The writer: copy-on-write changes, published with one Release store.
//!
//! A change is made on a [`Draft`]. The draft starts from the published root
//! and never modifies a node: to change one, it builds a new node (a *fresh*
//! node, which no reader can see yet) and drops the old one from its version.
//! Changing a leaf therefore means rebuilding the whole path from the root
//! down to it, O(B log n) work. A dropped node is either
//! - fresh (made earlier in the same draft, e.g. by the first half of a
//!   `replace`): nobody else ever saw it, so it is freed at once; or
//! - published: readers may be standing on it, so it is *retired*, and freed
//!   by `Rcu::call_rcu` once the draft is committed and a grace period passed.
//!
//! Frees are shallow: a dropped node's children usually live on in the new
//! version, and a node is only dropped together with its parent, so no kept
//! node ever points to a freed one.

use core::ops::Range;

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::RangeTree;
use super::node::{self, Entry, Node, Slot};
use super::read::next_from;
use crate::platform::Rcu;
use crate::sync::Ordering;

impl<V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> RangeTree<V, R, B> {
    /// Inserts `range -> value`.
    ///
    /// Panics if `range` is empty or overlaps an entry (the tree is then
    /// unchanged).
    ///
    /// # Safety
    /// Writers must be serialized: no other `insert`, `remove` or `replace` on
    /// this tree may run at the same time (the caller holds the `mmap_lock`
    /// for writing). Readers may run concurrently.
    pub unsafe fn insert(&self, range: Range<u64>, value: V) {
        let mut draft = Draft::new(self);
        draft.insert(range, value);
        draft.commit();
    }

    /// Removes the entry that starts exactly at `start`, returning its value.
    ///
    /// # Safety
    /// As for [`insert`](Self::insert).
    pub unsafe fn remove(&self, start: u64) -> Option<V> {
        let mut draft = Draft::new(self);
        let value = draft.remove(start)?;
        draft.commit();
        Some(value)
    }

    /// Removes the entries starting at each of `remove`, then inserts
    /// `insert`, and publishes the result as one change: a concurrent reader
    /// sees either none of it or all of it (so splitting a VMA in two never
    /// shows a hole).
    ///
    /// Panics, leaving the tree unchanged, if some start in `remove` has no
    /// entry, or an inserted range is empty or overlaps.
    ///
    /// # Safety
    /// As for [`insert`](Self::insert).
    pub unsafe fn replace(&self, remove: &[u64], insert: &[(Range<u64>, V)]) {
        // SAFETY: the caller's contract is ours.
        unsafe {
            self.replace_with(
                remove.iter().copied(),
                insert.iter().map(|(r, v)| (r.clone(), *v)),
            )
        };
    }

    /// As [`replace`](Self::replace), taking the starts and the new entries
    /// from iterators, so a caller need not collect them first. `insert` is
    /// consumed after the removals and before the publication.
    ///
    /// # Safety
    /// As for [`insert`](Self::insert).
    pub unsafe fn replace_with(
        &self,
        remove: impl IntoIterator<Item = u64>,
        insert: impl IntoIterator<Item = (Range<u64>, V)>,
    ) {
        let mut draft = Draft::new(self);
        for start in remove {
            if draft.remove(start).is_none() {
                panic!("range tree replace: no entry starts at {start:#x}");
            }
        }
        for (range, value) in insert {
            draft.insert(range, value);
        }
        draft.commit();
    }
}

/// Buffers the writer keeps from one change to the next, so that a change
/// allocates no vectors once they have grown. Writers are serialized (the
/// contract of every writing function), so one set per tree is enough; a
/// draft takes it out of the tree and puts it back when it ends.
pub(super) struct Scratch<V, const B: usize> {
    fresh: Vec<*mut Node<V, B>>,
    retired: Vec<*mut Node<V, B>>,
    /// Spare vectors for a leaf's entries and a branch's slots; one is
    /// taken per level of the path being rebuilt.
    entries: Vec<Vec<Entry<V>>>,
    slots: Vec<Vec<Slot<V, B>>>,
}

impl<V, const B: usize> Default for Scratch<V, B> {
    fn default() -> Self {
        Scratch {
            fresh: Vec::new(),
            retired: Vec::new(),
            entries: Vec::new(),
            slots: Vec::new(),
        }
    }
}

/// A private next version of the tree, under construction.
struct Draft<'t, V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> {
    tree: &'t RangeTree<V, R, B>,
    root: *mut Node<V, B>,
    len: usize,
    /// The tree's buffers, on loan for the draft's lifetime. `fresh`: nodes
    /// made by this draft (unpublished, ours alone); `retired`: published
    /// nodes this draft no longer uses.
    s: Scratch<V, B>,
}

/// The result of changing a subtree: one node, or two after a split.
enum Made<V, const B: usize> {
    One(*mut Node<V, B>),
    Two(*mut Node<V, B>, *mut Node<V, B>),
}

impl<'t, V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> Draft<'t, V, R, B> {
    fn new(tree: &'t RangeTree<V, R, B>) -> Self {
        Draft {
            tree,
            // Relaxed: writers are serialized by the caller's lock, whose
            // release/acquire already orders us after the previous writer's
            // stores; we are the only one storing these.
            root: tree.root.load(Ordering::Relaxed),
            len: tree.len.load(Ordering::Relaxed),
            // SAFETY: writers are serialized (the caller's contract), so no
            // other draft holds the scratch; it is put back by `Drop`.
            s: core::mem::take(unsafe { &mut *tree.scratch.get() }),
        }
    }

    /// An empty vector for a leaf's entries, from the spares.
    fn take_entries(&mut self) -> Vec<Entry<V>> {
        self.s.entries.pop().unwrap_or_default()
    }

    fn give_entries(&mut self, mut v: Vec<Entry<V>>) {
        v.clear();
        self.s.entries.push(v);
    }

    /// An empty vector for a branch's slots, from the spares.
    fn take_slots(&mut self) -> Vec<Slot<V, B>> {
        self.s.slots.pop().unwrap_or_default()
    }

    fn give_slots(&mut self, mut v: Vec<Slot<V, B>>) {
        v.clear();
        self.s.slots.push(v);
    }

    /// Makes `range -> value` part of the draft.
    fn insert(&mut self, range: Range<u64>, value: V) {
        assert!(
            range.start < range.end,
            "range tree insert: empty range {range:#x?}"
        );
        // SAFETY: the draft's nodes are published ones (freed only by a later
        // writer, and we are the only writer) or our own fresh ones.
        if let Some(e) = unsafe { next_from(self.root, range.start) } {
            assert!(
                e.start >= range.end,
                "range tree insert: {range:#x?} overlaps {:#x?}",
                e.start..e.end
            );
        }
        let entry = Entry {
            start: range.start,
            end: range.end,
            value,
        };
        self.root = if self.root.is_null() {
            self.alloc(Node::leaf(&[entry]))
        } else {
            match self.insert_in(self.root, entry) {
                Made::One(root) => root,
                Made::Two(a, b) => {
                    let slots = [self.slot(a), self.slot(b)];
                    self.alloc(Node::branch(&slots))
                }
            }
        };
        self.len += 1;
    }

    /// Copies the path from `node` down to the leaf where `e` belongs, with
    /// `e` added, splitting nodes that overflow.
    fn insert_in(&mut self, node: *mut Node<V, B>, e: Entry<V>) -> Made<V, B> {
        let n = self.node(node);
        if n.is_leaf() && n.len() < B && self.is_fresh(node) {
            // A leaf this draft made (the second step of a `replace`, e.g.
            // an mprotect's remove then insert): change it in place rather
            // than copy it once more.
            let i = n.entries().partition_point(|x| x.start < e.start);
            // SAFETY: fresh means made by this draft and never published, so
            // no reader can reach it; `n` is not used after this point.
            unsafe { (*node).leaf_insert(i, e) };
            return Made::One(node);
        }
        let made = if n.is_leaf() {
            let mut items = self.take_entries();
            items.extend_from_slice(n.entries());
            let i = items.partition_point(|x| x.start < e.start);
            items.insert(i, e);
            let made = self.build(&items, Node::leaf, false);
            self.give_entries(items);
            made
        } else {
            let mut slots = self.take_slots();
            slots.extend(n.slots());
            // The first child ending above `e.start` (e fits just before its
            // entry there, since nothing overlaps), or else the last child.
            let i = n
                .sums()
                .partition_point(|s| s.end <= e.start)
                .min(n.len() - 1);
            match self.insert_in(slots[i].child, e) {
                // The child split and its left neighbour has room: rather than
                // add a child here, pool the three and refill the neighbour.
                // Inserting in address order would otherwise leave every node
                // half full (a deeper tree); this keeps them about 3/4 full.
                // (`a` and `b` are fresh, so they are freed at once.)
                Made::Two(a, b) if i > 0 && self.node(slots[i - 1].child).len() < B => {
                    let left = slots[i - 1].child;
                    let pooled = self.rebuild(&[left, a, b], true);
                    self.put(&mut slots, i - 1..i + 1, pooled);
                }
                made => self.put(&mut slots, i..i + 1, made),
            }
            let made = self.build(&slots, Node::branch, false);
            self.give_slots(slots);
            made
        };
        self.drop_node(node);
        made
    }

    /// Removes the entry starting at `start` from the draft.
    fn remove(&mut self, start: u64) -> Option<V> {
        if self.root.is_null() {
            return None;
        }
        let (mut root, value) = self.remove_in(self.root, start)?;
        // A root branch left with one child is replaced by that child; an
        // empty root leaf by the empty tree.
        loop {
            let r = self.node(root);
            if r.is_leaf() && r.len() == 0 {
                self.drop_node(root);
                root = core::ptr::null_mut();
                break;
            }
            if r.is_leaf() || r.len() > 1 {
                break;
            }
            let only = r.child(0);
            self.drop_node(root);
            root = only;
        }
        self.root = root;
        self.len -= 1;
        Some(value)
    }

    /// Copies the path from `node` down to the entry starting at `start`, with
    /// the entry gone, merging or rebalancing nodes that fall under half full.
    /// Returns `None`, having changed nothing, if there is no such entry.
    fn remove_in(&mut self, node: *mut Node<V, B>, start: u64) -> Option<(*mut Node<V, B>, V)> {
        let n = self.node(node);
        let made = if n.is_leaf() {
            let i = n.entries().binary_search_by_key(&start, |e| e.start).ok()?;
            let mut items = self.take_entries();
            items.extend_from_slice(n.entries());
            let value = items.remove(i).value;
            let leaf = self.alloc(Node::leaf(&items));
            self.give_entries(items);
            (leaf, value)
        } else {
            let i = n.sums().partition_point(|s| s.end <= start);
            if i == n.len() || n.sums()[i].start > start {
                return None;
            }
            let (child, value) = self.remove_in(n.child(i), start)?;
            let mut slots = self.take_slots();
            slots.extend(n.slots());
            slots[i] = self.slot(child);
            if self.node(child).len() < RangeTree::<V, R, B>::MIN {
                self.rebalance(&mut slots, i);
            }
            let branch = self.alloc(Node::branch(&slots));
            self.give_slots(slots);
            (branch, value)
        };
        self.drop_node(node);
        Some(made)
    }

    /// Child `i` of `slots` is under half full: pool its items with a
    /// neighbour's and rebuild the pair as one node (merge) or two evenly
    /// filled ones (rebalance).
    fn rebalance(&mut self, slots: &mut Vec<Slot<V, B>>, i: usize) {
        if slots.len() < 2 {
            return; // only reachable with a malformed tree; the root is fixed elsewhere
        }
        let left = if i + 1 < slots.len() { i } else { i - 1 };
        let pooled = self.rebuild(&[slots[left].child, slots[left + 1].child], false);
        self.put(slots, left..left + 2, pooled);
    }

    /// Pools the items of consecutive sibling nodes (all leaves or all
    /// branches) and rebuilds them, dropping the originals.
    fn rebuild(&mut self, nodes: &[*mut Node<V, B>], pack_left: bool) -> Made<V, B> {
        let made = if self.node(nodes[0]).is_leaf() {
            let mut items = self.take_entries();
            for &p in nodes {
                items.extend_from_slice(self.node(p).entries());
            }
            let made = self.build(&items, Node::leaf, pack_left);
            self.give_entries(items);
            made
        } else {
            let mut items = self.take_slots();
            for &p in nodes {
                items.extend(self.node(p).slots());
            }
            let made = self.build(&items, Node::branch, pack_left);
            self.give_slots(items);
            made
        };
        for &p in nodes {
            self.drop_node(p);
        }
        made
    }

    /// One node holding `items` (at most `2 B` of them), or two if they do not
    /// fit: evenly filled, or with the left one as full as it can be.
    fn build<T>(
        &mut self,
        items: &[T],
        make: fn(&[T]) -> Box<Node<V, B>>,
        pack_left: bool,
    ) -> Made<V, B> {
        let n = items.len();
        if n <= B {
            return Made::One(self.alloc(make(items)));
        }
        // Either way both parts get MIN..=B items, as B < n <= 2 B.
        let left = if pack_left {
            B.min(n - RangeTree::<V, R, B>::MIN)
        } else {
            n / 2
        };
        let (a, b) = items.split_at(left);
        Made::Two(self.alloc(make(a)), self.alloc(make(b)))
    }

    /// Replaces `slots[at]` by the node(s) in `made`.
    fn put(&self, slots: &mut Vec<Slot<V, B>>, at: Range<usize>, made: Made<V, B>) {
        let new = match made {
            Made::One(c) => [Some(self.slot(c)), None],
            Made::Two(c, d) => [Some(self.slot(c)), Some(self.slot(d))],
        };
        slots.splice(at, new.into_iter().flatten());
    }

    fn alloc(&mut self, node: Box<Node<V, B>>) -> *mut Node<V, B> {
        let p = node::into_raw(node);
        self.s.fresh.push(p);
        p
    }

    fn slot(&self, child: *mut Node<V, B>) -> Slot<V, B> {
        Slot {
            child,
            sum: self.node(child).summary(),
        }
    }

    /// Whether `node` was made by this draft (and is therefore unpublished).
    fn is_fresh(&self, node: *mut Node<V, B>) -> bool {
        self.s.fresh.contains(&node)
    }

    /// Takes `node` out of the draft: fresh nodes die now, published ones
    /// after the grace period that follows the commit.
    fn drop_node(&mut self, node: *mut Node<V, B>) {
        if let Some(i) = self.s.fresh.iter().position(|&p| p == node) {
            self.s.fresh.swap_remove(i);
            // SAFETY: fresh means never published, so no reader has it; the
            // draft has just stopped using it (and its parent, which is being
            // rebuilt too).
            unsafe { node::free_node(node) };
        } else {
            self.s.retired.push(node);
        }
    }

    /// The node behind a pointer the draft holds. The reference is good until
    /// the draft drops that node (callers copy what they need first).
    fn node<'n>(&self, p: *mut Node<V, B>) -> &'n Node<V, B> {
        // SAFETY: every pointer the draft holds is to a published node (only
        // a writer frees those, after retiring them, and we are the only
        // writer) or to one of its own fresh nodes, which it frees only in
        // `drop_node`, after its last use.
        unsafe { &*p }
    }

    /// Publishes the draft and hands the retired nodes to RCU.
    fn commit(mut self) {
        // Release pairs with the Acquire load of the root by readers
        // (`RangeTree::load_root`): a reader that sees the new root also sees
        // every node the draft built beneath it.
        self.tree.root.store(self.root, Ordering::Release);
        // Relaxed: a statistic, not used to reach memory.
        self.tree.len.store(self.len, Ordering::Relaxed);
        self.s.fresh.clear(); // now part of the published tree
        if !self.s.retired.is_empty() {
            let retired = Retired::take(&mut self.s.retired);
            R::call_rcu(Box::new(move || retired.free()));
        }
    }
}

impl<V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> Drop for Draft<'_, V, R, B> {
    /// An uncommitted draft (a panic on bad input) frees what it built; the
    /// published tree is untouched.
    fn drop(&mut self) {
        for &p in &self.s.fresh {
            // SAFETY: never published; the draft is gone, so nothing uses it.
            unsafe { node::free_node(p) };
        }
        self.s.fresh.clear();
        // Nodes retired by a draft that is not committed are still in the
        // published tree (it was not changed): forget them.
        self.s.retired.clear();
        // SAFETY: writers are serialized; this draft is the one that took
        // the scratch in `new`, and gives it back as it ends.
        unsafe { *self.tree.scratch.get() = core::mem::take(&mut self.s) };
    }
}

/// How many retired nodes travel inside the callback itself. A change to a
/// small tree retires a node or two per level; only bigger changes need a
/// vector (one allocation fewer per change in the common case).
const INLINE_RETIRED: usize = 4;

/// Nodes unlinked by a committed draft, waiting for their grace period.
struct Retired<V, const B: usize> {
    few: [*mut Node<V, B>; INLINE_RETIRED],
    n: usize,
    more: Vec<*mut Node<V, B>>,
}

// SAFETY: after the commit, the retired nodes are reachable only by readers
// that started before it (and that the grace period waits for); this value is
// their only owner, so it may free them on any thread. Their `V`s are `Send`.
unsafe impl<V: Send, const B: usize> Send for Retired<V, B> {}

impl<V, const B: usize> Retired<V, B> {
    /// Moves the nodes of `list` out (leaving it empty, its buffer kept for
    /// the next draft when they fit inline).
    fn take(list: &mut Vec<*mut Node<V, B>>) -> Self {
        let mut r = Retired {
            few: [core::ptr::null_mut(); INLINE_RETIRED],
            n: list.len(),
            more: Vec::new(),
        };
        if list.len() <= INLINE_RETIRED {
            r.few[..list.len()].copy_from_slice(list);
            list.clear();
        } else {
            r.more = core::mem::take(list);
        }
        r
    }

    fn free(self) {
        race_point!(TreeNodesFree);
        // Inline or in `more`, never both (see `take`).
        let few = if self.n <= INLINE_RETIRED {
            &self.few[..self.n]
        } else {
            &[]
        };
        for &p in few.iter().chain(&self.more) {
            // SAFETY: `call_rcu` runs us after a grace period, so no reader
            // still holds `p`; each node was retired exactly once.
            unsafe { node::free_node(p) };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::host::Host;

    /// A reader standing on the published root keeps seeing what it saw:
    /// no writer step, the in-place insert into a fresh leaf included,
    /// changes a published node.
    #[test]
    fn published_nodes_never_change() {
        let t: RangeTree<u64, Host, 4> = RangeTree::new();
        let page = 4096;
        let entries = |p: *mut Node<u64, 4>| -> Vec<(u64, u64, u64)> {
            // SAFETY: the caller's read section keeps `p` allocated.
            unsafe { &*p }
                .entries()
                .iter()
                .map(|e| (e.start, e.end, e.value))
                .collect()
        };
        // SAFETY: single-threaded test, so writers are serialized.
        unsafe {
            for i in 0..2u64 {
                t.insert(i * 2 * page..(i * 2 + 1) * page, i);
            }
            // Remove then insert in one draft: the insert goes into the leaf
            // the removal made, in place.
            t.replace(&[0], &[(0..page, 10)]);
        }
        let reader = Host::read_lock();
        let root = t.load_root();
        let before = entries(root);
        assert_eq!(before, [(0, page, 10), (2 * page, 3 * page, 1)]);
        // The published root has room: a writer must still copy it.
        // SAFETY: as above.
        unsafe { t.insert(7 * page..8 * page, 11) };
        let after = entries(root);
        assert_eq!(before, after, "a published leaf was changed in place");
        assert_eq!(t.find(0, &reader), Some((0..page, 10)));
        assert_eq!(t.find(7 * page, &reader), Some((7 * page..8 * page, 11)));
    }
}
