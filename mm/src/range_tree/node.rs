//! One node of the range tree, and how nodes are born and die.
//!
//! A node is immutable once a reader can reach it: the writer fills it in
//! privately, publishes it (with a Release store of the root), and from then on
//! only ever replaces it by a copy. That is why the fields other than the child
//! pointers are plain data: no reader can race with a write to them.

use core::mem::MaybeUninit;
use core::ptr;

use alloc::boxed::Box;

use crate::sync::{AtomicPtr, Ordering};

/// Written into every live node; a reader that finds anything else has reached
/// freed memory (see [`free_node`]).
pub(super) const NODE_MAGIC: u64 = 0x7261_6e67_6574_7265; // "rangetre"

/// Byte pattern a freed node is overwritten with in debug builds (the value
/// Linux's slab poisoning uses).
pub(super) const POISON_BYTE: u8 = 0x6b;

/// One stored range and its value.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry<V> {
    pub start: u64,
    pub end: u64,
    pub value: V,
}

/// What a parent knows about one child's subtree, so that a search can decide
/// where to go without touching the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Summary {
    /// Start of the subtree's first entry.
    pub start: u64,
    /// End of the subtree's last entry.
    pub end: u64,
    /// Largest hole between two consecutive entries of the subtree
    /// (holes before its first or after its last entry are the parent's).
    pub max_gap: u64,
}

impl Summary {
    const EMPTY: Summary = Summary {
        start: 0,
        end: 0,
        max_gap: 0,
    };

    /// The summary of several consecutive subtrees, left to right.
    fn combine(parts: impl Iterator<Item = Summary>) -> Summary {
        let mut acc: Option<Summary> = None;
        for s in parts {
            acc = Some(match acc {
                None => s,
                Some(a) => Summary {
                    start: a.start,
                    end: s.end,
                    max_gap: a.max_gap.max(s.max_gap).max(s.start - a.end),
                },
            });
        }
        acc.unwrap_or(Summary::EMPTY)
    }
}

/// A branch's reference to one child: the pointer and the child's summary.
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot<V, const B: usize> {
    pub child: *mut Node<V, B>,
    pub sum: Summary,
}

pub(super) enum Body<V, const B: usize> {
    Leaf {
        entries: [MaybeUninit<Entry<V>>; B],
    },
    Branch {
        /// Atomic because lockless readers load them. They never change
        /// after the node is published, but keeping them atomic lets loom see
        /// every pointer a reader follows.
        children: [AtomicPtr<Node<V, B>>; B],
        sums: [Summary; B],
    },
}

/// A node with up to `B` entries (a leaf) or `B` children (a branch).
pub(super) struct Node<V, const B: usize> {
    magic: u64,
    len: u8,
    body: Body<V, B>,
}

impl<V: Copy, const B: usize> Node<V, B> {
    /// A new leaf holding `entries` (sorted, non-overlapping, at most `B`).
    pub fn leaf(items: &[Entry<V>]) -> Box<Self> {
        assert!(items.len() <= B);
        let mut entries = [const { MaybeUninit::uninit() }; B];
        for (dst, src) in entries.iter_mut().zip(items) {
            dst.write(*src);
        }
        Box::new(Node {
            magic: NODE_MAGIC,
            len: items.len() as u8,
            body: Body::Leaf { entries },
        })
    }

    /// A new branch over `slots` (in address order, 1..=B of them).
    pub fn branch(slots: &[Slot<V, B>]) -> Box<Self> {
        assert!(!slots.is_empty() && slots.len() <= B);
        let children = core::array::from_fn(|i| {
            AtomicPtr::new(slots.get(i).map_or(ptr::null_mut(), |s| s.child))
        });
        let mut sums = [Summary::EMPTY; B];
        for (dst, src) in sums.iter_mut().zip(slots) {
            *dst = src.sum;
        }
        Box::new(Node {
            magic: NODE_MAGIC,
            len: slots.len() as u8,
            body: Body::Branch { children, sums },
        })
    }

    /// Inserts `e` at position `i` of this leaf, which has room. Only for a
    /// node no reader can reach (made by the current draft, unpublished):
    /// published nodes never change (see the module docs).
    pub fn leaf_insert(&mut self, i: usize, e: Entry<V>) {
        let len = self.len();
        assert!(len < B && i <= len, "leaf_insert out of room or range");
        let Body::Leaf { entries } = &mut self.body else {
            unreachable!("leaf_insert on a branch")
        };
        entries.copy_within(i..len, i + 1);
        entries[i].write(e);
        self.len += 1;
    }

    /// Whether this node still carries the live-node magic (a freed one has
    /// been poisoned, in debug builds, or reused by the allocator).
    pub fn is_alive(&self) -> bool {
        self.magic == NODE_MAGIC
    }

    /// Panics (in debug builds) if this node has been freed. Best effort: the
    /// allocator may already have reused the memory for another node.
    #[inline]
    pub fn check_alive(&self) {
        debug_assert_eq!(
            self.magic, NODE_MAGIC,
            "range tree: a reader reached a freed node"
        );
    }

