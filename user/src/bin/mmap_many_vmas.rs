//! Test helper: make as many VMAs as the kernel allows (one page each,
//! alternating rights so that neighbours never merge) until `mmap` fails.
//!
//! Exit codes: 0 when `ENOMEM` came before the per-process VMA limit
//! (`mm::mm::MAX_MAP_COUNT`, 8192) was reached, 2 when the limit itself
//! stopped it, 1 on any other error.
#![no_std]
#![no_main]

use abi::Errno;
use abi::mman::{PAGE_SIZE, PROT_NONE, PROT_READ};
use rt::{Args, println};

rt::main!(main);

/// The kernel's VMA limit (`mm::mm::MAX_MAP_COUNT`); the runtime and the
/// program image already have a few VMAs.
const MAX_MAP_COUNT: u64 = 8192;
const OWN_VMAS: u64 = 32;

fn main(_args: Args) -> i32 {
    let mut n: u64 = 0;
    loop {
        let prot = if n.is_multiple_of(2) {
            PROT_READ
        } else {
            PROT_NONE
        };
        match rt::mmap_anon(0, PAGE_SIZE, prot) {
            Ok(_) => n += 1,
            Err(Errno::ENOMEM) if n + OWN_VMAS >= MAX_MAP_COUNT => {
                println!("{n} VMAs, then ENOMEM at the VMA limit");
                return 2;
            }
            Err(Errno::ENOMEM) => {
                println!("{n} VMAs, then ENOMEM");
                return 0;
            }
            Err(e) => {
                println!("FAIL: mmap after {n} VMAs: {e}");
                return 1;
            }
        }
    }
}
