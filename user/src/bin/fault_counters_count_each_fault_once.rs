//! Test: the fault counters count each fault exactly once. This thread,
//! pinned to one CPU, makes `GOOD` faults that map a page and `BAD` faults
//! that a fault handler catches (not mapped, write to read-only, read of
//! `PROT_NONE`), and checks the counters' difference over all CPUs:
//! `success + fallback + segv == GOOD + BAD` and `segv == BAD`.
//!
//! Everything the measured round runs (the handler, its stack, the code) is
//! used once in a warm-up round first, so no other fault hides in the count.
#![no_std]
#![no_main]

use abi::mman::{PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE};
use programs::counters::{Snapshot, total};
use rt::fault::{try_read, try_write};
use rt::{Args, check, println};

rt::main!(main);

/// Good faults per round (one per page).
const GOOD: u64 = 64;
/// Bad faults per round, a third of each kind.
const BAD: u64 = 30;

/// One round: `GOOD` first-touch writes in a fresh mapping, then `BAD`
/// faults the handler resumes. Returns how many of each were made.
fn round(ro: u64, none: u64) -> (u64, u64) {
    let fresh = rt::mmap_anon(0, GOOD * PAGE_SIZE, PROT_READ | PROT_WRITE).expect("mmap");
    for i in 0..GOOD {
        // SAFETY: our own fresh mapping; each write faults its page in.
        unsafe { fresh.add((i * PAGE_SIZE) as usize).write_volatile(1) };
    }
    let mut bad = 0;
    for i in 0..BAD {
        let r = match i % 3 {
            0 => try_read(0x20 + i).map(|_| ()),
            // SAFETY: a read-only page of ours; the write must fault.
            1 => unsafe { try_write(ro + i, 1) },
            _ => try_read(none + i).map(|_| ()),
        };
        if r.is_err() {
            bad += 1;
        }
    }
    // SAFETY: nothing uses the mapping any more.
    unsafe { rt::munmap(fresh, GOOD * PAGE_SIZE) }.expect("munmap");
    (GOOD, bad)
}

fn main(_args: Args) -> i32 {
    let _guard = rt::fault::install().expect("install the fault handler");
    if let Err(e) = rt::pin(0) {
        rt::fail!("pin to CPU 0: {e}");
    }
    let ro = rt::mmap_anon(0, PAGE_SIZE, PROT_READ).expect("mmap") as u64;
    let none = rt::mmap_anon(0, PAGE_SIZE, PROT_NONE).expect("mmap") as u64;
    // SAFETY: reading our own read-only page (maps its zero page in).
    let _ = unsafe { (ro as *const u8).read_volatile() };
    let (mut before, mut after) = (Snapshot::new(), Snapshot::new());
    round(ro, none);
    before.read();
    let (good, bad) = round(ro, none);
    after.read();
    let d = total(&after.delta(&before));
    println!(
        "{good} good and {bad} bad faults: success={} fallback={} segv={} (abort={} retry={} miss={})",
        d.success, d.fallback, d.segv, d.abort, d.retry, d.miss
    );
    check!(bad == BAD, "only {bad} of {BAD} bad accesses faulted");
    check!(
        d.total() == good + bad,
        "success + fallback + segv = {}, expected {} faults",
        d.total(),
        good + bad
    );
    check!(d.segv == bad, "segv = {}, expected {bad}", d.segv);
    println!("ok: every fault counted exactly once");
    0
}
