//! Range-tree benchmark: lookup cost for trees of 10, 1,000 and 100,000
//! entries, and the cost of an insert followed by a remove (copy-on-write of a
//! root-to-leaf path, plus the retired nodes' grace-period callback).
//!
//! Run: `cargo run --release -p mm --example tree_bench`
//!
//! One line per figure. Single-threaded; the RCU frees retired nodes at once,
//! which is sound with no concurrent reader. `std`'s `BTreeMap` (no
//! concurrency at all) is printed alongside as a point of reference.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use mm::platform::Rcu;
use mm::range_tree::RangeTree;

const PAGE: u64 = 4096;

/// Grace periods end at once: there is never a concurrent reader here.
struct NoReaderRcu;
impl Rcu for NoReaderRcu {
    type ReadGuard = ();
    fn read_lock() {}
    fn call_rcu(callback: Box<dyn FnOnce() + Send>) {
        callback();
    }
    fn synchronize() {}
}

type Tree = RangeTree<u64, NoReaderRcu>;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One lookup as a fault does it: read-side section, find, end of section.
fn lookup<R: Rcu>(t: &RangeTree<u64, R>, addr: u64) -> Option<(std::ops::Range<u64>, u64)> {
    let guard = R::read_lock();
    t.find(addr, &guard)
}

/// Entry `i`: one to four pages at page `5 i`, so each has a hole after it.
fn range(i: u64) -> (u64, u64) {
    (i * 5 * PAGE, i * 5 * PAGE + (1 + i % 4) * PAGE)
}

/// A tree of `n` entries, inserted in address order (as a process's mappings
/// mostly are) or, if `shuffle`, in random order (fuller nodes on average:
/// splitting in address order leaves every node half full).
fn build(n: u64, shuffle: bool) -> (Tree, BTreeMap<u64, (u64, u64)>) {
    let t = Tree::new();
    let mut m = BTreeMap::new();
    let mut order: Vec<u64> = (0..n).collect();
    if shuffle {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
    }
    for i in order {
        let (s, e) = range(i);
        // SAFETY: single-threaded, so writers are serialized.
        unsafe { t.insert(s..e, i) };
        m.insert(s, (e, i));
    }
    (t, m)
}

/// Nanoseconds per call of `f`, over `iters` calls, best of 5 runs.
fn ns_per_op(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    (0..5)
        .map(|_| {
            let t0 = Instant::now();
            for k in 0..iters {
                f(k);
            }
            t0.elapsed().as_nanos() as f64 / iters as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    const LOOKUPS: u64 = 1 << 20;
    for (n, shuffle) in [
        (10u64, false),
        (1_000, false),
        (100_000, false),
        (100_000, true),
    ] {
        let (t, m) = build(n, shuffle);
        let order = if shuffle { "random" } else { "sorted" };
        let depth = t.depth(&());
        // Random addresses inside random entries, precomputed so the loop
        // measures only the lookup.
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let addrs: Vec<u64> = (0..LOOKUPS)
            .map(|_| {
                let (s, e) = range(rng.next() % n);
                s + rng.next() % (e - s)
            })
            .collect();
        let mask = LOOKUPS - 1;

        let tree_ns = ns_per_op(LOOKUPS, |k| {
            black_box(lookup(&t, addrs[(k & mask) as usize]));
        });
        println!(
            "tree_bench lookup         n={n:>6} built={order} depth={depth} {tree_ns:7.1} ns/op"
        );

        let map_ns = ns_per_op(LOOKUPS, |k| {
            let a = addrs[(k & mask) as usize];
            black_box(m.range(..=a).next_back().filter(|(_, (e, _))| *e > a));
        });
        println!("tree_bench btreemap-ref   n={n:>6}                        {map_ns:7.1} ns/op");

        // Insert a one-page entry into the hole after a random entry, then
        // remove it: two published changes, two batches of retired nodes.
        const CHANGES: u64 = 100_000;
        let holes: Vec<u64> = (0..CHANGES).map(|_| range(rng.next() % n).1).collect();
        let change_ns = ns_per_op(CHANGES, |k| {
            let s = holes[k as usize];
            // SAFETY: single-threaded.
            unsafe {
                t.insert(s..s + PAGE, k);
                black_box(t.remove(s));
            }
        });
        println!(
            "tree_bench insert+remove  n={n:>6} built={order} depth={depth} {change_ns:7.1} ns/op"
        );
    }
}
