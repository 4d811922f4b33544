//! The invariant checker: what "a well-formed tree" means, as code.
//!
//! Tests run it after every change. It walks the whole tree, so it is O(n).

use super::RangeTree;
use super::node::{Body, Node, Summary};
use crate::platform::Rcu;

/// What the walk carries from one node to the next.
struct Walk {
    /// Depth of the first leaf found; every leaf must be at this depth.
    leaf_depth: Option<usize>,
    /// End of the last entry seen, in address order.
    prev_end: Option<u64>,
    entries: usize,
}

impl<V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> RangeTree<V, R, B> {
    /// Panics, saying which, unless every invariant holds:
    /// entries are non-empty, sorted and non-overlapping; all leaves are at
    /// the same depth; every node but the root is at least half full and no
    /// node is over full (the root leaf is non-empty: an empty tree has no
    /// root; a root branch has two or more children); every summary a branch
    /// caches matches its child's contents; `len()` counts the entries; no
    /// reachable node is freed.
    ///
    /// Meant for tests. Inside a read-side section it also works while a
    /// writer runs: it then checks the version it saw, and skips the `len()`
    /// check (the count is stored apart from the root, so it may be from the
    /// other version); pass `quiescent = false` for that.
    pub fn check_invariants(&self, _guard: &R::ReadGuard, quiescent: bool) {
        let root = self.load_root();
        if root.is_null() {
            assert!(!quiescent || self.is_empty(), "empty tree with len() != 0");
            return;
        }
        let mut walk = Walk {
            leaf_depth: None,
            prev_end: None,
            entries: 0,
        };
        // SAFETY: loaded inside the read-side section `_guard` proves, so
        // every reachable node stays allocated while we walk.
        unsafe { Self::check_node(root, 0, &mut walk) };
        if quiescent {
            assert_eq!(walk.entries, self.len(), "len() does not count the entries");
        }
    }

    /// Checks the subtree at `node` and returns its actual summary.
    ///
    /// # Safety
    /// Every node reachable from `node` stays allocated during the call.
    unsafe fn check_node(node: *mut Node<V, B>, depth: usize, walk: &mut Walk) -> Summary {
        // SAFETY: the caller keeps the subtree alive.
        let n = unsafe { &*node };
        assert!(n.is_alive(), "reachable node at depth {depth} is freed");
        let is_root = depth == 0;
        let min = match (is_root, n.is_leaf()) {
            (true, true) => 1,
            (true, false) => 2,
            (false, _) => Self::MIN,
        };
        assert!(
            (min..=B).contains(&n.len()),
            "node at depth {depth} holds {} items, not {min}..={B}",
            n.len()
        );
        match n.body() {
            Body::Leaf { .. } => {
                let first = *walk.leaf_depth.get_or_insert(depth);
                assert_eq!(first, depth, "leaves at depths {first} and {depth}");
                for e in n.entries() {
                    assert!(e.start < e.end, "empty entry {:#x?}", e.start..e.end);
                    if let Some(prev) = walk.prev_end {
                        assert!(
                            prev <= e.start,
                            "entry {:#x?} overlaps or precedes one ending at {prev:#x}",
                            e.start..e.end
                        );
                    }
                    walk.prev_end = Some(e.end);
                    walk.entries += 1;
                }
            }
            Body::Branch { .. } => {
                for (i, cached) in n.sums().iter().enumerate() {
                    // SAFETY: a child of a live node is in the same subtree.
                    let actual = unsafe { Self::check_node(n.child(i), depth + 1, walk) };
                    assert_eq!(
                        *cached, actual,
                        "summary cached for child {i} at depth {depth} is stale"
                    );
                }
            }
        }
        n.summary()
    }
}

impl<V: Copy + Send + Sync + 'static, R: Rcu, const B: usize> RangeTree<V, R, B> {
    /// Number of levels (0 for an empty tree, 1 for a lone root leaf).
    pub fn depth(&self, _guard: &R::ReadGuard) -> usize {
        let mut node = self.load_root();
        let mut depth = 0;
        while !node.is_null() {
            depth += 1;
            // SAFETY: loaded inside the read-side section `_guard` proves.
            let n = unsafe { &*node };
            n.check_alive();
            node = if n.is_leaf() {
                core::ptr::null_mut()
            } else {
                n.child(0)
            };
        }
        depth
    }
}
