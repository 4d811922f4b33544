//! Test: a syscall given a bad user pointer returns EFAULT (never a kernel
//! panic, never a kill) and the process goes on: WRITE (kernel reads),
//! FAULT_COUNTERS and GET_ARGS (kernel writes), with pointers that are null,
//! in the kernel half, non-canonical, unmapped, wrapping, without the right
//! (PROT_NONE for reads, read-only for writes).
#![no_std]
#![no_main]

use abi::mman::{PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE, USER_END};
use abi::{Errno, errno::decode, nr};
use rt::syscall::syscall2;
use rt::{Args, check, println};

rt::main!(main);

fn call(n: u64, buf: u64, len: u64) -> Result<u64, Errno> {
    // SAFETY: the kernel must refuse these pointers; it writes nothing.
    decode(unsafe { syscall2(n, buf, len) })
}

fn main(args: Args) -> i32 {
    let unmapped = rt::mmap_anon(0, PAGE_SIZE, PROT_READ | PROT_WRITE).expect("mmap") as u64;
    // SAFETY: our page, never used.
    unsafe { rt::munmap(unmapped as *mut u8, PAGE_SIZE) }.expect("munmap");
    let none = rt::mmap_anon(0, PAGE_SIZE, PROT_NONE).expect("mmap") as u64;
    let ro = rt::mmap_anon(0, PAGE_SIZE, PROT_READ).expect("mmap") as u64;
    let kernel = 0xffff_ffff_8000_0000;

    let common: [(&str, u64); 6] = [
        ("null", 0),
        ("kernel half", kernel),
        ("non-canonical", 0x8000_0000_0000),
        ("crossing the end of user space", USER_END - 8),
        ("unmapped", unmapped),
        ("wrapping", u64::MAX - 8),
    ];
    for (what, ptr) in common {
        let r = call(nr::WRITE, ptr, 16);
        check!(r == Err(Errno::EFAULT), "WRITE from {what} {ptr:#x}: {r:?}");
        let r = call(nr::FAULT_COUNTERS, ptr, 1);
        check!(
            r == Err(Errno::EFAULT),
            "FAULT_COUNTERS to {what} {ptr:#x}: {r:?}"
        );
        let r = call(nr::GET_ARGS, ptr, 16);
        check!(
            r == Err(Errno::EFAULT),
            "GET_ARGS to {what} {ptr:#x}: {r:?}"
        );
        println!("ok: {what} -> EFAULT");
    }
    let r = call(nr::WRITE, none, 16);
    check!(
        r == Err(Errno::EFAULT),
        "WRITE from a PROT_NONE page: {r:?}"
    );
    let r = call(nr::WRITE, ro, u64::MAX);
    check!(r == Err(Errno::EFAULT), "WRITE of length 2^64 - 1: {r:?}");
    let r = call(nr::FAULT_COUNTERS, ro, 1);
    check!(
        r == Err(Errno::EFAULT),
        "FAULT_COUNTERS to a read-only page: {r:?}"
    );
    if args.raw().is_empty() {
        println!("note: no arguments, so GET_ARGS has nothing to copy into a read-only page");
    } else {
        let r = call(nr::GET_ARGS, ro, 16);
        check!(
            r == Err(Errno::EFAULT),
            "GET_ARGS to a read-only page: {r:?}"
        );
    }
    println!("ok: PROT_NONE / read-only / overflowing buffers -> EFAULT");

    // Still alive, and good pointers still work.
    let msg = b"ok: the process survived every bad pointer\n";
    check!(
        rt::write(msg) == Ok(msg.len()),
        "a good WRITE failed afterwards"
    );
    0
}
