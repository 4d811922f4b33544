//! Test: with the per-VMA path switched off (`SET_PER_VMA(0)`), the same
//! workload as `faults_per_vma` is handled entirely under `mmap_lock`: no
//! per-VMA successes, every fault counted as fallback. The switch is restored
//! before judging, so a failure leaves the kernel as it was.
#![no_std]
#![no_main]

use programs::counters::total;
use programs::storm::{self, Length};
use rt::{Args, check, println};

rt::main!(main);

const PAGES: u64 = 64;
const ROUNDS: u64 = 20;

fn main(_args: Args) -> i32 {
    let old = match rt::set_per_vma(false) {
        Ok(old) => old,
        Err(e) => rt::fail!("SET_PER_VMA(0): {e}"),
    };
    let r = storm::run(PAGES, Length::Rounds(ROUNDS), true);
    let was = rt::set_per_vma(old);
    check!(
        was == Ok(false),
        "the switch read {was:?} after the run, expected Ok(false)"
    );

    let t = total(&r.counters);
    let worker_faults: u64 = r.worker_faults.iter().sum();
    println!(
        "faults: {worker_faults} by workers; kernel: success={} abort={} retry={} miss={} fallback={} segv={}; writer ops={}",
        t.success, t.abort, t.retry, t.miss, t.fallback, t.segv, r.writer_ops
    );
    check!(
        t.success == 0,
        "{} faults took the per-VMA path while it was off",
        t.success
    );
    for (cpu, c) in r.counters.iter().enumerate() {
        check!(
            c.fallback >= r.worker_faults[cpu],
            "CPU {cpu}: {} fallbacks for {} worker faults ({c:?})",
            c.fallback,
            r.worker_faults[cpu]
        );
    }
    check!(t.segv == 0, "{} bad faults", t.segv);
    println!("ok: with the switch off every fault took mmap_lock");
    0
}
