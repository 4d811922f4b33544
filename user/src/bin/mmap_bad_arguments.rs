//! Test: each bad `MMAP`, `MUNMAP` and `MPROTECT` argument gets its error
//! code (the table in docs/syscalls.md), creates nothing, and good calls
//! still work afterwards.
#![no_std]
#![no_main]

use abi::mman::*;
use abi::{Errno, FaultReason};
use rt::fault::{Fault, try_read};
use rt::{Args, check, println};

rt::main!(main);

const RW: u64 = PROT_READ | PROT_WRITE;
const PA: u64 = MAP_PRIVATE | MAP_ANONYMOUS;
/// A user address nothing else in this program maps (faultbench's hint
/// region is not used here).
const FREE: u64 = 0x2000_0000_0000;

fn main(_args: Args) -> i32 {
    let _guard = rt::fault::install().expect("install the fault handler");
    let mmap_cases: [(&str, u64, u64, u64, u64, Errno); 13] = [
        ("zero length", 0, 0, RW, PA, Errno::EINVAL),
        (
            "unaligned fixed address",
            FREE + 1,
            4096,
            RW,
            PA | MAP_FIXED,
            Errno::EINVAL,
        ),
        ("unaligned hint", FREE + 1, 4096, RW, PA, Errno::EINVAL),
        (
            "length overflows when rounded",
            0,
            u64::MAX - 100,
            RW,
            PA,
            Errno::ENOMEM,
        ),
        (
            "fixed range wraps",
            FREE,
            u64::MAX - 2 * 4096 + 1,
            RW,
            PA | MAP_FIXED,
            Errno::ENOMEM,
        ),
        (
            "kernel-half fixed address",
            0xffff_8000_0000_0000,
            4096,
            RW,
            PA | MAP_FIXED,
            Errno::ENOMEM,
        ),
        (
            "fixed over the kernel",
            USER_END - 4096,
            2 * 4096,
            RW,
            PA | MAP_FIXED,
            Errno::ENOMEM,
        ),
        (
            "huge length, beyond memory",
            0,
            1 << 46,
            RW,
            PA,
            Errno::ENOMEM,
        ),
        ("fixed at page 0", 0, 4096, RW, PA | MAP_FIXED, Errno::EPERM),
        ("shared", 0, 4096, RW, 0x01 | MAP_ANONYMOUS, Errno::EINVAL),
        ("not anonymous", 0, 4096, RW, MAP_PRIVATE, Errno::EINVAL),
        ("unknown flag", 0, 4096, RW, PA | 0x4000, Errno::EINVAL),
        ("unknown prot bit", 0, 4096, 0x8, PA, Errno::EINVAL),
    ];
    for (what, addr, len, prot, flags, want) in mmap_cases {
        // SAFETY: every case is refused, so nothing is mapped or replaced.
        let r = unsafe { rt::mmap(addr, len, prot, flags) };
        check!(r == Err(want), "mmap {what}: {r:?}, expected {want}");
        println!("ok: mmap {what} -> {want}");
    }
    // The refused unaligned calls at FREE + 1 mapped nothing there.
    let r = try_read(FREE);
    check!(
        r == Err(Fault {
            addr: FREE,
            reason: FaultReason::NotMapped
        }),
        "refused mmap left a mapping: {r:?}"
    );

    // A hint in the kernel half is only a hint: the mapping lands in user space.
    let p = rt::mmap_anon(0xffff_8000_0000_0000, 4096, RW);
    check!(
        p.is_ok_and(|p| in_user_range(p as u64, p as u64 + 4096)),
        "mmap with a kernel-half hint: {p:?}"
    );
    println!("ok: mmap with a kernel-half hint -> a user address");

    // Two good pages followed by a hole we make ourselves (a neighbour
    // mapping could otherwise sit right after them).
    let good = rt::mmap_anon(0, 3 * 4096, RW).expect("good mmap after the bad ones");
    let g = good as u64;
    // SAFETY: the third page of our own mapping, unused.
    unsafe { rt::munmap(good.wrapping_add(2 * 4096), 4096) }.expect("munmap the third page");
    let range_cases: [(&str, u64, u64, Errno); 5] = [
        ("unaligned", g + 1, 4096, Errno::EINVAL),
        ("zero length", g, 0, Errno::EINVAL),
        ("kernel half", 0xffff_8000_0000_0000, 4096, Errno::EINVAL),
        ("wraps", g, u64::MAX - 4096, Errno::EINVAL),
        ("past user space", USER_END - 4096, 2 * 4096, Errno::EINVAL),
    ];
    for (what, addr, len, want) in range_cases {
        // SAFETY: every case is refused, so nothing changes.
        let r = unsafe { rt::munmap(addr as *mut u8, len) };
        check!(r == Err(want), "munmap {what}: {r:?}, expected {want}");
        // SAFETY: as above.
        let r = unsafe { rt::mprotect(addr as *mut u8, len, PROT_READ) };
        check!(r == Err(want), "mprotect {what}: {r:?}, expected {want}");
        println!("ok: munmap/mprotect {what} -> {want}");
    }
    // SAFETY: refused: nothing changes.
    let r = unsafe { rt::mprotect(good, 4096, 0x8) };
    check!(r == Err(Errno::EINVAL), "mprotect unknown prot bit: {r:?}");
    // SAFETY: refused: nothing changes (FREE is not mapped).
    let r = unsafe { rt::mprotect(FREE as *mut u8, 4096, PROT_READ) };
    check!(
        r == Err(Errno::ENOMEM),
        "mprotect of an unmapped range: {r:?}"
    );
    // SAFETY: refused: the second page of the range is not mapped.
    let r = unsafe { rt::mprotect(good, 3 * 4096, PROT_READ) };
    check!(
        r == Err(Errno::ENOMEM),
        "mprotect of a range with a hole: {r:?}"
    );
    println!("ok: mprotect bad prot -> EINVAL, unmapped -> ENOMEM");

    // The good mapping is untouched by all of that.
    // SAFETY: our mapping, read-write.
    unsafe {
        good.write_volatile(1);
        check!(good.read_volatile() == 1, "the good mapping misbehaves");
        rt::munmap(good, 2 * 4096).expect("munmap good");
    }
    // Unmapping an unmapped range is not an error.
    check!(
        // SAFETY: nothing is mapped there.
        unsafe { rt::munmap(FREE as *mut u8, 4096) }.is_ok(),
        "munmap of an unmapped range failed"
    );
    println!("ok: every bad argument got its error");
    0
}
