//! Test doubles shared by the `range_tree*` tests (included with `mod`; cargo
//! also builds this file as a test crate of its own, with no tests in it).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

use mm::platform::Rcu;

/// An RCU whose grace periods never end by themselves: `call_rcu` only queues
/// the callback, and a test runs the queue with [`drain`] when it knows no
/// reader is left. An infinitely long grace period is always sound.
///
/// Safe for tests that run in parallel in one binary only because each of them
/// reads and writes its trees from a single thread: when another test drains,
/// no read-side section of ours is in the middle of a walk.
pub struct LazyRcu;

static PENDING: Mutex<Vec<Box<dyn FnOnce() + Send>>> = Mutex::new(Vec::new());

impl Rcu for LazyRcu {
    type ReadGuard = ();

    fn read_lock() -> Self::ReadGuard {}

    fn call_rcu(callback: Box<dyn FnOnce() + Send>) {
        PENDING.lock().unwrap().push(callback);
    }

    fn synchronize() {}
}

/// Runs every queued callback; returns how many ran.
pub fn drain() -> usize {
    let callbacks = std::mem::take(&mut *PENDING.lock().unwrap());
    let n = callbacks.len();
    for cb in callbacks {
        cb();
    }
    n
}

/// The reference model: start -> (end, value).
pub type Model = BTreeMap<u64, (u64, u64)>;

/// The model's entries as the tree's `overlapping` returns them.
pub fn model_entries(model: &Model) -> Vec<(Range<u64>, u64)> {
    model.iter().map(|(&s, &(e, v))| (s..e, v)).collect()
}

/// The model's answer to `find_gap`, by brute force over its holes.
pub fn model_gap(model: &Model, len: u64, within: Range<u64>) -> Option<u64> {
    if len == 0 {
        return None;
    }
    let fits = |lo: u64, hi: u64| {
        let a = lo.max(within.start).checked_next_multiple_of(4096)?;
        (a.checked_add(len)? <= hi.min(within.end)).then_some(a)
    };
    let mut prev_end = 0;
    for (&s, &(e, _)) in model {
        if let Some(a) = fits(prev_end, s) {
            return Some(a);
        }
        prev_end = e;
    }
    fits(prev_end, u64::MAX)
}

/// Whether `range` overlaps an entry of the model.
pub fn model_overlaps(model: &Model, range: &Range<u64>) -> bool {
    model
        .range(..range.end)
        .next_back()
        .is_some_and(|(_, &(e, _))| e > range.start)
}
