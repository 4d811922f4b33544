//! The fault storm: one worker per CPU, pinned there, faulting through its
//! own private region (map, write one byte per page, unmap) while a writer
//! thread keeps mapping, write-protecting and unmapping an unrelated region,
//! so the address space's `mmap_lock` is taken for write all the time.
//!
//! This is faultbench's work spread over every CPU; the demo runs it for a
//! while, the per-VMA tests for a fixed number of rounds (tests assert no
//! timing).

use crate::counters::Snapshot;
use abi::FaultCounters;
use abi::mman::{PAGE_SIZE, PROT_READ, PROT_WRITE};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Where regions go: 16 TiB + i GiB, as faultbench's hints, so no two
/// threads' VMAs are adjacent (they would merge).
pub const HINT_BASE: u64 = 0x1000_0000_0000;
pub const HINT_STRIDE: u64 = 1 << 30;
pub const WRITER_PAGES: u64 = 16;

pub fn hint_for(idx: usize) -> u64 {
    HINT_BASE + idx as u64 * HINT_STRIDE
}

/// How long the workers run.
#[derive(Clone, Copy)]
pub enum Length {
    /// Each worker does this many map/touch/unmap rounds.
    Rounds(u64),
    /// Workers stop after this many nanoseconds.
    Nanos(u64),
}

pub struct Report {
    /// Faults each CPU's worker caused (pages it touched), by CPU.
    pub worker_faults: Vec<u64>,
    /// Writer map/protect/unmap cycles.
    pub writer_ops: u64,
    /// Kernel counter differences over the storm, by CPU.
    pub counters: Vec<FaultCounters>,
    /// Wall time of the storm.
    pub ns: u64,
}

struct Shared {
    ready: AtomicUsize,
    go: AtomicBool,
    stop: AtomicBool,
}

/// Waits for `flag`; yields so that it works on one CPU too.
fn wait_for(flag: &AtomicBool) {
    // Acquire pairs with the Release store that sets the flag.
    while !flag.load(Ordering::Acquire) {
        rt::yield_now();
    }
}

/// One round: map `pages` pages at `hint`, write a byte in each, unmap.
/// Never inlined, so the warm-up round runs the very code the storm runs.
#[inline(never)]
fn round(hint: u64, pages: u64) {
    let bytes = pages * PAGE_SIZE;
    let p = rt::mmap_anon(hint, bytes, PROT_READ | PROT_WRITE).expect("worker mmap");
    for i in 0..pages {
        // SAFETY: inside the fresh mapping of `pages` pages.
        unsafe { p.add((i * PAGE_SIZE) as usize).write_volatile(1) };
    }
    // SAFETY: the region is this round's alone and no longer used.
    unsafe { rt::munmap(p, bytes) }.expect("worker munmap");
}

fn worker(cpu: usize, pages: u64, len: Length, s: &Shared) -> u64 {
    rt::pin(cpu).expect("pin worker");
    let hint = hint_for(cpu + 1);
    // A warm-up round before the start line, so the code and stack pages the
    // storm uses are mapped before main reads the counters.
    round(hint, 1);
    let mut faults = 0;
    let mut rounds = 0;
    // Release pairs with main's Acquire load of `ready`: the pin and stack
    // faults of thread start are done before main reads the counters.
    s.ready.fetch_add(1, Ordering::Release);
    wait_for(&s.go);
    loop {
        let done = match len {
            Length::Rounds(n) => rounds == n,
            // Relaxed: `stop` only ends the loop; results travel through join.
            Length::Nanos(_) => s.stop.load(Ordering::Relaxed),
        };
        if done {
            break;
        }
        round(hint, pages);
        faults += pages;
        rounds += 1;
    }
    faults
}

/// One writer cycle: map, write-protect, unmap (never touched: no faults).
#[inline(never)]
fn writer_op(bytes: u64) {
    let p = rt::mmap_anon(hint_for(0), bytes, PROT_READ | PROT_WRITE).expect("writer mmap");
    // SAFETY: the writer's own region, never touched.
    unsafe {
        rt::mprotect(p, bytes, PROT_READ).expect("writer mprotect");
        rt::munmap(p, bytes).expect("writer munmap");
    }
}

fn writer(s: &Shared) -> u64 {
    let bytes = WRITER_PAGES * PAGE_SIZE;
    writer_op(bytes); // warm-up, as in `worker`
    let mut ops = 0;
    // Release: as in `worker`.
    s.ready.fetch_add(1, Ordering::Release);
    wait_for(&s.go);
    // Relaxed: `stop` only ends the loop; results travel through join.
    while !s.stop.load(Ordering::Relaxed) {
        writer_op(bytes);
        ops += 1;
    }
    ops
}

/// Runs the storm: a worker on every CPU, `pages` pages per round, plus the
/// writer if `with_writer`.
pub fn run(pages: u64, len: Length, with_writer: bool) -> Report {
    let cpus = rt::cpu_count();
    let s = Arc::new(Shared {
        ready: AtomicUsize::new(0),
        go: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let workers: Vec<_> = (0..cpus)
        .map(|cpu| {
            let s = s.clone();
            rt::spawn(move || worker(cpu, pages, len, &s))
        })
        .collect();
    let writer = with_writer.then(|| {
        let s = s.clone();
        rt::spawn(move || writer(&s))
    });
    let threads = cpus + with_writer as usize;
    // Acquire pairs with the threads' Release increments.
    while s.ready.load(Ordering::Acquire) < threads {
        rt::sleep_ns(1_000_000);
    }
    let mut before = Snapshot::new();
    let mut after = Snapshot::new();
    before.read();
    let t0 = rt::clock_ns();
    // Release pairs with the Acquire in `wait_for`.
    s.go.store(true, Ordering::Release);
    if let Length::Nanos(ns) = len {
        rt::sleep_ns(ns);
        s.stop.store(true, Ordering::Relaxed);
    }
    let worker_faults: Vec<u64> = workers.into_iter().map(|w| w.join()).collect();
    // In Rounds mode the writer runs until every worker is done.
    s.stop.store(true, Ordering::Relaxed);
    let writer_ops = writer.map_or(0, |w| w.join());
    let ns = rt::clock_ns() - t0;
    after.read();
    Report {
        worker_faults,
        writer_ops,
        counters: after.delta(&before),
        ns,
    }
}
