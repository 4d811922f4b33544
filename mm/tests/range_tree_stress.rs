//! Host stress: reader threads look addresses up with no lock while one
//! writer inserts, removes, splits and merges entries.
//!
//! What the readers check, on every lookup:
//! - a found entry contains the address, and its value is the checksum of its
//!   range (so a reader never sees half of one entry and half of another);
//! - in the *covered* region, which the writer only ever splits and merges
//!   with `replace`, every address is always found: a reader never sees the
//!   hole between removing a range and inserting its pieces;
//! - `overlapping` over the covered region tiles it with no gap;
//! - now and then, the whole version the reader sees passes the invariant
//!   checker;
//! - after the run: every range a reader saw is one the writer inserted.
//!
//! In debug builds freed nodes are poisoned and readers check every node they
//! visit, so a node freed too early makes a reader panic (or crash).
//!
//! Two RCUs: `LazyRcu` never ends a grace period during the run (callbacks
//! run after the readers are joined), and `EpochRcu` below really frees nodes
//! while readers run, after real grace periods.

mod range_tree_support;

use std::collections::{BTreeMap, HashSet};
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::thread;

use mm::platform::Rcu;
use mm::range_tree::RangeTree;
use range_tree_support::LazyRcu;

const PAGE: u64 = 4096;
/// Always covered: the writer only splits and merges inside it.
const COVERED: Range<u64> = 1000 * PAGE..1256 * PAGE;
/// Readers look up addresses in `[0, TOP)`; entries come and go outside
/// `COVERED`.
const TOP: u64 = 6000 * PAGE;
const READERS: usize = 2;

/// The value stored with `range`: a checksum of it.
fn mix(r: &Range<u64>) -> u64 {
    (r.start ^ r.end.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An epoch-based RCU for the host: a reader publishes the epoch it started
/// in; a grace period advances the epoch and waits until no reader is still
/// in a section that began before.
struct EpochRcu;

/// Current epoch; starts at 1 so that a slot holding 0 means "not reading".
static EPOCH: AtomicU64 = AtomicU64::new(1);
/// One slot per thread that ever read.
static SLOTS: Mutex<Vec<&'static AtomicU64>> = Mutex::new(Vec::new());
static EPOCH_PENDING: Mutex<Vec<Box<dyn FnOnce() + Send>>> = Mutex::new(Vec::new());

thread_local! {
    static SLOT: &'static AtomicU64 = {
        let slot: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        SLOTS.lock().unwrap().push(slot);
        slot
    };
}

/// Ends the read-side section when dropped; tied to its thread.
struct EpochGuard(PhantomData<*const ()>);

impl Drop for EpochGuard {
    fn drop(&mut self) {
        // Release: everything this section read happens-before a grace
        // period's Acquire load that sees the slot empty.
        SLOT.with(|s| s.store(0, Ordering::Release));
    }
}

impl Rcu for EpochRcu {
    type ReadGuard = EpochGuard;

    fn read_lock() -> EpochGuard {
        SLOT.with(|s| {
            assert_eq!(s.load(Ordering::Relaxed), 0, "this test does not nest");
            s.store(EPOCH.load(Ordering::SeqCst), Ordering::SeqCst);
        });
        // Orders the slot store before the tree loads that follow; pairs with
        // the fence in `synchronize`: either the grace period sees our slot,
        // or we see the root stored before it started.
        fence(Ordering::SeqCst);
        EpochGuard(PhantomData)
    }

    fn call_rcu(callback: Box<dyn FnOnce() + Send>) {
        EPOCH_PENDING.lock().unwrap().push(callback);
    }

    fn synchronize() {
        fence(Ordering::SeqCst);
        let target = EPOCH.fetch_add(1, Ordering::SeqCst) + 1;
        for slot in SLOTS.lock().unwrap().iter() {
            loop {
                let v = slot.load(Ordering::Acquire);
                if v == 0 || v >= target {
                    break;
                }
                std::hint::spin_loop();
                thread::yield_now();
            }
        }
    }
}

/// Runs the callbacks queued so far, after a grace period.
fn epoch_reclaim() {
    let batch = std::mem::take(&mut *EPOCH_PENDING.lock().unwrap());
    EpochRcu::synchronize();
    for cb in batch {
        cb();
    }
}

/// What the writer knows: start -> end of every entry.
type Model = BTreeMap<u64, u64>;

fn model_overlaps(model: &Model, r: &Range<u64>) -> bool {
    model
        .range(..r.end)
        .next_back()
        .is_some_and(|(_, &e)| e > r.start)
}

/// One reader: looks up random addresses until `stop`, returns the ranges it
/// saw.
fn reader<R: Rcu, const B: usize>(
    t: &RangeTree<u64, R, B>,
    stop: &AtomicBool,
    seed: u64,
) -> HashSet<(u64, u64)> {
    let mut rng = Rng(seed);
    let mut seen = HashSet::new();
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let guard = R::read_lock();
        let addr = rng.below(TOP);
        match t.find(addr, &guard) {
            Some((r, v)) => {
                assert!(r.contains(&addr), "{addr:#x} not in {r:#x?}");
                assert_eq!(v, mix(&r), "torn entry {r:#x?}");
                seen.insert((r.start, r.end));
            }
            None => assert!(
                !COVERED.contains(&addr),
                "hole at {addr:#x} in the covered region"
            ),
        }
        if i.is_multiple_of(32) {
            let tiles = t.overlapping(COVERED, &guard);
            assert!(tiles.first().unwrap().0.start <= COVERED.start);
            assert!(tiles.last().unwrap().0.end >= COVERED.end);
            for w in tiles.windows(2) {
                assert_eq!(w[0].0.end, w[1].0.start, "gap in the covered region");
            }
        }
        if i.is_multiple_of(2048) {
            t.check_invariants(&guard, false);
        }
        drop(guard);
    }
    seen
}

