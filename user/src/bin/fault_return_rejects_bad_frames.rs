//! Test: FAULT_RETURN hands back only a context that ring 3 may have.
//! - Outside a handler (with or without one registered): EINVAL.
//! - Inside the handler, to a kernel, non-canonical or out-of-range RIP:
//!   EINVAL, and the handler can still resume properly afterwards.
//! - A context with a non-canonical RSP is restored by `iretq` without a
//!   fault in the kernel (the CPU does not check RSP; the first stack access
//!   in ring 3 would fault there), and `sysretq` with one too.
//! - NT and IOPL set (or attempted) at the fault are not handed back.
//!
//! The kernel test also checks the kernel's own check on crafted frames.
#![no_std]
#![no_main]

use abi::mman::USER_END;
use abi::{Errno, FaultReason, nr};
use core::sync::atomic::{AtomicU64, Ordering};
use rt::{Args, check, println};

rt::main!(main);

const NT: u64 = 1 << 14;
const IOPL: u64 = 3 << 12;

/// RIPs no FAULT_RETURN may go to.
const BAD_RIPS: [u64; 7] = [
    0xffff_8000_0000_0000, // kernel half
    0xffff_ffff_8000_0000, // kernel text
    0x8000_0000_0000_0000, // non-canonical
    0x0000_8000_0000_0000, // first non-canonical
    USER_END,              // past user space
    0xfff,                 // below user space
    u64::MAX,
];

// `ud2` reached with a non-canonical RSP (r12 keeps the real one) and with NT
// and IOPL asked for in RFLAGS; resumed at its `..._after` label, which puts
// RSP back and returns RFLAGS as the resumed context had them.
core::arch::global_asm!(
    ".global frr_ud_noncanon_rsp, frr_ud_noncanon_rsp_after",
    "frr_ud_noncanon_rsp:",
    "    push r12",
    "    mov r12, rsp",
    "    movabs rsp, 0x8000000000000000",
    "    ud2",
    "frr_ud_noncanon_rsp_after:",
    "    mov rsp, r12",
    "    pop r12",
    "    ret",
    ".global frr_ud_with_flags, frr_ud_with_flags_after",
    "frr_ud_with_flags:",
    "    pushfq",
    "    or qword ptr [rsp], rdi",
    "    popfq",
    "    ud2",
    "frr_ud_with_flags_after:",
    "    pushfq",
    "    pop rax",
    "    push rax",
    "    and qword ptr [rsp], -0x4001",
    "    popfq",
    "    ret",
);

unsafe extern "C" {
    fn frr_ud_noncanon_rsp();
    fn frr_ud_noncanon_rsp_after();
    fn frr_ud_with_flags(flags: u64) -> u64;
    fn frr_ud_with_flags_after();
}

/// Where the hook resumes, and what it found. Relaxed: the hook runs on
/// this thread between the fault and the resume (program order).
static AFTER: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);

fn hook(_addr: u64, reason: FaultReason, _rip: u64) -> Option<u64> {
    CALLS.fetch_add(1, Ordering::Relaxed);
    if reason != FaultReason::InvalidOpcode {
        return None;
    }
    for rip in BAD_RIPS {
        // SAFETY: each of these must be refused, and a refusal returns here.
        let e = unsafe { rt::sys::fault_return(rip) };
        if e == Errno::EINVAL {
            REFUSED.fetch_add(1, Ordering::Relaxed);
        } else {
            println!("FAULT_RETURN({rip:#x}) said {e} instead of EINVAL");
        }
    }
    Some(AFTER.load(Ordering::Relaxed))
}

fn fault_return_outside_handler() -> Result<(), Errno> {
    // SAFETY: not in a handler: FAULT_RETURN must refuse and return.
    let r = abi::errno::decode(unsafe { rt::syscall::syscall1(nr::FAULT_RETURN, 0) });
    match r {
        Err(Errno::EINVAL) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Err(Errno::EINVAL),
    }
}

fn main(_args: Args) -> i32 {
    check!(
        fault_return_outside_handler().is_ok(),
        "FAULT_RETURN with no handler was not refused"
    );
    let _guard = rt::fault::install().expect("install the fault handler");
    rt::fault::set_hook(hook);
    check!(
        fault_return_outside_handler().is_ok(),
        "FAULT_RETURN outside the handler was not refused"
    );

    // Bad RIPs refused, then a resume with a non-canonical RSP.
    AFTER.store(
        frr_ud_noncanon_rsp_after as *const () as u64,
        Ordering::Relaxed,
    );
    // SAFETY: follows the C ABI; the hook resumes it past the ud2.
    unsafe { frr_ud_noncanon_rsp() };
    let refused = REFUSED.load(Ordering::Relaxed);
    check!(
        refused == BAD_RIPS.len() as u64,
        "{refused} of {} bad RIPs refused",
        BAD_RIPS.len()
    );

    // NT and IOPL are not handed back (IOPL cannot even be set in ring 3).
    AFTER.store(
        frr_ud_with_flags_after as *const () as u64,
        Ordering::Relaxed,
    );
    // SAFETY: as above; the routine clears NT itself before returning.
    let flags = unsafe { frr_ud_with_flags(NT | IOPL) };
    check!(
        flags & (NT | IOPL) == 0,
        "the resumed context has RFLAGS {flags:#x} (NT or IOPL set)"
    );
    check!(
        CALLS.load(Ordering::Relaxed) == 2,
        "the handler ran {} times, expected 2",
        CALLS.load(Ordering::Relaxed)
    );

    // sysretq with a non-canonical RSP (restored by the kernel in ring 0
    // before the return, with interrupts off).
    let cpu: u64;
    // SAFETY: RSP is put back right after the call; nothing uses the stack
    // in between (CPU_ID takes no pointer, the kernel does not touch it).
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "movabs rsp, 0x8000000000000000",
            "syscall",
            "mov rsp, r12",
            inlateout("rax") nr::CPU_ID => cpu,
            out("r12") _,
            out("rcx") _,
            out("r11") _,
        );
    }
    check!(
        cpu < rt::cpu_count() as u64,
        "CPU_ID with a non-canonical RSP returned {cpu:#x}"
    );
    println!("ok: bad FAULT_RETURNs refused; non-canonical RSP and NT survive the return");
    0
}
