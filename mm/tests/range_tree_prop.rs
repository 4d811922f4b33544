//! Property tests: random sequences of inserts, removes, replaces, lookups and
//! gap searches, each checked against a `BTreeMap` model, with the tree's
//! invariant checker run after every step.
//!
//! Both a fan-out-4 tree (deep: splits and merges at several levels from a few
//! dozen entries) and the default fan-out-16 tree are tested. Addresses are
//! drawn from a small window so operations collide often.

mod range_tree_support;

use std::ops::Range;

use mm::range_tree::RangeTree;
use proptest::prelude::*;
use range_tree_support::{LazyRcu, Model, drain, model_entries, model_gap, model_overlaps};

const PAGE: u64 = 4096;
/// Addresses are in `[0, WINDOW_PAGES * PAGE)`.
const WINDOW_PAGES: u64 = 512;

#[derive(Clone, Debug)]
enum Op {
    /// Insert `[start, start + len)` pages (skipped, after checking that the
    /// tree agrees it overlaps, if it does).
    Insert { start: u64, len: u64 },
    /// Remove the entry at index `pick` modulo the count, or, if `miss`, at an
    /// address where no entry starts.
    Remove { pick: usize, miss: bool },
    /// Replace `count` consecutive entries starting at index `pick` by
    /// `pieces` ranges tiling `[first.start, last.end)` (holes included): the
    /// shape of a VMA split or merge.
    Replace {
        pick: usize,
        count: usize,
        pieces: usize,
    },
    /// Compare `find`, `find_next` and `overlapping` around `addr` pages.
    Lookup { addr: u64, span: u64 },
    /// Compare `find_gap` for `len` pages in `[lo, lo + width)` pages, and
    /// insert the range it finds.
    Gap { len: u64, lo: u64, width: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..WINDOW_PAGES, 1..8u64).prop_map(|(start, len)| Op::Insert { start, len }),
        3 => (any::<usize>(), prop::bool::weighted(0.1))
            .prop_map(|(pick, miss)| Op::Remove { pick, miss }),
        2 => (any::<usize>(), 1..4usize, 1..5usize)
            .prop_map(|(pick, count, pieces)| Op::Replace { pick, count, pieces }),
        2 => (0..WINDOW_PAGES + 2, 0..16u64).prop_map(|(addr, span)| Op::Lookup { addr, span }),
        1 => (1..6u64, 0..WINDOW_PAGES, 1..WINDOW_PAGES)
            .prop_map(|(len, lo, width)| Op::Gap { len, lo, width }),
    ]
}

/// Applies `op` to the tree and to the model, checking the tree's answers.
fn step<const B: usize>(t: &RangeTree<u64, LazyRcu, B>, model: &mut Model, op: &Op, serial: u64) {
    let g = &();
    match *op {
        Op::Insert { start, len } => {
            let r = start * PAGE..(start + len) * PAGE;
            if model_overlaps(model, &r) {
                assert!(!t.overlapping(r, g).is_empty());
            } else {
                // SAFETY: single-threaded, so writers are serialized.
                unsafe { t.insert(r.clone(), serial) };
                model.insert(r.start, (r.end, serial));
            }
        }
        Op::Remove { pick, miss } => {
            let start = match model.keys().nth(pick % model.len().max(1)) {
                Some(&s) if !miss => s,
                Some(&s) => s + 1,
                None => pick as u64 % (WINDOW_PAGES * PAGE),
            };
            // SAFETY: single-threaded.
            let got = unsafe { t.remove(start) };
            assert_eq!(got, model.remove(&start).map(|(_, v)| v));
        }
        Op::Replace {
            pick,
            count,
            pieces,
        } => {
            if model.is_empty() {
                return;
            }
            let first = pick % model.len();
            let starts: Vec<u64> = model.keys().skip(first).take(count).copied().collect();
            let lo = starts[0];
            let hi = model[starts.last().unwrap()].0;
            let new = tile(lo..hi, pieces, serial);
            // SAFETY: single-threaded.
            unsafe { t.replace(&starts, &new) };
            for s in &starts {
                model.remove(s);
            }
            for (r, v) in new {
                model.insert(r.start, (r.end, v));
            }
        }
        Op::Lookup { addr, span } => {
            let a = addr * PAGE + (addr % 3) * 1000; // not only page starts
            let expect_next = model
                .iter()
                .find(|(_, (e, _))| *e > a)
                .map(|(&s, &(e, v))| (s..e, v));
            assert_eq!(t.find_next(a, g), expect_next);
            let expect = expect_next.clone().filter(|(r, _)| r.start <= a);
            assert_eq!(t.find(a, g), expect);
            let q = a..a + span * PAGE;
            let expect_all: Vec<_> = model_entries(model)
                .into_iter()
                .filter(|(r, _)| q.start < q.end && r.start < q.end && q.start < r.end)
                .collect();
            assert_eq!(t.overlapping(q, g), expect_all);
        }
        Op::Gap { len, lo, width } => {
            let within = lo * PAGE + 1..(lo + width) * PAGE;
            let got = t.find_gap(len * PAGE, within.clone(), g);
            assert_eq!(got, model_gap(model, len * PAGE, within));
            if let Some(a) = got {
                // SAFETY: single-threaded.
                unsafe { t.insert(a..a + len * PAGE, serial) };
                model.insert(a, (a + len * PAGE, serial));
            }
        }
    }
}

/// `pieces` ranges tiling `range` (page-aligned cuts; fewer if it is small).
fn tile(range: Range<u64>, pieces: usize, serial: u64) -> Vec<(Range<u64>, u64)> {
    let pages = (range.end - range.start) / PAGE;
    let n = (pieces as u64).min(pages).max(1);
    (0..n)
        .map(|i| {
            let s = range.start + i * pages / n * PAGE;
            let e = if i + 1 == n {
                range.end
            } else {
                range.start + (i + 1) * pages / n * PAGE
            };
            (s..e, serial * 10 + i)
        })
        .collect()
}

fn run<const B: usize>(ops: &[Op]) {
    let t: RangeTree<u64, LazyRcu, B> = RangeTree::new();
    let mut model = Model::new();
    for (i, op) in ops.iter().enumerate() {
        step(&t, &mut model, op, i as u64);
        t.check_invariants(&(), true);
        assert_eq!(t.len(), model.len());
        assert_eq!(t.overlapping(0..u64::MAX, &()), model_entries(&model));
    }
    drop(t);
    drain();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6_000))]

    #[test]
    fn fanout_4_matches_model(ops in prop::collection::vec(op(), 1..300)) {
        run::<4>(&ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    #[test]
    fn fanout_16_matches_model(ops in prop::collection::vec(op(), 1..200)) {
        run::<16>(&ops);
    }
}
