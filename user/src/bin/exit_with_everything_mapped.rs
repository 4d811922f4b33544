//! For `process_exit_returns_all_frames`: leaves as much as possible behind
//! and calls EXIT while threads still run. The kernel test compares its free
//! frame count before and after; this program only has to exit 0.
//!
//! Left behind: mappings with every protection, touched (frames and page
//! tables in several top-level slots), a fault handler with its stack, and a
//! thread on every CPU still faulting through its own region.
#![no_std]
#![no_main]

use abi::mman::{PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE};
use core::sync::atomic::{AtomicUsize, Ordering};
use programs::storm::hint_for;
use rt::{Args, println};

rt::main!(main);

static RUNNING: AtomicUsize = AtomicUsize::new(0);

fn main(_args: Args) -> i32 {
    let _guard = rt::fault::install().expect("install");
    // Regions 512 GiB apart use different top-level page-table entries.
    for i in 0..4u64 {
        let hint = 0x1000_0000_0000 + i * (512 << 30);
        let p = rt::mmap_anon(hint, 64 * PAGE_SIZE, PROT_READ | PROT_WRITE).expect("mmap");
        for page in 0..64 {
            // SAFETY: inside our mapping.
            unsafe { p.add((page * PAGE_SIZE) as usize).write_volatile(1) };
        }
        // Some of it read-only and some PROT_NONE, still holding frames.
        // SAFETY: our mapping, no longer written.
        unsafe {
            rt::mprotect(p, 16 * PAGE_SIZE, PROT_READ).expect("mprotect");
            rt::mprotect(p.add(16 * PAGE_SIZE as usize), 16 * PAGE_SIZE, PROT_NONE)
                .expect("mprotect");
        }
    }
    let cpus = rt::cpu_count();
    for cpu in 0..cpus {
        // Never joined: the threads are running when the process exits.
        core::mem::forget(rt::spawn(move || {
            let _ = rt::pin(cpu);
            // Relaxed: main only waits for the count; no data goes with it.
            RUNNING.fetch_add(1, Ordering::Relaxed);
            for round in 0u64.. {
                let len = 32 * PAGE_SIZE;
                let p =
                    rt::mmap_anon(hint_for(cpu + 1), len, PROT_READ | PROT_WRITE).expect("mmap");
                for page in 0..32 {
                    // SAFETY: inside our mapping.
                    unsafe { p.add((page * PAGE_SIZE) as usize).write_volatile(1) };
                }
                // Unmap only every other round, so mappings pile up too.
                if round & 1 == 0 {
                    // SAFETY: our mapping, no longer used.
                    let _ = unsafe { rt::munmap(p, len) };
                }
            }
            unreachable!()
        }));
    }
    // Relaxed: see the increment.
    while RUNNING.load(Ordering::Relaxed) < cpus {
        rt::yield_now();
    }
    rt::sleep_ns(10_000_000);
    println!("exiting with {cpus} threads running and everything mapped");
    rt::exit(0)
}
