//! For `exit_with_blocked_threads_returns_all_frames`: `main` calls EXIT
//! while every other thread waits somewhere in the kernel, none of which
//! would end by itself:
//! - in NANOSLEEP(`u64::MAX`), one pinned to each CPU;
//! - in THREAD_JOIN of such a sleeper, and in THREAD_JOIN of that joiner
//!   (a chain, which ends once the sleeper does);
//! - two threads in THREAD_JOIN of each other (a cycle no exit can end);
//! - in a long but finite NANOSLEEP (2^40 ns, about 18 minutes);
//! - contending for the address-space lock (MMAP/MUNMAP in a loop);
//! - spinning or yielding in user mode.
//!
//! The kernel test checks that the process ends promptly and that every
//! frame comes back; this program only has to exit 0.
#![no_std]
#![no_main]

extern crate alloc;

use abi::mman::{PAGE_SIZE, PROT_READ, PROT_WRITE};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use rt::{Args, println};

rt::main!(main);

/// Threads about to block (Relaxed: a count only, no data goes with it).
static READY: AtomicUsize = AtomicUsize::new(0);
/// The tid of the second of two threads that join each other.
static PARTNER: AtomicU64 = AtomicU64::new(0);

/// Start a thread that is never joined by `main`; its tid.
fn start(f: impl FnOnce() + Send + 'static) -> u64 {
    let t = rt::spawn(move || {
        READY.fetch_add(1, Ordering::Relaxed);
        f()
    });
    let tid = t.tid();
    core::mem::forget(t);
    tid
}

/// THREAD_JOIN that should never return here.
fn join_forever(tid: u64) {
    let r = rt::thread_join(tid);
    println!("FAIL: THREAD_JOIN({tid}) returned {r:?}");
    rt::exit(1)
}

fn main(_args: Args) -> i32 {
    let cpus = rt::cpu_count();
    let sleepers: Vec<u64> = (0..cpus)
        .map(|cpu| {
            start(move || {
                let _ = rt::pin(cpu);
                rt::sleep_ns(u64::MAX);
                rt::fail!("NANOSLEEP(u64::MAX) returned");
            })
        })
        .collect();
    let first = sleepers[0];
    let joiner = start(move || join_forever(first));
    start(move || join_forever(joiner));
    // Two threads joining each other: only a kill ends that.
    let p = start(|| {
        // Relaxed: the tid is the whole message.
        let q = loop {
            match PARTNER.load(Ordering::Relaxed) {
                0 => rt::yield_now(),
                q => break q,
            }
        };
        join_forever(q)
    });
    let q = start(move || join_forever(p));
    PARTNER.store(q, Ordering::Relaxed);
    start(|| {
        rt::sleep_ns(1 << 40);
        rt::fail!("NANOSLEEP(2^40) returned");
    });
    for i in 0..2u64 {
        start(move || {
            let hint = 0x2000_0000_0000 + (i << 32);
            loop {
                let len = 16 * PAGE_SIZE;
                let p = rt::mmap_anon(hint, len, PROT_READ | PROT_WRITE).expect("mmap");
                // SAFETY: our own fresh mapping, used by nobody.
                unsafe { rt::munmap(p, len) }.expect("munmap");
            }
        });
    }
    start(|| {
        loop {
            core::hint::spin_loop();
        }
    });
    start(|| {
        loop {
            rt::yield_now();
        }
    });
    let threads = cpus + 8;
    while READY.load(Ordering::Relaxed) < threads {
        rt::sleep_ns(1_000_000);
    }
    // Let them reach their waits.
    rt::sleep_ns(20_000_000);
    println!("exiting with {threads} threads blocked, sleeping or running");
    rt::exit(0)
}