/// The writer: `ops` random changes, each checked against `model`.
/// `reclaim` runs every so often (to free retired nodes, if the RCU can).
fn writer<R: Rcu, const B: usize>(
    t: &RangeTree<u64, R, B>,
    model: &mut Model,
    ever: &mut HashSet<(u64, u64)>,
    ops: usize,
    reclaim: fn(),
) {
    let mut rng = Rng(0x5eed);
    let mut insert = |model: &mut Model, r: Range<u64>| {
        ever.insert((r.start, r.end));
        model.insert(r.start, r.end);
        (r.clone(), mix(&r))
    };
    for op in 0..ops {
        match rng.below(10) {
            // Split or merge inside the covered region, atomically.
            0..=3 => {
                let pick = COVERED.start + rng.below(COVERED.end - COVERED.start);
                let (&s, &e) = model.range(..=pick).next_back().unwrap();
                let next = model
                    .range(e..)
                    .next()
                    .filter(|(ns, _)| COVERED.contains(*ns));
                if (e - s) / PAGE >= 2 && (rng.below(2) == 0 || next.is_none()) {
                    let cut = s + (1 + rng.below((e - s) / PAGE - 1)) * PAGE;
                    model.remove(&s);
                    let new = [insert(model, s..cut), insert(model, cut..e)];
                    // SAFETY: this is the only writer thread.
                    unsafe { t.replace(&[s], &new) };
                } else if let Some((&ns, &ne)) = next {
                    model.remove(&s);
                    model.remove(&ns);
                    let new = [insert(model, s..ne)];
                    // SAFETY: this is the only writer thread.
                    unsafe { t.replace(&[s, ns], &new) };
                }
            }
            // Insert somewhere outside the covered region.
            4..=6 => {
                let s = rng.below(TOP / PAGE) * PAGE;
                let r = s..s + (1 + rng.below(8)) * PAGE;
                let clash = model_overlaps(model, &r);
                if !clash && !(r.start < COVERED.end && COVERED.start < r.end) {
                    let (r, v) = insert(model, r);
                    // SAFETY: this is the only writer thread.
                    unsafe { t.insert(r, v) };
                }
            }
            // Remove an entry outside the covered region.
            _ => {
                let pick = rng.below(TOP);
                if let Some((&s, _)) = model.range(pick..).next()
                    && !COVERED.contains(&s)
                {
                    model.remove(&s);
                    // SAFETY: this is the only writer thread.
                    assert!(unsafe { t.remove(s) }.is_some());
                }
            }
        }
        if op.is_multiple_of(256) {
            reclaim();
        }
    }
}

/// Builds the starting tree, runs readers against the writer, checks.
fn stress<R: Rcu, const B: usize>(ops: usize, reclaim: fn()) {
    let t: RangeTree<u64, R, B> = RangeTree::new();
    let mut model = Model::new();
    let mut ever = HashSet::new();
    // The covered region, tiled by ranges of 1-4 pages.
    let mut rng = Rng(42);
    let mut s = COVERED.start;
    while s < COVERED.end {
        let e = (s + (1 + rng.below(4)) * PAGE).min(COVERED.end);
        model.insert(s, e);
        ever.insert((s, e));
        // SAFETY: no other thread yet.
        unsafe { t.insert(s..e, mix(&(s..e))) };
        s = e;
    }
    // Background entries: every third page outside the covered region.
    for p in (0..TOP / PAGE).step_by(3) {
        let r = p * PAGE..(p + 1) * PAGE;
        if !model_overlaps(&model, &r) && !COVERED.contains(&r.start) {
            model.insert(r.start, r.end);
            ever.insert((r.start, r.end));
            // SAFETY: no other thread yet.
            unsafe { t.insert(r.clone(), mix(&r)) };
        }
    }
    let stop = AtomicBool::new(false);
    let seen: Vec<HashSet<(u64, u64)>> = thread::scope(|scope| {
        let readers: Vec<_> = (0..READERS)
            .map(|i| {
                let (t, stop) = (&t, &stop);
                scope.spawn(move || reader(t, stop, 0x1234 + i as u64))
            })
            .collect();
        writer(&t, &mut model, &mut ever, ops, reclaim);
        stop.store(true, Ordering::Relaxed);
        readers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let guard = R::read_lock();
    t.check_invariants(&guard, true);
    let all: Vec<_> = t
        .overlapping(0..u64::MAX, &guard)
        .into_iter()
        .map(|(r, _)| (r.start, r.end))
        .collect();
    drop(guard);
    let expect: Vec<_> = model.iter().map(|(&s, &e)| (s, e)).collect();
    assert_eq!(all, expect, "tree and writer's model differ");
    let mut lookups = 0;
    for set in &seen {
        lookups += set.len();
        for r in set {
            assert!(ever.contains(r), "reader saw {r:#x?}, never inserted");
        }
    }
    assert!(lookups > 0, "the readers found nothing");
}

/// Readers against a writer with grace periods that never end during the run.
#[test]
fn stress_with_endless_grace_periods() {
    stress::<LazyRcu, 4>(50_000, || {});
    range_tree_support::drain();
    stress::<LazyRcu, 16>(50_000, || {});
    range_tree_support::drain();
}

/// Readers against a writer whose retired nodes are freed (and poisoned)
/// after real grace periods, while the readers keep going.
#[test]
fn stress_with_real_grace_periods() {
    stress::<EpochRcu, 4>(30_000, epoch_reclaim);
    epoch_reclaim();
    stress::<EpochRcu, 16>(30_000, epoch_reclaim);
    epoch_reclaim();
}
