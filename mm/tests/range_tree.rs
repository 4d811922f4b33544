//! Unit tests of the range tree, single-threaded: the API's answers, the edge
//! cases, and splits and merges at every level of deep trees.

mod range_tree_support;

use std::panic::{AssertUnwindSafe, catch_unwind};

use mm::range_tree::RangeTree;
use range_tree_support::{LazyRcu, Model, drain, model_entries, model_gap};

type Tree<const B: usize = 16> = RangeTree<u64, LazyRcu, B>;

const PAGE: u64 = 4096;

/// Every entry, via the public API.
fn entries<const B: usize>(t: &Tree<B>) -> Vec<(std::ops::Range<u64>, u64)> {
    t.overlapping(0..u64::MAX, &())
}

/// Inserts (writers are trivially serialized: one thread).
fn ins<const B: usize>(t: &Tree<B>, s: u64, e: u64, v: u64) {
    // SAFETY: single-threaded test, so no concurrent writer.
    unsafe { t.insert(s..e, v) };
    t.check_invariants(&(), true);
}

fn rem<const B: usize>(t: &Tree<B>, s: u64) -> Option<u64> {
    // SAFETY: single-threaded test.
    let v = unsafe { t.remove(s) };
    t.check_invariants(&(), true);
    v
}

#[test]
fn empty_tree() {
    let t: Tree = Tree::new();
    assert_eq!(t.len(), 0);
    assert!(t.is_empty());
    assert_eq!(t.find(0, &()), None);
    assert_eq!(t.find(u64::MAX, &()), None);
    assert_eq!(t.find_next(0, &()), None);
    assert!(entries(&t).is_empty());
    assert_eq!(t.find_gap(PAGE, 0..1 << 20, &()), Some(0));
    assert_eq!(t.find_gap(PAGE, 1..1 << 20, &()), Some(PAGE));
    assert_eq!(t.find_gap(0, 0..1 << 20, &()), None);
    assert_eq!(t.find_gap(2 * PAGE, 0..PAGE, &()), None);
    assert_eq!(t.depth(&()), 0);
    // SAFETY: single-threaded test.
    assert_eq!(unsafe { t.remove(0) }, None);
    t.check_invariants(&(), true);
}

#[test]
fn find_respects_half_open_ranges() {
    let t: Tree = Tree::new();
    ins(&t, 0x1000, 0x3000, 1);
    ins(&t, 0x3000, 0x4000, 2); // adjacent to the first
    ins(&t, 0x8000, 0x9000, 3);
    assert_eq!(t.find(0xfff, &()), None);
    assert_eq!(t.find(0x1000, &()), Some((0x1000..0x3000, 1)));
    assert_eq!(t.find(0x2fff, &()), Some((0x1000..0x3000, 1)));
    assert_eq!(t.find(0x3000, &()), Some((0x3000..0x4000, 2)));
    assert_eq!(t.find(0x4000, &()), None);
    assert_eq!(t.find(0x8fff, &()), Some((0x8000..0x9000, 3)));
    assert_eq!(t.find(0x9000, &()), None);
    assert_eq!(t.find_next(0, &()), Some((0x1000..0x3000, 1)));
    assert_eq!(t.find_next(0x4000, &()), Some((0x8000..0x9000, 3)));
    assert_eq!(t.find_next(0x8800, &()), Some((0x8000..0x9000, 3)));
    assert_eq!(t.find_next(0x9000, &()), None);
    assert_eq!(t.len(), 3);
}

#[test]
fn overlapping_returns_exactly_the_overlaps_in_order() {
    let t: Tree = Tree::new();
    for i in 0..10 {
        ins(&t, i * 0x10000, i * 0x10000 + 0x1000, i);
    }
    assert_eq!(t.overlapping(0x1000..0x10000, &()), vec![]);
    assert_eq!(
        t.overlapping(0xfff..0x10001, &()),
        vec![(0..0x1000, 0), (0x10000..0x11000, 1)]
    );
    assert_eq!(t.overlapping(0x25000..0x25000, &()), vec![]);
    let all = t.overlapping(0..u64::MAX, &());
    assert_eq!(all.len(), 10);
    assert!(all.windows(2).all(|w| w[0].0.end <= w[1].0.start));
}

