//! An RCU-safe B-tree of non-overlapping address ranges, in the spirit of
//! Linux's maple tree: it maps each VMA's `[start, end)` to the VMA.
//!
//! # The idea
//! Readers (a page fault looking up its VMA) take **no lock**: they walk from
//! the root inside an RCU read-side section. Writers (mmap, munmap, mprotect)
//! are serialized by the caller's `mmap_lock` write side and never change a
//! node a reader might see. Instead a writer copies every node on the path it
//! changes (copy-on-write), builds the new version privately, and publishes it
//! with **one** Release store of the root pointer. A reader therefore sees the
//! whole old tree or the whole new tree, never a mix. The replaced nodes may
//! still be under a reader's feet, so they are freed only after a grace period
//! (`Rcu::call_rcu`); nodes that were never published are freed at once.
//!
//! # Shape
//! Leaves hold up to `B` entries; branches hold up to `B` children and, for
//! each child, a `Summary` of its subtree (first start, last
//! end, largest hole). Every node but the root is at least half full, and all
//! leaves are at the same depth, so a lookup costs O(log n). The summaries
//! also let [`RangeTree::find_gap`] skip subtrees with no hole big enough.
//!
//! # Files
//! - `node`: a node, and how nodes are allocated, poisoned and freed.
//! - `read`: the lockless lookups.
//! - `write`: copy-on-write insert/remove/replace and publication.
//! - `check`: the invariant checker the tests run after every step.

mod check;
mod node;
mod read;
mod write;

use core::cell::UnsafeCell;
use core::marker::PhantomData;

use crate::platform::Rcu;
use crate::sync::{AtomicPtr, AtomicUsize, Ordering};

use node::Node;

/// Default fan-out: 16 entries per leaf, 16 children per branch. A lookup in
/// 100,000 entries visits 5 nodes.
pub const DEFAULT_FANOUT: usize = 16;

/// A map from non-overlapping half-open ranges `[start, end)` to `V`.
///
/// `B` is the fan-out (at least 4); tests use a small one to get deep trees
/// from few entries.
pub struct RangeTree<V: Copy + Send + Sync + 'static, R: Rcu, const B: usize = DEFAULT_FANOUT> {
    /// The published tree; null when empty. Readers load it with Acquire,
    /// which pairs with the Release store in `write::Draft::commit`.
    root: AtomicPtr<Node<V, B>>,
    /// Number of entries. Only the (serialized) writer stores it; a reader
    /// racing with a writer may see the old or the new count.
    len: AtomicUsize,
    /// The writer's reusable buffers (see `write::Scratch`). Only a writer
    /// touches them, and writers are serialized by the contract of every
    /// writing function.
    scratch: UnsafeCell<write::Scratch<V, B>>,
    /// `R` only selects the RCU flavour; `fn() -> R` keeps the tree `Send` and
    /// `Sync` whatever `R` is. The tree owns its nodes, which hold `V`s.
    _marker: PhantomData<(fn() -> R, V)>,
}

impl<V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> RangeTree<V, R, B> {
    /// Minimum number of entries (leaf) or children (branch) of a non-root node.
    const MIN: usize = B / 2;

    /// An empty tree.
    pub fn new() -> Self {
        const { assert!(B >= 4 && B <= 255, "fan-out must be in 4..=255") };
        RangeTree {
            root: AtomicPtr::new(core::ptr::null_mut()),
            len: AtomicUsize::new(0),
            scratch: UnsafeCell::new(write::Scratch::default()),
            _marker: PhantomData,
        }
    }

    /// Number of entries (exact when no writer is running).
    pub fn len(&self) -> usize {
        // Relaxed: a count, not a pointer; nothing is read through it.
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the tree has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The published root, for a reader inside an RCU read-side section.
    fn load_root(&self) -> *mut Node<V, B> {
        // Acquire pairs with the Release store in `Draft::commit`: whatever
        // the writer wrote into the nodes before publishing them is visible.
        self.root.load(Ordering::Acquire)
    }
}

// SAFETY: the nodes hold `V`s (`Send + Sync`) and are shared with readers
// only through atomics; the scratch buffers (raw node pointers and spare
// vectors) are touched only by the one writer the writing functions' contract
// allows at a time, so sharing or sending the tree is like sending its `V`s.
unsafe impl<V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> Sync for RangeTree<V, R, B> {}
// SAFETY: as above.
unsafe impl<V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> Send for RangeTree<V, R, B> {}

impl<V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> Default for RangeTree<V, R, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> Drop for RangeTree<V, R, B> {
    /// Frees every node now. `&mut self` proves no reader or writer is using
    /// the tree; nodes already retired are owned by their `call_rcu`
    /// callbacks, not by the tree.
    fn drop(&mut self) {
        // Relaxed: `&mut self` already orders us after every writer.
        let root = self.root.load(Ordering::Relaxed);
        if !root.is_null() {
            // SAFETY: exclusive access (see above); the published tree owns
            // every node reachable from the root.
            unsafe { node::free_subtree(root) };
        }
    }
}
