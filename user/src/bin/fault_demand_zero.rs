//! Test: fresh anonymous memory reads as zero, even when its frames held
//! this process's data a moment ago, and each page faults exactly
//! once (counted by the kernel's fault counters), whether first read or first
//! written; touching it again costs no fault.
//!
//! Nothing between two counter reads may fault anywhere else in the process:
//! no printing, no allocation, the counter buffers are touched up front, and
//! each measured function runs once on already-mapped memory first, so its
//! code and stack pages are mapped before it is measured.
#![no_std]
#![no_main]

use abi::FaultCounters;
use abi::mman::{PAGE_SIZE, PROT_READ, PROT_WRITE};
use programs::counters::{Snapshot, total};
use rt::{Args, check, println};

rt::main!(main);

const PAGES: u64 = 64;
const LEN: u64 = PAGES * PAGE_SIZE;

/// Reads every byte; returns how many were not zero.
#[inline(never)]
fn read_all(p: *mut u8) -> u64 {
    let mut nonzero = 0;
    for off in 0..LEN {
        // SAFETY: `p` is a mapping of LEN bytes.
        nonzero += (unsafe { p.add(off as usize).read_volatile() } != 0) as u64;
    }
    nonzero
}

/// Writes one byte (at offset 7) of every page.
#[inline(never)]
fn write_each(p: *mut u8) {
    for i in 0..PAGES {
        // SAFETY: `p` is a mapping of LEN bytes.
        unsafe { p.add((i * PAGE_SIZE + 7) as usize).write_volatile(0xa5) };
    }
}

/// Runs `f` between two counter reads; returns the faults it caused.
#[inline(never)]
fn measure<R>(a: &mut Snapshot, b: &mut Snapshot, f: impl FnOnce() -> R) -> (R, FaultCounters) {
    a.read();
    let r = f();
    b.read();
    (r, total(&b.delta(a)))
}

fn fresh() -> *mut u8 {
    rt::mmap_anon(0, LEN, PROT_READ | PROT_WRITE).expect("mmap")
}

fn main(_args: Args) -> i32 {
    let (mut a, mut b) = (Snapshot::new(), Snapshot::new());
    a.read();
    b.read();

    // Warm-up on memory this test maps and touches first: runs every
    // measured function once, and checks that mapped pages cost no fault.
    let warm = fresh();
    write_each(warm);
    read_all(warm);
    let (_, again) = measure(&mut a, &mut b, || read_all(warm));
    check!(
        again.total() == 0,
        "reading mapped pages again counted {again:?}"
    );
    let (_, again) = measure(&mut a, &mut b, || write_each(warm));
    check!(
        again.total() == 0,
        "writing mapped pages again counted {again:?}"
    );

    // Read first.
    let p = fresh();
    let (nonzero, read_first) = measure(&mut a, &mut b, || read_all(p));
    check!(
        nonzero == 0,
        "{nonzero} bytes of fresh memory were not zero"
    );
    check!(
        read_first.handled() == PAGES && read_first.segv == 0,
        "reading {PAGES} fresh pages counted {read_first:?}"
    );

    // Write first.
    let q = fresh();
    let ((), write_first) = measure(&mut a, &mut b, || write_each(q));
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
    for m in [warm, p, q] {
        // SAFETY: our mappings, no longer used.
        unsafe { rt::munmap(m, LEN) }.expect("munmap");
    }

    // Reused frames: fill pages with ones, unmap them, map again. The frame
    // allocator hands recently freed frames out first, so the new pages sit
    // on the frames just dirtied; every byte must still read zero (a page
    // cleared only in part would show 0xff here, and leak data between
    // processes the same way).
    let dirty = fresh();
    for off in (0..LEN).step_by(8) {
        // SAFETY: inside the mapping.
        unsafe {
            dirty
                .add(off as usize)
                .cast::<u64>()
                .write_volatile(u64::MAX)
        };
    }
    // SAFETY: our mapping, no longer used.
    unsafe { rt::munmap(dirty, LEN) }.expect("munmap");
    let reused = fresh();
    let nonzero = read_all(reused);
    check!(
        nonzero == 0,
        "{nonzero} bytes of memory mapped over freed, dirtied frames were not zero"
    );
    // SAFETY: our mapping, no longer used.
    unsafe { rt::munmap(reused, LEN) }.expect("munmap");
    println!(
        "ok: {PAGES} pages zero, one fault each (read first: {} per-VMA, {} fallback; write first: {} per-VMA, {} fallback)",
        read_first.success, read_first.fallback, write_first.success, write_first.fallback
    );
    0
}