#[test]
fn find_gap_at_both_ends_and_between() {
    let t: Tree = Tree::new();
    ins(&t, 0x1000, 0x3000, 1);
    ins(&t, 0x5000, 0x6000, 2);
    assert_eq!(t.find_gap(0x1000, 0..u64::MAX, &()), Some(0)); // below the first
    assert_eq!(t.find_gap(0x2000, 0..u64::MAX, &()), Some(0x3000)); // between
    assert_eq!(t.find_gap(0x3000, 0..u64::MAX, &()), Some(0x6000)); // above the last
    assert_eq!(t.find_gap(0x1000, 0x1000..u64::MAX, &()), Some(0x3000));
    assert_eq!(t.find_gap(0x1000, 0x3001..u64::MAX, &()), Some(0x4000)); // aligned up
    assert_eq!(t.find_gap(0x1000, 0x6000..0x7000, &()), Some(0x6000)); // exact fit
    assert_eq!(t.find_gap(0x1000, 0x6000..0x6fff, &()), None);
    assert_eq!(t.find_gap(0x1000, 0x1000..0x3000, &()), None); // inside an entry
    assert_eq!(t.find_gap(0x1000, 0x2000..0x5000, &()), Some(0x3000));
    assert_eq!(t.find_gap(0x2001, 0x2000..0x5000, &()), None);
    assert_eq!(t.find_gap(u64::MAX, 0..u64::MAX, &()), None); // overflow, not a wrap
    // An entry reaching the top of the address space leaves no hole above it.
    ins(&t, u64::MAX - 0xfff, u64::MAX, 3);
    assert_eq!(
        t.find_gap(0x1000, u64::MAX - 0x2000..u64::MAX, &()),
        Some(0xffff_ffff_ffff_e000)
    );
    assert_eq!(t.find_gap(0x1000, u64::MAX - 0xfff..u64::MAX, &()), None);
}

#[test]
fn remove_returns_the_value_and_only_exact_starts_match() {
    let t: Tree = Tree::new();
    ins(&t, 0x1000, 0x3000, 7);
    ins(&t, 0x3000, 0x4000, 8);
    assert_eq!(rem(&t, 0x2000), None, "inside an entry, not its start");
    assert_eq!(rem(&t, 0x5000), None);
    assert_eq!(t.len(), 2);
    assert_eq!(rem(&t, 0x1000), Some(7));
    assert_eq!(t.find(0x1000, &()), None);
    assert_eq!(t.find(0x3000, &()), Some((0x3000..0x4000, 8)));
    assert_eq!(rem(&t, 0x1000), None);
    assert_eq!(rem(&t, 0x3000), Some(8));
    assert!(t.is_empty());
    assert_eq!(t.depth(&()), 0);
    drop(t);
    drain();
}

#[test]
fn replace_splits_and_merges() {
    let t: Tree = Tree::new();
    ins(&t, 0x1000, 0x4000, 1);
    ins(&t, 0x8000, 0x9000, 2);
    // Split [0x1000, 0x4000) in three, as mprotect of the middle page would.
    // SAFETY: single-threaded test.
    unsafe {
        t.replace(
            &[0x1000],
            &[
                (0x1000..0x2000, 10),
                (0x2000..0x3000, 11),
                (0x3000..0x4000, 12),
            ],
        )
    };
    t.check_invariants(&(), true);
    assert_eq!(
        entries(&t),
        vec![
            (0x1000..0x2000, 10),
            (0x2000..0x3000, 11),
            (0x3000..0x4000, 12),
            (0x8000..0x9000, 2)
        ]
    );
    assert_eq!(t.len(), 4);
    // Merge them back.
    // SAFETY: single-threaded test.
    unsafe { t.replace(&[0x1000, 0x2000, 0x3000], &[(0x1000..0x4000, 20)]) };
    t.check_invariants(&(), true);
    assert_eq!(entries(&t), vec![(0x1000..0x4000, 20), (0x8000..0x9000, 2)]);
    // Pure insert and pure remove through replace.
    // SAFETY: single-threaded test.
    unsafe { t.replace(&[], &[(0x5000..0x6000, 30)]) };
    // SAFETY: single-threaded test.
    unsafe { t.replace(&[0x8000], &[]) };
    t.check_invariants(&(), true);
    assert_eq!(
        entries(&t),
        vec![(0x1000..0x4000, 20), (0x5000..0x6000, 30)]
    );
    drop(t);
    drain();
}

