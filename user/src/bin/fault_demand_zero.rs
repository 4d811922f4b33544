//! Test: fresh anonymous memory reads as zero, and each page faults exactly
//! once (counted by the kernel's fault counters), whether first read or first
//! written; touching it again costs no fault.
//!
//! Nothing between two counter reads may fault anywhere else in the process:
//! no printing, no allocation, and the counter buffers are touched up front.
#![no_std]
#![no_main]

use abi::mman::{PAGE_SIZE, PROT_READ, PROT_WRITE};
use programs::counters::{Snapshot, total};
use rt::{Args, check, println};

rt::main!(main);

const PAGES: u64 = 64;

fn main(_args: Args) -> i32 {
    let (mut a, mut b) = (Snapshot::new(), Snapshot::new());
    a.read();
    b.read();
    let len = PAGES * PAGE_SIZE;

    // Read first.
    let p = rt::mmap_anon(0, len, PROT_READ | PROT_WRITE).expect("mmap");
    a.read();
    let mut nonzero = 0u64;
    for off in 0..len {
        // SAFETY: inside the mapping.
        nonzero += (unsafe { p.add(off as usize).read_volatile() } != 0) as u64;
    }
    b.read();
    let read_first = total(&b.delta(&a));
    check!(
        nonzero == 0,
        "{nonzero} bytes of fresh memory were not zero"
    );
    check!(
        read_first.handled() == PAGES && read_first.segv == 0,
        "reading {PAGES} fresh pages counted {read_first:?}"
    );

    // Touch again: already mapped, no fault.
    a.read();
    for i in 0..PAGES {
        // SAFETY: inside the mapping.
        unsafe { p.add((i * PAGE_SIZE) as usize).read_volatile() };
    }
    b.read();
    let again = total(&b.delta(&a));
    check!(
        again.total() == 0,
        "reading mapped pages again counted {again:?}"
    );

    // Write first, in a second region.
    let q = rt::mmap_anon(0, len, PROT_READ | PROT_WRITE).expect("mmap");
    a.read();
    for i in 0..PAGES {
        // SAFETY: inside the mapping.
        unsafe { q.add((i * PAGE_SIZE + 7) as usize).write_volatile(0xa5) };
    }
    b.read();
    let write_first = total(&b.delta(&a));
    check!(
        write_first.handled() == PAGES && write_first.segv == 0,
        "writing {PAGES} fresh pages counted {write_first:?}"
    );
    for i in 0..PAGES {
        for off in 0..PAGE_SIZE {
            // SAFETY: inside the mapping.
            let v = unsafe { q.add((i * PAGE_SIZE + off) as usize).read_volatile() };
            let want = if off == 7 { 0xa5 } else { 0 };
            check!(
                v == want,
                "page {i} byte {off} is {v:#x}, expected {want:#x}"
            );
        }
    }
    // SAFETY: both mappings are ours and no longer used.
    unsafe {
        rt::munmap(p, len).expect("munmap");
        rt::munmap(q, len).expect("munmap");
    }
    println!(
        "ok: {PAGES} pages zero, one fault each (read first: {} per-VMA, {} fallback; write first: {} per-VMA, {} fallback)",
        read_first.success, read_first.fallback, write_first.success, write_first.fallback
    );
    0
}