    pub fn len(&self) -> usize {
        // A poisoned count (0x6b) is more than any fan-out up to 107: a node
        // freed under a reader's feet is caught here too, before the count
        // sends it past the end of the node.
        debug_assert!(
            self.len as usize <= B,
            "range tree: a reader reached a freed node"
        );
        self.len as usize
    }

    pub fn body(&self) -> &Body<V, B> {
        &self.body
    }

    pub fn is_leaf(&self) -> bool {
        matches!(self.body, Body::Leaf { .. })
    }

    /// The leaf's entries; empty for a branch.
    pub fn entries(&self) -> &[Entry<V>] {
        match &self.body {
            // SAFETY: `leaf` initialized the first `len` entries and nothing
            // writes to a node after that; `MaybeUninit<T>` has `T`'s layout.
            Body::Leaf { entries } => unsafe {
                core::slice::from_raw_parts(entries.as_ptr().cast::<Entry<V>>(), self.len())
            },
            Body::Branch { .. } => &[],
        }
    }

    /// Child `i` of a branch, for a lockless reader.
    #[inline]
    pub fn child(&self, i: usize) -> *mut Node<V, B> {
        match &self.body {
            // Acquire pairs with the writer's Release store of the root that
            // published this node (and everything it points to). It would also
            // be what makes a future in-place child swap safe.
            Body::Branch { children, .. } => {
                let child = children[i].load(Ordering::Acquire);
                debug_assert_ne!(
                    child as usize,
                    usize::from_ne_bytes([POISON_BYTE; size_of::<usize>()]),
                    "range tree: a reader took a pointer out of a freed node"
                );
                child
            }
            Body::Leaf { .. } => unreachable!("child() on a leaf"),
        }
    }

    /// The branch's summaries, one per child.
    pub fn sums(&self) -> &[Summary] {
        match &self.body {
            Body::Branch { sums, .. } => &sums[..self.len()],
            Body::Leaf { .. } => &[],
        }
    }

    /// The branch's children with their summaries (writer side).
    pub fn slots(&self) -> impl Iterator<Item = Slot<V, B>> + '_ {
        self.sums().iter().enumerate().map(|(i, &sum)| Slot {
            child: self.child(i),
            sum,
        })
    }

    /// This node's own summary, computed from its contents.
    pub fn summary(&self) -> Summary {
        match &self.body {
            Body::Leaf { .. } => Summary::combine(self.entries().iter().map(|e| Summary {
                start: e.start,
                end: e.end,
                max_gap: 0,
            })),
            Body::Branch { .. } => Summary::combine(self.sums().iter().copied()),
        }
    }
}

/// Gives `node` to the tree as a raw pointer (the tree frees it by hand).
pub(super) fn into_raw<V, const B: usize>(node: Box<Node<V, B>>) -> *mut Node<V, B> {
    Box::into_raw(node)
}

/// Frees one node (not its children).
///
/// # Safety
/// `node` came from [`into_raw`], is freed only once, and no reader can reach
/// it any more: it was never published, or a grace period has passed since it
/// was unlinked.
pub(super) unsafe fn free_node<V, const B: usize>(node: *mut Node<V, B>) {
    // SAFETY: the caller hands over sole ownership of a node made by `into_raw`.
    let boxed = unsafe { Box::from_raw(node) };
    #[cfg(all(debug_assertions, not(loom)))]
    {
        // Poison before freeing, so a reader that wrongly still holds the
        // pointer fails `check_alive` instead of reading stale entries.
        // Nodes have no drop glue outside loom (plain atomics, `Copy` values),
        // so overwriting the bytes and then freeing the memory is all a drop
        // would do.
        const { assert!(!core::mem::needs_drop::<Node<V, B>>()) };
        let raw = Box::into_raw(boxed);
        // SAFETY: we own the allocation; it is `size_of::<Node>()` bytes.
        unsafe {
            ptr::write_bytes(raw.cast::<u8>(), POISON_BYTE, size_of::<Node<V, B>>());
            alloc::alloc::dealloc(raw.cast(), core::alloc::Layout::new::<Node<V, B>>());
        }
    }
    #[cfg(not(all(debug_assertions, not(loom))))]
    drop(boxed);
}

/// Frees `node` and every node below it.
///
/// # Safety
/// As for [`free_node`], for the whole subtree.
pub(super) unsafe fn free_subtree<V: Copy, const B: usize>(node: *mut Node<V, B>) {
    // SAFETY: the caller guarantees the subtree is alive and ours alone.
    let n = unsafe { &*node };
    if !n.is_leaf() {
        for i in 0..n.len() {
            // SAFETY: each child belongs to this subtree only (a published
            // tree shares no node between two parents).
            unsafe { free_subtree(n.child(i)) };
        }
    }
    // SAFETY: the children are gone; nothing else refers to `node`.
    unsafe { free_node(node) };
}
