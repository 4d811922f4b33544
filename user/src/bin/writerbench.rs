//! `writerbench [-b batches] [-i iterations]`: the cost of `faultbench`'s
//! writer iteration alone (mmap 16 pages, mprotect them read-only, munmap),
//! with nothing else running, so that the per-call cost of the kernel's
//! write path can be compared between builds without the other threads'
//! scheduling in the figure. Prints one line per batch and then the
//! smallest and the median batch, in nanoseconds per iteration (the
//! smallest is the least disturbed by a busy host).
#![no_std]
#![no_main]

extern crate alloc;

use abi::mman::{PAGE_SIZE, PROT_READ, PROT_WRITE};
use alloc::vec::Vec;
use rt::args::{Opt, parse_u64};
use rt::{Args, println};

rt::main!(main);

const PAGES: u64 = 16;
const HINT: u64 = 0x1000_0000_0000; // faultbench's writer address

fn usage() -> i32 {
    println!("usage: writerbench [-b batches] [-i iterations per batch]");
    2
}

/// One mmap + mprotect + munmap; false on an error (printed).
fn iteration() -> bool {
    let len = PAGES * PAGE_SIZE;
    let p = match rt::mmap_anon(HINT, len, PROT_READ | PROT_WRITE) {
        Ok(p) => p,
        Err(e) => {
            println!("writerbench: mmap: {e:?}");
            return false;
        }
    };
    // SAFETY: our own mapping, never touched.
    match unsafe { rt::mprotect(p, len, PROT_READ).and_then(|()| rt::munmap(p, len)) } {
        Ok(()) => true,
        Err(e) => {
            println!("writerbench: mprotect/munmap: {e:?}");
            false
        }
    }
}

fn main(args: Args) -> i32 {
    let (mut batches, mut iters) = (20u64, 2000u64);
    for opt in args.getopt("b:i:") {
        match opt {
            Opt::Flag('b', Some(v)) => batches = parse_u64(v).unwrap_or(0),
            Opt::Flag('i', Some(v)) => iters = parse_u64(v).unwrap_or(0),
            _ => return usage(),
        }
    }
    if batches == 0 || iters == 0 {
        return usage();
    }
    let mut per_iter: Vec<u64> = Vec::new();
    for b in 0..batches {
        let t0 = rt::clock_ns();
        for _ in 0..iters {
            if !iteration() {
                return 1;
            }
        }
        let ns = (rt::clock_ns() - t0) / iters;
        println!("writerbench batch {b}: {ns} ns/iteration");
        per_iter.push(ns);
    }
    per_iter.sort_unstable();
    println!(
        "writerbench iterations={} min_ns={} median_ns={}",
        batches * iters,
        per_iter[0],
        per_iter[per_iter.len() / 2]
    );
    0
}
