//! Test: with the per-VMA path on, faults from every CPU are handled under
//! the VMA read lock (counted as per-VMA successes) even while a writer
//! thread holds `mmap_lock` for write over and over.
//!
//! By the lock protocol (DESIGN.md §3) nothing in this workload may fall
//! back: each worker faults only in its own VMA, which no one write-locks
//! while it faults, and the writer's write lock does not block VMA readers.
//! So the test asserts zero fallbacks, and successes on every worker's CPU.
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
            c.success >= r.worker_faults[cpu],
            "CPU {cpu}: {} per-VMA successes for {} worker faults ({c:?})",
            c.success,
            r.worker_faults[cpu]
        );
    }
    check!(
        t.fallback == 0,
        "{} faults fell back to mmap_lock",
        t.fallback
    );
    check!(t.segv == 0, "{} bad faults", t.segv);
    println!("ok: every CPU's faults took the per-VMA path while the writer ran");
    0
}
