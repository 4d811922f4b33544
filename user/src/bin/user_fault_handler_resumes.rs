//! Test: a registered fault handler receives the right address, reason and
//! RIP for each kind of bad fault, and the faulting thread resumes where the
//! handler says: at a fixup (try_read/try_write), at another instruction
//! (here: a `ret`, finishing a call into a no-exec page), or at the faulting
//! instruction itself after the handler fixed the mapping.
#![no_std]
#![no_main]

use abi::FaultReason;
use abi::mman::{PAGE_SIZE, PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE};
use core::sync::atomic::{AtomicU64, Ordering};
use rt::fault::{Fault, try_read, try_write};
use rt::{Args, check, println};

rt::main!(main);

core::arch::global_asm!(".global test_ret", "test_ret: ret");
unsafe extern "C" {
    fn test_ret();
}

/// What the hook saw last, and how often it ran. Every access is Relaxed:
/// the handler runs on this same thread (between the fault and the resume),
/// so program order already orders it with main; nothing pairs across
/// threads.
static CALLS: AtomicU64 = AtomicU64::new(0);
static LAST: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
static EXEC_PAGE: AtomicU64 = AtomicU64::new(0);
static FIX_PAGE: AtomicU64 = AtomicU64::new(0);

fn hook(addr: u64, reason: FaultReason, rip: u64) -> Option<u64> {
    CALLS.fetch_add(1, Ordering::Relaxed);
    for (slot, v) in LAST.iter().zip([addr, reason as u64, rip]) {
        slot.store(v, Ordering::Relaxed);
    }
    let exec = EXEC_PAGE.load(Ordering::Relaxed);
    let fix = FIX_PAGE.load(Ordering::Relaxed);
    match reason {
        // "Return" from the call into the no-exec page: the faulting context's
        // rsp points at the call's return address.
        FaultReason::ExecNoExec if addr == exec => Some(test_ret as *const () as u64),
        // Make the page readable and run the faulting instruction again.
        FaultReason::ProtNone if addr & !(PAGE_SIZE - 1) == fix => {
            // SAFETY: the test's own page, which main is about to read.
            unsafe { rt::mprotect(fix as *mut u8, PAGE_SIZE, PROT_READ | PROT_WRITE) }.ok()?;
            Some(0)
        }
        _ => None,
    }
}

fn last() -> (u64, u64, u64) {
    let l = |i: usize| LAST[i].load(Ordering::Relaxed);
    (l(0), l(1), l(2))
}

fn main(_args: Args) -> i32 {
    let _guard = rt::fault::install().expect("install the fault handler");
    rt::fault::set_hook(hook);
    let caught0 = rt::fault::caught();

    // 1. Fixups: not mapped, PROT_NONE, write to read-only.
    let none = rt::mmap_anon(0, PAGE_SIZE, PROT_NONE).expect("mmap") as u64;
    let ro = rt::mmap_anon(0, PAGE_SIZE, PROT_READ).expect("mmap") as u64;
    let r = try_read(0x10);
    check!(
        r == Err(Fault {
            addr: 0x10,
            reason: FaultReason::NotMapped
        }),
        "read of page 0: {r:?}"
    );
    let r = try_read(none + 5);
    check!(
        r == Err(Fault {
            addr: none + 5,
            reason: FaultReason::ProtNone
        }),
        "read of PROT_NONE: {r:?}"
    );
    check!(try_read(ro + 9) == Ok(0), "read of a read-only page failed");
    // SAFETY: the page is ours; the write must fault.
    let w = unsafe { try_write(ro + 9, 1) };
    check!(
        w == Err(Fault {
            addr: ro + 9,
            reason: FaultReason::WriteToReadOnly
        }),
        "write to read-only: {w:?}"
    );
    // The handler's stack is reused: many faults in a row still work.
    for i in 0..100 {
        check!(
            try_read(0x20 + i).is_err(),
            "repeated fault {i} was not caught"
        );
    }
    check!(
        CALLS.load(Ordering::Relaxed) == 0,
        "the hook was asked about try_* faults"
    );
    check!(
        rt::fault::caught() - caught0 == 103,
        "handler resumed {} faults, expected 103",
        rt::fault::caught() - caught0
    );

    // 2. Execute of a no-exec page: resume at a `ret` elsewhere.
    let code = rt::mmap_anon(0, PAGE_SIZE, PROT_READ | PROT_WRITE).expect("mmap");
    // SAFETY: our page; 0xc3 is `ret`.
    unsafe { code.write_volatile(0xc3) };
    EXEC_PAGE.store(code as u64, Ordering::Relaxed);
    // SAFETY: the page holds a lone `ret`, a valid `extern "C" fn()` body; it
    // is not executable, so the call faults and the hook finishes it.
    let f: extern "C" fn() = unsafe { core::mem::transmute(code) };
    f();
    check!(
        CALLS.load(Ordering::Relaxed) == 1,
        "calling into a no-exec page did not fault"
    );
    let (addr, reason, rip) = last();
    check!(
        addr == code as u64 && reason == FaultReason::ExecNoExec as u64 && rip == code as u64,
        "exec fault reported addr {addr:#x} reason {reason} rip {rip:#x}, expected {code:p} 3 {code:p}"
    );
    // And once executable, the same call runs.
    // SAFETY: our page.
    unsafe { rt::mprotect(code, PAGE_SIZE, PROT_READ | PROT_EXEC) }.expect("mprotect");
    f();
    check!(
        CALLS.load(Ordering::Relaxed) == 1,
        "calling into an executable page faulted"
    );

    // 3. Fix the mapping in the handler and retry the instruction.
    let fix = rt::mmap_anon(0, PAGE_SIZE, PROT_NONE).expect("mmap");
    FIX_PAGE.store(fix as u64, Ordering::Relaxed);
    // SAFETY: the hook makes the page readable before the read completes.
    let v = unsafe { fix.add(100).read_volatile() };
    check!(v == 0, "read after the fix returned {v}");
    check!(
        CALLS.load(Ordering::Relaxed) == 2,
        "the PROT_NONE read did not reach the hook"
    );
    let (addr, reason, _) = last();
    check!(
        addr == fix as u64 + 100 && reason == FaultReason::ProtNone as u64,
        "PROT_NONE fault reported addr {addr:#x} reason {reason}"
    );
    // SAFETY: now read-write.
    unsafe { fix.write_volatile(7) };

    println!(
        "ok: handler saw not-mapped, PROT_NONE, read-only and no-exec faults and resumed each"
    );
    0
}
