//! No node is leaked or freed twice: a counting allocator measures the bytes
//! the test thread holds before building a tree and after dropping it and
//! running the RCU callbacks.

mod range_tree_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

use mm::range_tree::RangeTree;
use range_tree_support::{LazyRcu, drain};

/// Counts the bytes allocated minus freed by threads that opted in.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

fn track(bytes: i64) {
    // `try_with`: thread-local storage may be gone during thread exit.
    if TRACKED.try_with(|t| t.get()).unwrap_or(false) {
        LIVE.fetch_add(bytes, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as i64);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as i64));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn churn<const B: usize>() {
    let t: RangeTree<u64, LazyRcu, B> = RangeTree::new();
    let page = 4096;
    for i in 0..3000u64 {
        // SAFETY: single-threaded test: writers are serialized.
        unsafe { t.insert(i * 4 * page..(i * 4 + 2) * page, i) };
    }
    for i in (0..3000u64).step_by(3) {
        // Split entry i in two, then merge the halves back.
        let s = i * 4 * page;
        // SAFETY: single-threaded test: writers are serialized.
        unsafe {
            t.replace(&[s], &[(s..s + page, 1), (s + page..s + 2 * page, 2)]);
            t.replace(&[s, s + page], &[(s..s + 2 * page, 3)]);
        }
    }
    for i in (0..3000u64).step_by(2) {
        // SAFETY: single-threaded test: writers are serialized.
        assert!(unsafe { t.remove(i * 4 * page) }.is_some());
    }
    // SAFETY: single-threaded test: writers are serialized.
    assert_eq!(unsafe { t.remove(1) }, None);
    t.check_invariants(&(), true);
    drop(t);
}

#[test]
fn every_node_is_freed_exactly_once() {
    TRACKED.with(|t| t.set(true));
    // Warm up lazily allocated runtime state before taking the baseline.
    churn::<16>();
    drain();
    let before = LIVE.load(Ordering::Relaxed);
    churn::<4>();
    churn::<16>();
    let pending = drain();
    let after = LIVE.load(Ordering::Relaxed);
    TRACKED.with(|t| t.set(false));
    assert!(pending > 0, "nothing was retired through call_rcu");
    assert_eq!(after - before, 0, "bytes leaked (or freed twice)");
}
