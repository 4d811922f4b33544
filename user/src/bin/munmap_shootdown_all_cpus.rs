//! Test: TLB shootdown on munmap. A thread on every other CPU keeps reading a
//! page (so its TLB holds the translation); main unmaps it and then tells
//! them; each thread's next access must fault. A CPU that kept a stale TLB
//! entry would read the old page (freed memory) instead.
//!
//! On one CPU there is no remote TLB; the thread then shares CPU 0 and the
//! test checks the local flush only.
#![no_std]
#![no_main]

extern crate alloc;

use abi::FaultReason;
use abi::mman::{PAGE_SIZE, PROT_READ, PROT_WRITE};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use rt::fault::{Fault, try_read};
use rt::{Args, check, println};

rt::main!(main);

const ROUNDS: usize = 20;
const PATTERN: u8 = 0xc7;

struct Round {
    page: u64,
    warm: AtomicUsize,
    unmapped: AtomicBool,
}

fn reader(cpu: usize, r: &Round) {
    let _guard = rt::fault::install().expect("install");
    let v = try_read(r.page);
    check!(v == Ok(PATTERN), "CPU {cpu}: first read {v:?}");
    // Release pairs with main's Acquire load.
    r.warm.fetch_add(1, Ordering::Release);
    // Keep the translation hot. Reads during the unmap may fault already
    // (that is allowed); only the read after main's signal is judged.
    // Acquire pairs with main's Release store after munmap returned.
    while !r.unmapped.load(Ordering::Acquire) {
        let v = try_read(r.page);
        check!(
            v == Ok(PATTERN) || v.is_err(),
            "CPU {cpu}: read {v:?} during munmap"
        );
        if rt::cpu_count() == 1 {
            rt::yield_now();
        }
    }
    let v = try_read(r.page);
    check!(
        v == Err(Fault {
            addr: r.page,
            reason: FaultReason::NotMapped
        }),
        "CPU {cpu}: read after munmap returned {v:?}: stale TLB entry"
    );
}

fn main(_args: Args) -> i32 {
    let cpus = rt::cpu_count();
    rt::pin(0).expect("pin main to CPU 0");
    let others: Vec<usize> = if cpus > 1 {
        (1..cpus).collect()
    } else {
        alloc::vec![0]
    };
    for _ in 0..ROUNDS {
        let page = rt::mmap_anon(0, PAGE_SIZE, PROT_READ | PROT_WRITE).expect("mmap");
        // SAFETY: our fresh page.
        unsafe { page.write_volatile(PATTERN) };
        let r = Arc::new(Round {
            page: page as u64,
            warm: AtomicUsize::new(0),
            unmapped: AtomicBool::new(false),
        });
        let threads: Vec<_> = others
            .iter()
            .map(|&cpu| {
                let r = r.clone();
                rt::spawn(move || {
                    rt::pin(cpu).expect("pin reader");
                    reader(cpu, &r)
                })
            })
            .collect();
        // Acquire pairs with the readers' Release increments.
        while r.warm.load(Ordering::Acquire) < others.len() {
            rt::yield_now();
        }
        // SAFETY: the readers only use try_read on it, which survives the unmap.
        unsafe { rt::munmap(page, PAGE_SIZE) }.expect("munmap");
        // Release: the readers' next read happens after munmap returned.
        r.unmapped.store(true, Ordering::Release);
        for t in threads {
            t.join();
        }
    }
    println!(
        "ok: {ROUNDS} rounds, every reader on {} CPU(s) faulted after munmap",
        others.len()
    );
    0
}
