//! Test: a write to a read-only mapping, with no fault handler, ends the
//! process (the kernel prints the one-line report). Reaching the end is the
//! failure.
#![no_std]
#![no_main]

use abi::mman::PROT_READ;
use rt::{Args, println};

rt::main!(main);

fn main(_args: Args) -> i32 {
    let p = rt::mmap_anon(0, 4096, PROT_READ).expect("mmap");
    // SAFETY: a readable mapping of one page.
    let v = unsafe { p.read_volatile() };
    println!(
        "read {v} from the read-only page at {p:p}; now writing to it: the kernel must end this process"
    );
    // SAFETY: deliberately wrong; the kernel stops it (that is the test).
    unsafe { p.write_volatile(1) };
    rt::fail!("the write to read-only page {p:p} did not fault")
}
