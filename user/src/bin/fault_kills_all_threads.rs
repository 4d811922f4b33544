//! Test: a bad fault with no handler ends the whole process, including
//! threads running on other CPUs (they are in a loop that never ends by
//! itself). Reaching the end is the failure; the kernel test expects the
//! process killed (exit code 139) and every frame back.
#![no_std]
#![no_main]

use abi::mman::{PAGE_SIZE, PROT_READ, PROT_WRITE};
use core::sync::atomic::{AtomicUsize, Ordering};
use programs::storm::hint_for;
use rt::{Args, println};

rt::main!(main);

static RUNNING: AtomicUsize = AtomicUsize::new(0);

fn main(_args: Args) -> i32 {
    let cpus = rt::cpu_count();
    for cpu in 0..cpus {
        core::mem::forget(rt::spawn(move || {
            let _ = rt::pin(cpu);
            // Relaxed: main only waits for the count; no data goes with it.
            RUNNING.fetch_add(1, Ordering::Relaxed);
            let len = 16 * PAGE_SIZE;
            loop {
                let p =
                    rt::mmap_anon(hint_for(cpu + 1), len, PROT_READ | PROT_WRITE).expect("mmap");
                for page in 0..16 {
                    // SAFETY: inside our mapping.
                    unsafe { p.add((page * PAGE_SIZE) as usize).write_volatile(1) };
                }
                // SAFETY: our mapping, no longer used.
                let _ = unsafe { rt::munmap(p, len) };
            }
        }));
    }
    // Relaxed: see the increment.
    while RUNNING.load(Ordering::Relaxed) < cpus {
        rt::yield_now();
    }
    println!("{cpus} threads running; now reading page 0: the kernel must end the whole process");
    // SAFETY: deliberately wrong; the kernel stops it (that is the test).
    let v = unsafe { core::ptr::read_volatile(0x8 as *const u8) };
    rt::fail!("the read of address 0x8 returned {v} instead of faulting")
}
