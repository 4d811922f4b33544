//! Test: user space is `[USER_START, USER_END)` and nothing else, however a
//! mapping is asked for. `MAP_FIXED` below 64 KiB is `EPERM`; `MAP_FIXED` in
//! the guard page or across the top is `ENOMEM`; a hint there is ignored;
//! and filling the whole address space with non-fixed mappings until
//! `ENOMEM` never hands out page zero or the guard page, and does hand out
//! the last user page.
#![no_std]
#![no_main]

use abi::mman::*;
use abi::{Errno, FaultReason};
use rt::fault::try_read;
use rt::{Args, check, println};

rt::main!(main);

const P: u64 = PAGE_SIZE;
const PA: u64 = MAP_PRIVATE | MAP_ANONYMOUS;
/// The first address past the lower canonical half.
const CANONICAL_END: u64 = 0x8000_0000_0000;

fn fixed(addr: u64, len: u64) -> Result<u64, Errno> {
    // SAFETY: every fixed address tried here is outside user space, so the
    // call must fail; if it wrongly succeeds, it replaced nothing we use
    // (this program has nothing mapped there).
    unsafe { rt::mmap(addr, len, PROT_READ, PA | MAP_FIXED) }.map(|p| p as u64)
}

fn any(hint: u64, len: u64) -> Result<u64, Errno> {
    rt::mmap_anon(hint, len, PROT_READ).map(|p| p as u64)
}

/// Whether `[a, a + len)` lies inside user space.
fn inside(a: u64, len: u64) -> bool {
    a >= USER_START && a.checked_add(len).is_some_and(|end| end <= USER_END)
}

fn unmap(a: u64, len: u64) {
    // SAFETY: a mapping this program just made and does not use.
    unsafe { rt::munmap(a as *mut u8, len) }.expect("munmap");
}

fn fixed_is_refused() {
    let cases: [(&str, u64, u64, Errno); 7] = [
        ("page zero", 0, P, Errno::EPERM),
        ("page one", P, P, Errno::EPERM),
        ("the page below 64 KiB", USER_START - P, P, Errno::EPERM),
        ("the guard page", USER_END, P, Errno::ENOMEM),
        ("across the top", USER_END - P, 2 * P, Errno::ENOMEM),
        (
            "the first non-canonical page",
            CANONICAL_END,
            P,
            Errno::ENOMEM,
        ),
        ("the kernel half", 0xffff_8000_0000_0000, P, Errno::ENOMEM),
    ];
    for (what, addr, len, want) in cases {
        let r = fixed(addr, len);
        check!(
            r == Err(want),
            "MAP_FIXED at {what} ({addr:#x}): {r:?}, expected {want:?}"
        );
    }
}

fn hints_outside_are_ignored() {
    // The last user page may be asked for by hint, and is given.
    let last = any(USER_END - P, P);
    check!(
        last == Ok(USER_END - P),
        "hint at the last user page: {last:?}"
    );
    unmap(USER_END - P, P);
    for (what, hint, len) in [
        ("page zero", 0, P),
        ("page one", P, P),
        ("the guard page", USER_END, P),
        ("across the top", USER_END - P, 2 * P),
        ("the first non-canonical page", CANONICAL_END, P),
    ] {
        match any(hint, len) {
            Ok(a) => {
                check!(inside(a, len), "hint at {what}: mapped at {a:#x}");
                unmap(a, len);
            }
            Err(e) => rt::fail!("hint at {what} ({hint:#x}): {e:?}"),
        }
    }
}

/// Map without a hint, halving the length whenever it no longer fits, until
/// not even one page fits. Returns whether the last user page was handed
/// out, and the number of mappings. (The first one may already be taken:
/// the runtime's heap is the first thing mapped without a hint.)
fn fill_address_space() -> (bool, u64) {
    // Read-only mappings reserve addresses, not memory, so a few dozen
    // halvings from 64 TiB fill the 128 TiB.
    let mut len = 1u64 << 46;
    let (mut last, mut n) = (false, 0);
    loop {
        match any(0, len) {
            Ok(a) => {
                check!(inside(a, len), "{len:#x} bytes mapped at {a:#x}");
                last |= a + len == USER_END;
                n += 1;
            }
            Err(Errno::ENOMEM) if len > P => len /= 2,
            Err(Errno::ENOMEM) => return (last, n),
            Err(e) => rt::fail!("mmap of {len:#x} bytes: {e:?}"),
        }
    }
}

fn main(_args: Args) -> i32 {
    let _guard = rt::fault::install().expect("install the fault handler");
    fixed_is_refused();
    hints_outside_are_ignored();
    let (last, n) = fill_address_space();
    check!(
        last,
        "the last user page ({:#x}) was never handed out",
        USER_END - P
    );
    // Both end pages are mapped (the whole space is); page zero, the page below 64 KiB
    // and the guard page are still not mapped.
    check!(
        try_read(USER_START) == Ok(0),
        "first user page not readable"
    );
    check!(
        try_read(USER_END - 1) == Ok(0),
        "last user page not readable"
    );
    for addr in [0, USER_START - 1, USER_END, CANONICAL_END - 1] {
        match try_read(addr) {
            Err(f) if f.reason == FaultReason::NotMapped => {}
            r => rt::fail!("read at {addr:#x}: {r:?}, expected not mapped"),
        }
    }
    println!("ok: {n} mappings filled user space; page zero and the guard page stayed unmapped");
    0
}
