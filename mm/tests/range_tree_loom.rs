//! A loom model of the range tree's publication: a reader looks an address up
//! while the writer splits the entry covering it with `replace`.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p mm --test range_tree_loom --release`
//!
//! Loom permutes the accesses to the root and child pointers (the tree uses
//! `crate::sync`'s atomics, which are loom's under `--cfg loom`). The reader
//! must find the address in every interleaving, with the old value or one of
//! the new ones, never nothing. Node contents are plain memory, which loom
//! does not track; the host stress test covers use-after-free by poisoning.
#![cfg(loom)]

use std::sync::Mutex;

use loom::sync::Arc;
use loom::thread;
use mm::platform::Rcu;
use mm::range_tree::RangeTree;

/// Grace periods end when the model's threads are joined: callbacks wait in
/// a list that the model drains at the end.
struct ModelRcu;
static PENDING: Mutex<Vec<Box<dyn FnOnce() + Send>>> = Mutex::new(Vec::new());

impl Rcu for ModelRcu {
    type ReadGuard = ();
    fn read_lock() {}
    fn call_rcu(callback: Box<dyn FnOnce() + Send>) {
        PENDING.lock().unwrap().push(callback);
    }
    fn synchronize() {}
}

fn drain() {
    let callbacks = std::mem::take(&mut *PENDING.lock().unwrap());
    for cb in callbacks {
        cb();
    }
}

const PAGE: u64 = 4096;

/// Fan-out 4 and five entries: the root is a branch, so the reader follows a
/// child pointer too.
fn model_split<const B: usize>() {
    loom::model(|| {
        let t: Arc<RangeTree<u64, ModelRcu, B>> = Arc::new(RangeTree::new());
        for i in 0..5 {
            // SAFETY: no other thread yet.
            unsafe { t.insert(i * 4 * PAGE..(i + 1) * 4 * PAGE, i) };
        }
        let reader = {
            let t = t.clone();
            thread::spawn(move || {
                let found = t.find(9 * PAGE, &ModelRcu::read_lock());
                let (range, value) = found.expect("hole while the writer split");
                assert!(range.contains(&(9 * PAGE)));
                assert!(value == 2 || value == 20 || value == 21, "value {value}");
            })
        };
        // SAFETY: the only writer.
        unsafe {
            t.replace(
                &[8 * PAGE],
                &[(8 * PAGE..10 * PAGE, 20), (10 * PAGE..12 * PAGE, 21)],
            )
        };
        reader.join().unwrap();
        t.check_invariants(&(), true);
        drop(t);
        drain();
    });
}

#[test]
fn loom_range_tree_split_is_atomic_for_readers() {
    model_split::<4>();
}
