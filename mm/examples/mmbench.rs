//! Micro-benchmarks of the VMA lock protocol on the host, each beside a plain
//! reader/writer-lock baseline measured in the same run.
//!
//! Run: `cargo run --release -p mm --example mmbench`
//! (figures and their meaning: `docs/mm-benchmarks.md`).

use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use mm::host::Host;
use mm::lookup::lock_vma_under_rcu;
use mm::mm::{MapAt, Mm, MmRef, MmapLocked};
use mm::vma_cache::VmaCache;
use mm::vma_lock::{vma_refcount_put, vma_start_read};

const P: u64 = 4096;
const BASE: u64 = 0x1000_0000;

fn ns_per_op(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    for i in 0..iters / 10 {
        f(i); // warm-up
    }
    let t = Instant::now();
    for i in 0..iters {
        f(i);
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

/// An address space with `n` one-page VMAs, each followed by a one-page hole
/// (so they cannot be merged), and a baseline `RwLock<BTreeMap>` of the same.
type Baseline = RwLock<std::collections::BTreeMap<u64, (u64, u32)>>;

fn populated(n: u64) -> (MmRef<Host>, Baseline) {
    let mm = Mm::new(Arc::new(VmaCache::new())).unwrap();
    let mut map = std::collections::BTreeMap::new();
    for i in 0..n {
        let a = BASE + 2 * i * P;
        mm.map(MapAt::Fixed(a), P, 3).unwrap();
        map.insert(a, (a + P, 3));
    }
    (mm, RwLock::new(map))
}

fn main() {
    println!(
        "{:<44} {:>12} {:>12}",
        "operation", "mm (ns/op)", "rwlock (ns/op)"
    );

    // Uncontended read lock + unlock of one VMA vs a std RwLock read.
    let (mm, base) = populated(1);
    // The mmap read lock keeps the VMA attached (and does not keep its read
    // lock from being taken).
    let mmap = mm.read_lock();
    let (_, vma) = mmap.find(BASE).unwrap();
    let ours = ns_per_op(5_000_000, |_| {
        vma_start_read(&mm, vma).unwrap();
        vma_refcount_put(black_box(vma));
    });
    let theirs = ns_per_op(5_000_000, |_| drop(black_box(base.read().unwrap())));
    println!(
        "{:<44} {:>12.1} {:>12.1}",
        "vma read lock+unlock (uncontended)", ours, theirs
    );
    drop(mmap);

    // lock_vma_under_rcu on trees of 10, 1,000 and 100,000 VMAs vs an
    // RwLock<BTreeMap> lookup of the same addresses.
    for n in [10u64, 1_000, 100_000] {
        let (mm, base) = populated(n);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            BASE + 2 * (x % n) * P
        };
        let addrs: Vec<u64> = (0..4096).map(|_| next()).collect();
        let ours = ns_per_op(2_000_000, |i| {
            let a = addrs[(i % 4096) as usize];
            black_box(lock_vma_under_rcu(&mm, a).unwrap());
        });
        let theirs = ns_per_op(2_000_000, |i| {
            let a = addrs[(i % 4096) as usize];
            let m = base.read().unwrap();
            black_box(m.range(..=a).next_back());
        });
        println!(
            "{:<44} {:>12.1} {:>12.1}",
            format!("lock_vma_under_rcu, {n} VMAs"),
            ours,
            theirs
        );
    }

    // map + unmap of one page among 1,000 VMAs vs insert+remove in the
    // RwLock<BTreeMap> (the baseline has no VMA locks, page table or RCU).
    let (mm, base) = populated(1_000);
    let hole = BASE + P;
    let ours = ns_per_op(200_000, |_| {
        mm.map(MapAt::Fixed(hole), P, 3).unwrap();
        mm.unmap(hole, P).unwrap();
    });
    let theirs = ns_per_op(200_000, |_| {
        base.write().unwrap().insert(hole, (hole + P, 3));
        base.write().unwrap().remove(&hole);
    });
    println!(
        "{:<44} {:>12.1} {:>12.1}",
        "map+unmap one page, 1,000 VMAs", ours, theirs
    );
    drop(mm);
    Host::rcu_barrier();
}
