//! Test: after `munmap`, every access to the range faults as not mapped,
//! neighbours keep their data, and mapping the range again gives zeroed
//! memory, never the old contents.
#![no_std]
#![no_main]

use abi::FaultReason;
use abi::mman::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE};
use rt::fault::{Fault, try_read, try_write};
use rt::{Args, check, println};

rt::main!(main);

fn not_mapped(addr: u64) {
    let r = try_read(addr);
    check!(
        r == Err(Fault {
            addr,
            reason: FaultReason::NotMapped
        }),
        "read of unmapped {addr:#x}: {r:?}"
    );
    // SAFETY: the address is unmapped; the write must fault.
    let w = unsafe { try_write(addr, 1) };
    check!(
        w == Err(Fault {
            addr,
            reason: FaultReason::NotMapped
        }),
        "write to unmapped {addr:#x}: {w:?}"
    );
}

fn main(_args: Args) -> i32 {
    let _guard = rt::fault::install().expect("install the fault handler");
    let len = 4 * PAGE_SIZE;
    let p = rt::mmap_anon(0, len, PROT_READ | PROT_WRITE).expect("mmap") as u64;
    for i in 0..4 {
        check!(
            // SAFETY: our mapping.
            unsafe { try_write(p + i * PAGE_SIZE, 0x30 + i as u8) }.is_ok(),
            "write {i}"
        );
    }
    // SAFETY: pages 1 and 2 of our mapping, no longer used.
    unsafe { rt::munmap((p + PAGE_SIZE) as *mut u8, 2 * PAGE_SIZE) }.expect("munmap middle");
    check!(try_read(p) == Ok(0x30), "page 0 lost its data");
    check!(
        try_read(p + 3 * PAGE_SIZE) == Ok(0x33),
        "page 3 lost its data"
    );
    for addr in [p + PAGE_SIZE, p + PAGE_SIZE + 4095, p + 2 * PAGE_SIZE + 17] {
        not_mapped(addr);
    }
    // Unmapping a range with holes is fine; afterwards all of it is gone.
    // SAFETY: our mapping.
    unsafe { rt::munmap(p as *mut u8, len) }.expect("munmap all");
    for i in 0..4 {
        not_mapped(p + i * PAGE_SIZE);
    }
    // Map the same range again: fresh zeroed pages.
    // SAFETY: the range is ours and unmapped.
    let q = unsafe {
        rt::mmap(
            p,
            len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        )
    }
    .expect("mmap fixed") as u64;
    check!(q == p, "MAP_FIXED placed the mapping at {q:#x}, not {p:#x}");
    for i in 0..4 {
        let r = try_read(p + i * PAGE_SIZE);
        check!(
            r == Ok(0),
            "page {i} after remapping: {r:?} (old data leaked?)"
        );
    }
    // SAFETY: our mapping.
    unsafe { rt::munmap(p as *mut u8, len) }.expect("munmap");
    println!("ok: unmapped pages fault, neighbours keep data, remapped pages are zero");
    0
}
