//! Test: the scenario of LTP's `mtest06` (mmap1). One thread keeps mapping
//! and unmapping a region at a fixed address; threads on the other CPUs keep
//! reading and writing it. An access in the unmapped window must be reported
//! to the user fault handler as "not mapped" at exactly that address; an
//! access that succeeds must see 0 (a fresh mapping) or the pattern the
//! workers write, never anything else. LTP's version of this found a kernel
//! that called the VMA read-unlock on an error value (docs/races.md).
#![no_std]
#![no_main]

extern crate alloc;

use abi::FaultReason;
use abi::mman::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use rt::fault::{Fault, try_read, try_write};
use rt::{Args, check, println};

rt::main!(main);

const REGION: u64 = 0x3000_0000_0000;
const PAGES: u64 = 16;
const CYCLES: u64 = 300;
const PATTERN: u8 = 0x5a;

struct Shared {
    ready: AtomicUsize,
    done: AtomicBool,
}

/// (accesses that succeeded, accesses that faulted)
fn worker(cpu: usize, s: &Shared) -> (u64, u64) {
    rt::pin(cpu).expect("pin worker");
    let _guard = rt::fault::install().expect("install");
    // Release pairs with the mapper's Acquire load: set up before it starts.
    s.ready.fetch_add(1, Ordering::Release);
    let (mut ok, mut faulted) = (0, 0);
    // Relaxed: `done` only ends the loop; results travel through join.
    while !s.done.load(Ordering::Relaxed) {
        for page in 0..PAGES {
            let addr = REGION + page * PAGE_SIZE + (cpu as u64 % 64) * 8;
            // SAFETY: the region is only ever this test's anonymous mapping
            // (or nothing); all workers write the same pattern.
            match unsafe { try_write(addr, PATTERN) } {
                Ok(()) => ok += 1,
                Err(Fault {
                    addr: a,
                    reason: FaultReason::NotMapped,
                }) if a == addr => faulted += 1,
                Err(f) => rt::fail!("CPU {cpu}: write to {addr:#x} reported {f:?}"),
            }
            let other = REGION + page * PAGE_SIZE + 4000;
            match try_read(other) {
                Ok(0) | Ok(PATTERN) => ok += 1,
                Ok(v) => {
                    rt::fail!("CPU {cpu}: read {v:#x} at {other:#x}, expected 0 or {PATTERN:#x}")
                }
                Err(Fault {
                    addr: a,
                    reason: FaultReason::NotMapped,
                }) if a == other => faulted += 1,
                Err(f) => rt::fail!("CPU {cpu}: read of {other:#x} reported {f:?}"),
            }
            match try_read(addr) {
                Ok(0) | Ok(PATTERN) => ok += 1,
                Ok(v) => {
                    rt::fail!("CPU {cpu}: read {v:#x} at {addr:#x}, expected 0 or {PATTERN:#x}")
                }
                Err(Fault {
                    addr: a,
                    reason: FaultReason::NotMapped,
                }) if a == addr => faulted += 1,
                Err(f) => rt::fail!("CPU {cpu}: read of {addr:#x} reported {f:?}"),
            }
        }
        if rt::cpu_count() == 1 {
            rt::yield_now();
        }
    }
    (ok, faulted)
}

fn main(_args: Args) -> i32 {
    let cpus = rt::cpu_count();
    let len = PAGES * PAGE_SIZE;
    let s = Arc::new(Shared {
        ready: AtomicUsize::new(0),
        done: AtomicBool::new(false),
    });
    let worker_cpus: Vec<usize> = if cpus > 1 {
        (1..cpus).collect()
    } else {
        alloc::vec![0]
    };
    let workers: Vec<_> = worker_cpus
        .iter()
        .map(|&cpu| {
            let s = s.clone();
            rt::spawn(move || worker(cpu, &s))
        })
        .collect();
    rt::pin(0).expect("pin the mapper");
    // Acquire pairs with the workers' Release increments.
    while s.ready.load(Ordering::Acquire) < worker_cpus.len() {
        rt::yield_now();
    }
    for _ in 0..CYCLES {
        // SAFETY: REGION is this test's alone; workers touch it only through
        // try_read/try_write.
        let p = unsafe {
            rt::mmap(
                REGION,
                len,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            )
        };
        check!(p == Ok(REGION as *mut u8), "mapper: mmap returned {p:?}");
        rt::yield_now();
        // SAFETY: as above.
        let r = unsafe { rt::munmap(REGION as *mut u8, len) };
        check!(r.is_ok(), "mapper: munmap: {r:?}");
        rt::yield_now();
    }
    // Relaxed: see the workers' load.
    s.done.store(true, Ordering::Relaxed);
    let (mut ok, mut faulted) = (0, 0);
    for w in workers {
        let (o, f) = w.join();
        ok += o;
        faulted += f;
    }
    println!(
        "ok: {CYCLES} map/unmap cycles against {} worker(s): {ok} accesses saw good data, {faulted} faulted in the window",
        worker_cpus.len()
    );
    0
}