#[test]
fn bad_writes_panic_and_leave_the_tree_unchanged() {
    let t: Tree<4> = Tree::new();
    for i in 0..40 {
        ins(&t, i * 0x2000, i * 0x2000 + 0x1000, i);
    }
    let before = entries(&t);
    let attempts: Vec<Box<dyn Fn()>> = vec![
        // SAFETY: single-threaded test: writers are serialized.
        Box::new(|| unsafe { t.insert(0x3000..0x3000, 0) }), // empty
        // SAFETY: single-threaded test: writers are serialized.
        Box::new(|| unsafe { t.insert(0x800..0x1800, 0) }), // overlaps the first
        // SAFETY: single-threaded test: writers are serialized.
        Box::new(|| unsafe { t.insert(0x1000..0x4000, 0) }), // spans the second
        // SAFETY: single-threaded test: writers are serialized.
        Box::new(|| unsafe { t.insert(0x4fff..0x5000, 0) }), // overlaps the end
        // The first removal succeeds in the draft, the second start is missing.
        // SAFETY: single-threaded test: writers are serialized.
        Box::new(|| unsafe { t.replace(&[0x2000, 0x3000], &[]) }),
        // The insert overlaps an entry that is not removed.
        // SAFETY: single-threaded test: writers are serialized.
        Box::new(|| unsafe { t.replace(&[0x2000], &[(0x2000..0x5000, 0)]) }),
    ];
    for (i, attempt) in attempts.iter().enumerate() {
        let r = catch_unwind(AssertUnwindSafe(attempt));
        assert!(r.is_err(), "attempt {i} did not panic");
        t.check_invariants(&(), true);
        assert_eq!(entries(&t), before, "attempt {i} changed the tree");
        assert_eq!(t.len(), 40);
    }
    drop(attempts);
    drop(t);
    drain();
}

/// A small deterministic random number generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
    }
}

/// Inserts and removes `n` entries in the given orders into a fan-out-4 tree,
/// checking it against a model after every step. With fan-out 4, a few
/// hundred entries make 4-5 levels, so splits and merges happen at each.
fn grow_and_shrink(n: u64, insert_order: &[u64], remove_order: &[u64]) {
    let t: Tree<4> = Tree::new();
    let mut model = Model::new();
    let mut max_depth = 0;
    for &i in insert_order {
        let (s, e) = (i * 3 * PAGE, i * 3 * PAGE + (1 + i % 2) * PAGE);
        ins(&t, s, e, i);
        model.insert(s, (e, i));
        max_depth = max_depth.max(t.depth(&()));
    }
    assert!(max_depth >= 4, "tree only reached depth {max_depth}");
    assert_eq!(entries(&t), model_entries(&model));
    for i in 0..n {
        let (s, e) = (i * 3 * PAGE, i * 3 * PAGE + (1 + i % 2) * PAGE);
        assert_eq!(t.find(s, &()), Some((s..e, i)));
        assert_eq!(t.find(e - 1, &()), Some((s..e, i)));
        assert_eq!(t.find(e, &()), None);
        assert_eq!(
            t.find_gap(PAGE, s..u64::MAX, &()),
            model_gap(&model, PAGE, s..u64::MAX)
        );
    }
    for &i in remove_order {
        assert_eq!(rem(&t, i * 3 * PAGE), Some(i));
        model.remove(&(i * 3 * PAGE));
        assert_eq!(t.len(), model.len());
        if model.len().is_multiple_of(16) {
            assert_eq!(entries(&t), model_entries(&model));
        }
    }
    assert_eq!(t.depth(&()), 0);
    drop(t);
    drain();
}

#[test]
fn deep_tree_ascending_inserts_and_removes() {
    let order: Vec<u64> = (0..400).collect();
    grow_and_shrink(400, &order, &order);
}

#[test]
fn deep_tree_descending_inserts_and_removes() {
    let order: Vec<u64> = (0..400).rev().collect();
    grow_and_shrink(400, &order, &order);
}

#[test]
fn deep_tree_random_order() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..5 {
        let mut ins_order: Vec<u64> = (0..300).collect();
        let mut rem_order = ins_order.clone();
        rng.shuffle(&mut ins_order);
        rng.shuffle(&mut rem_order);
        grow_and_shrink(300, &ins_order, &rem_order);
    }
}

