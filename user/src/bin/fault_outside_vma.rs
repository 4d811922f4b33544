//! Test: a read outside every VMA, with no fault handler, ends the process
//! (the kernel prints the one-line report). Reaching the end is the failure.
//!
//! The address is in a hole this program makes: it maps three pages and
//! unmaps the middle one, so the page is in user space, between two VMAs.
#![no_std]
#![no_main]

use abi::mman::{PAGE_SIZE, PROT_READ, PROT_WRITE};
use rt::{Args, println};

rt::main!(main);

fn main(_args: Args) -> i32 {
    let p = rt::mmap_anon(0, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE).expect("mmap");
    let hole = p.wrapping_add(PAGE_SIZE as usize);
    // SAFETY: the middle page of our own mapping; nothing uses it.
    unsafe { rt::munmap(hole, PAGE_SIZE) }.expect("munmap");
    println!("reading {hole:p}, between two mappings: the kernel must end this process");
    // SAFETY: deliberately wrong; the kernel stops it (that is the test).
    let v = unsafe { hole.read_volatile() };
    rt::fail!("the read of unmapped {hole:p} returned {v} instead of faulting")
}
