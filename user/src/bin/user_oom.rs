//! Test helper: run the machine out of memory from user space.
//! `user_oom MIB THREADS`: map `MIB` MiB read-write (more than the machine
//! has) and touch every page, split among `THREADS` threads, one per CPU.
//!
//! Expected end: the kernel ends the process at the fault that finds no
//! memory (exit code 137, one line saying so). Exit 12 if `mmap` refused the
//! mapping with `ENOMEM` (also a correct answer, told apart by the caller);
//! exit 0 would mean that all of it fit, which the test does not expect.
#![no_std]
#![no_main]

extern crate alloc;

use abi::Errno;
use abi::mman::{PAGE_SIZE, PROT_READ, PROT_WRITE};
use alloc::vec::Vec;
use rt::{Args, println};

rt::main!(main);

/// Exit code when `mmap` itself says `ENOMEM`.
const EXIT_MMAP_ENOMEM: i32 = 12;

fn touch(base: u64, first: u64, pages: u64) {
    for i in first..first + pages {
        // SAFETY: inside our own read-write mapping.
        unsafe { ((base + i * PAGE_SIZE) as *mut u8).write_volatile(1) };
    }
}

fn main(args: Args) -> i32 {
    let mut it = args.iter();
    let mib = it.next().and_then(rt::args::parse_u64).unwrap_or(512);
    let threads = it.next().and_then(rt::args::parse_u64).unwrap_or(1).max(1);
    let len = mib << 20;
    let base = match rt::mmap_anon(0, len, PROT_READ | PROT_WRITE) {
        Ok(p) => p as u64,
        Err(Errno::ENOMEM) => {
            println!("mmap of {mib} MiB: ENOMEM");
            return EXIT_MMAP_ENOMEM;
        }
        Err(e) => rt::fail!("mmap of {mib} MiB: {e}"),
    };
    let pages = len / PAGE_SIZE;
    let share = pages / threads;
    let cpus = rt::cpu_count();
    let workers: Vec<_> = (1..threads)
        .map(|t| {
            rt::spawn(move || {
                let _ = rt::pin(t as usize % cpus);
                touch(base, t * share, share);
            })
        })
        .collect();
    touch(base, 0, share);
    for w in workers {
        w.join();
    }
    println!("FAIL: touched {mib} MiB and was not stopped");
    1
}