/// An RCU that only counts `call_rcu`s (and leaks the nodes), private to
/// one test so that parallel tests cannot disturb the count.
struct CountingRcu;
static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
impl mm::platform::Rcu for CountingRcu {
    type ReadGuard = ();
    fn read_lock() {}
    fn call_rcu(callback: Box<dyn FnOnce() + Send>) {
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        callback(); // sound: this test has no concurrent reader
    }
    fn synchronize() {}
}

#[test]
fn replaced_nodes_are_retired_once_per_change() {
    let calls = || CALLS.swap(0, std::sync::atomic::Ordering::Relaxed);
    let t: RangeTree<u64, CountingRcu> = RangeTree::new();
    // SAFETY: single-threaded test: writers are serialized.
    unsafe { t.insert(0x1000..0x2000, 1) };
    assert_eq!(calls(), 0, "the first insert replaces nothing");
    // SAFETY: single-threaded test: writers are serialized.
    unsafe { t.insert(0x2000..0x3000, 2) };
    assert_eq!(calls(), 1, "the old root leaf is retired");
    // A replace retires its path in one batch, however many steps it takes.
    // SAFETY: single-threaded test: writers are serialized.
    unsafe { t.replace(&[0x1000, 0x2000], &[(0x1000..0x3000, 3)]) };
    assert_eq!(calls(), 1);
    // A failed remove changes nothing and retires nothing.
    // SAFETY: single-threaded test: writers are serialized.
    assert_eq!(unsafe { t.remove(0x5000) }, None);
    assert_eq!(calls(), 0);
    t.check_invariants(&(), true);
}

#[test]
fn hundred_thousand_entries() {
    const N: u64 = 100_000;
    let t: Tree = Tree::new();
    let mut rng = Rng(12345);
    let mut order: Vec<u64> = (0..N).collect();
    rng.shuffle(&mut order);
    // VMA-like: one to four pages each, a one-page hole after each.
    let range = |i: u64| (i * 5 * PAGE, i * 5 * PAGE + (1 + i % 4) * PAGE);
    for (k, &i) in order.iter().enumerate() {
        let (s, e) = range(i);
        // SAFETY: single-threaded test.
        unsafe { t.insert(s..e, i) };
        if k % 10_000 == 0 {
            drain();
        }
    }
    drain();
    t.check_invariants(&(), true);
    assert_eq!(t.len(), N as usize);
    let depth = t.depth(&());
    assert!((4..=6).contains(&depth), "depth {depth} for {N} entries");
    for i in 0..N {
        let (s, e) = range(i);
        assert_eq!(t.find(s, &()), Some((s..e, i)));
        assert_eq!(t.find(e - 1, &()), Some((s..e, i)));
        // The hole after entry i (one to four pages).
        assert_eq!(t.find(e, &()), None);
        assert_eq!(t.find_gap(PAGE, s..u64::MAX, &()), Some(e));
    }
    // The first hole of 5 pages is above the last entry.
    let top = range(N - 1).1;
    assert_eq!(t.find_gap(5 * PAGE, 0..u64::MAX, &()), Some(top));
    rng.shuffle(&mut order);
    for (k, &i) in order.iter().enumerate() {
        // SAFETY: single-threaded test.
        assert_eq!(unsafe { t.remove(range(i).0) }, Some(i));
        if k % 10_000 == 0 {
            drain();
        }
    }
    t.check_invariants(&(), true);
    assert!(t.is_empty());
    drop(t);
    drain();
}

#[test]
fn inserting_in_address_order_keeps_nodes_well_filled() {
    // Splitting alone would leave every node half full (8 of 16): 100,000
    // entries would need 6 levels. Pushing the overflow into the left
    // neighbour keeps nodes about 3/4 full, which fits them in 5.
    let t: Tree = Tree::new();
    for i in 0..100_000u64 {
        // SAFETY: single-threaded test.
        unsafe { t.insert(i * 2 * PAGE..(i * 2 + 1) * PAGE, i) };
    }
    drain();
    t.check_invariants(&(), true);
    assert_eq!(t.depth(&()), 5);
    drop(t);
    drain();
}
