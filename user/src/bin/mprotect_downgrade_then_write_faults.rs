//! Test: after `mprotect` removes write (or all) access, the next access
//! faults with the right reason, on this CPU and on every other CPU that had
//! the page writable in its TLB; the data survives; restoring the rights
//! makes the page usable again.
#![no_std]
#![no_main]

extern crate alloc;

use abi::FaultReason;
use abi::mman::{PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use rt::fault::{Fault, try_read, try_write};
use rt::{Args, check, println};

rt::main!(main);

fn expect_fault(r: Result<(), Fault>, addr: u64, reason: FaultReason, what: &str) {
    check!(
        r == Err(Fault { addr, reason }),
        "{what}: {r:?}, expected {reason:?} at {addr:#x}"
    );
}

/// Other CPUs write the page (so their TLBs hold it writable), then main
/// write-protects it; each other CPU's next write must fault.
fn remote_downgrade(cpus: usize) {
    let page = rt::mmap_anon(0, PAGE_SIZE, PROT_READ | PROT_WRITE).expect("mmap") as u64;
    let warm = Arc::new(AtomicUsize::new(0));
    let protected = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (1..cpus)
        .map(|cpu| {
            let (warm, protected) = (warm.clone(), protected.clone());
            rt::spawn(move || {
                rt::pin(cpu).expect("pin");
                let _guard = rt::fault::install().expect("install");
                // SAFETY: the shared test page; every thread writes the same
                // byte value to its own offset.
                let w = unsafe { try_write(page + cpu as u64, 1) };
                check!(w.is_ok(), "CPU {cpu}: first write {w:?}");
                // Release pairs with main's Acquire load of `warm`.
                warm.fetch_add(1, Ordering::Release);
                // Keep the TLB entry hot until main has protected the page.
                // Acquire pairs with main's Release store after mprotect.
                while !protected.load(Ordering::Acquire) {
                    // SAFETY: as above; a write may fault once mprotect runs.
                    let _ = unsafe { try_write(page + cpu as u64, 1) };
                }
                // SAFETY: as above.
                let w = unsafe { try_write(page + cpu as u64, 2) };
                expect_fault(
                    w,
                    page + cpu as u64,
                    FaultReason::WriteToReadOnly,
                    "write after remote mprotect",
                );
                check!(try_read(page + cpu as u64) == Ok(1), "CPU {cpu}: data lost");
            })
        })
        .collect();
    // Acquire pairs with the workers' Release increments.
    while warm.load(Ordering::Acquire) < cpus - 1 {
        rt::yield_now();
    }
    // SAFETY: the test's page; the workers' writes are expected to fault now.
    unsafe { rt::mprotect(page as *mut u8, PAGE_SIZE, PROT_READ) }.expect("mprotect");
    protected.store(true, Ordering::Release);
    for t in threads {
        t.join();
    }
}

fn main(_args: Args) -> i32 {
    let _guard = rt::fault::install().expect("install the fault handler");
    let p = rt::mmap_anon(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE).expect("mmap") as u64;
    // SAFETY: our mapping.
    unsafe {
        check!(try_write(p, 0x5a).is_ok(), "first write faulted");
        check!(
            try_write(p + PAGE_SIZE, 0x6b).is_ok(),
            "first write faulted"
        );
        rt::mprotect(p as *mut u8, 2 * PAGE_SIZE, PROT_READ).expect("mprotect read");
        expect_fault(
            try_write(p, 1),
            p,
            FaultReason::WriteToReadOnly,
            "write after mprotect(READ)",
        );
        expect_fault(
            try_write(p + PAGE_SIZE + 3, 1),
            p + PAGE_SIZE + 3,
            FaultReason::WriteToReadOnly,
            "second page",
        );
    }
    check!(try_read(p) == Ok(0x5a), "data changed by mprotect");
    check!(
        try_read(p + PAGE_SIZE) == Ok(0x6b),
        "data changed by mprotect"
    );
    // SAFETY: our mapping.
    unsafe {
        rt::mprotect(p as *mut u8, PAGE_SIZE, PROT_NONE).expect("mprotect none");
    }
    let r = try_read(p + 1);
    check!(
        r == Err(Fault {
            addr: p + 1,
            reason: FaultReason::ProtNone
        }),
        "read of PROT_NONE: {r:?}"
    );
    check!(
        try_read(p + PAGE_SIZE) == Ok(0x6b),
        "the untouched page lost its data"
    );
    // SAFETY: our mapping.
    unsafe {
        rt::mprotect(p as *mut u8, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE).expect("mprotect rw");
        check!(
            try_write(p, 0x11).is_ok(),
            "write after restoring PROT_WRITE faulted"
        );
    }
    check!(try_read(p) == Ok(0x11), "write after restore lost");

    let cpus = rt::cpu_count();
    if cpus > 1 {
        for _ in 0..10 {
            remote_downgrade(cpus);
        }
        println!(
            "ok: downgrade faults here and on {} other CPUs (10 rounds)",
            cpus - 1
        );
    } else {
        println!("ok: downgrade faults (one CPU: no remote TLB to check)");
    }
    0
}
