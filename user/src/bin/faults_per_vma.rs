//! Test: with the per-VMA path on, faults from every CPU are handled under
//! the VMA read lock (counted as per-VMA successes) even while a writer
//! thread holds `mmap_lock` for write over and over.
//!
//! By the lock protocol (docs/design.md) the writer never makes a worker fall
//! back: each worker faults only in its own VMA, which no one write-locks
//! while it faults, and the writer's write lock does not block VMA readers.
//! One fallback per fresh VMA is expected all the same: its first fault
//! must set up what later faults share (Linux's anon_vma_prepare), which
//! only `mmap_lock` may do, so `mm` asks to retry there. So each CPU must
//! show a per-VMA success for every other fault, and at most one retry per
//! round.
#![no_std]
#![no_main]

use programs::counters::total;
use programs::storm::{self, Length};
use rt::{Args, check, println};

rt::main!(main);

const PAGES: u64 = 64;
const ROUNDS: u64 = 20;

fn main(_args: Args) -> i32 {
    let old = match rt::set_per_vma(true) {
        Ok(old) => old,
        Err(e) => rt::fail!("SET_PER_VMA(1): {e}"),
    };
    let r = storm::run(PAGES, Length::Rounds(ROUNDS), true);
    let _ = rt::set_per_vma(old);

    let t = total(&r.counters);
    let worker_faults: u64 = r.worker_faults.iter().sum();
    println!(
        "faults: {worker_faults} by workers; kernel: success={} abort={} retry={} miss={} fallback={} segv={}; writer ops={}",
        t.success, t.abort, t.retry, t.miss, t.fallback, t.segv, r.writer_ops
    );
    for (cpu, c) in r.counters.iter().enumerate() {
        check!(
            c.success + ROUNDS >= r.worker_faults[cpu] && c.retry <= ROUNDS,
            "CPU {cpu}: {} per-VMA successes, {} retries for {} worker faults in {ROUNDS} fresh VMAs ({c:?})",
            c.success,
            c.retry,
            r.worker_faults[cpu]
        );
    }
    check!(
        t.abort == 0,
        "{} faults aborted the per-VMA path (a VMA lock was not taken)",
        t.abort
    );
    check!(t.segv == 0, "{} bad faults", t.segv);
    println!("ok: every CPU's faults took the per-VMA path while the writer ran");
    0
}
