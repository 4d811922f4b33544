//! Test: one CPU exception from ring 3, chosen by name, either left to the
//! kernel (which must end only this process, with the right reason) or caught
//! by the fault handler (which must see the right reason and RIP, and resume).
//!
//! `user_exceptions KIND` raises exception KIND and has no handler: reaching
//! the end is the failure (exit 1). `user_exceptions -h KIND R1[,R2..]`
//! installs the handler, raises KIND, checks that the handler saw one of the
//! reasons (`FaultReason` numbers) at the right RIP and resumed, and exits 0.
//! If KIND raises nothing at all (QEMU's TCG emulates neither #AC nor, before
//! QEMU 8, #XM), both exit with [`NOT_RAISED`] so the kernel test can tell.
//!
//! Each kind is a small assembly routine `uexc_KIND` whose exception comes
//! from the instruction at `uexc_KIND_insn`; `uexc_KIND_after` is where it
//! goes on. A fault reports `_insn` and is resumed at `_after`; a trap (#DB,
//! #BP, #OF) already reports `_after` and is resumed there (`FAULT_RETURN(0)`).
#![no_std]
#![no_main]

extern crate alloc;

use abi::FaultReason;
use core::sync::atomic::{AtomicU64, Ordering};
use rt::{Args, check, fail, println};

rt::main!(main);

// The routines, one per kind. Each is `extern "C" fn()`: it may clobber the
// caller-saved registers and must restore the callee-saved ones and `rsp`
// (a resumed fault comes back with every register as it was at the fault).
core::arch::global_asm!(
    // #DE: divide by zero.
    ".global uexc_de, uexc_de_insn, uexc_de_after",
    "uexc_de:",
    "    xor edx, edx",
    "    mov eax, 1",
    "    xor ecx, ecx",
    "uexc_de_insn: div ecx",
    "uexc_de_after: ret",
    // #DB: single-step (TF). The trap comes after the instruction that
    // follows `popfq`; FAULT_RETURN does not restore TF.
    ".global uexc_db, uexc_db_insn, uexc_db_after",
    "uexc_db:",
    "    pushfq",
    "    or qword ptr [rsp], 0x100",
    "    popfq",
    "uexc_db_insn: nop",
    "uexc_db_after: ret",
    // #BP: int3 (a DPL-3 gate).
    ".global uexc_bp, uexc_bp_insn, uexc_bp_after",
    "uexc_bp:",
    "uexc_bp_insn: int3",
    "uexc_bp_after: ret",
    // #OF: `int 4` (a DPL-3 gate; `into` is #UD in 64-bit mode).
    ".global uexc_of, uexc_of_insn, uexc_of_after",
    "uexc_of:",
    "uexc_of_insn: int 4",
    "uexc_of_after: ret",
    // #UD: `into` does not exist in 64-bit mode.
    ".global uexc_into, uexc_into_insn, uexc_into_after",
    "uexc_into:",
    "uexc_into_insn: .byte 0xce",
    "uexc_into_after: ret",
    // #UD: ud2.
    ".global uexc_ud, uexc_ud_insn, uexc_ud_after",
    "uexc_ud:",
    "uexc_ud_insn: ud2",
    "uexc_ud_after: ret",
    // #GP: privileged instructions.
    ".global uexc_hlt, uexc_hlt_insn, uexc_hlt_after",
    "uexc_hlt:",
    "uexc_hlt_insn: hlt",
    "uexc_hlt_after: ret",
    ".global uexc_cli, uexc_cli_insn, uexc_cli_after",
    "uexc_cli:",
    "uexc_cli_insn: cli",
    "uexc_cli_after: ret",
    ".global uexc_inb, uexc_inb_insn, uexc_inb_after",
    "uexc_inb:",
    "uexc_inb_insn: in al, 0x80",
    "uexc_inb_after: ret",
    ".global uexc_outb, uexc_outb_insn, uexc_outb_after",
    "uexc_outb:",
    "uexc_outb_insn: out 0x80, al",
    "uexc_outb_after: ret",
    // #GP: `int n` to a kernel vector (DPL 0).
    ".global uexc_int80, uexc_int80_insn, uexc_int80_after",
    "uexc_int80:",
    "uexc_int80_insn: int 0x80",
    "uexc_int80_after: ret",
    ".global uexc_inttimer, uexc_inttimer_insn, uexc_inttimer_after",
    "uexc_inttimer:",
    "uexc_inttimer_insn: int 0x30",
    "uexc_inttimer_after: ret",
    // sysenter from 64-bit code: #GP on Intel (SYSENTER_CS is 0), #UD on
    // AMD; it must never reach the kernel.
    ".global uexc_sysenter, uexc_sysenter_insn, uexc_sysenter_after",
    "uexc_sysenter:",
    "uexc_sysenter_insn: sysenter",
    "uexc_sysenter_after: ret",
    // #GP: a non-canonical data address.
    ".global uexc_noncanon, uexc_noncanon_insn, uexc_noncanon_after",
    "uexc_noncanon:",
    "    movabs rax, 0x8000000000000000",
    "uexc_noncanon_insn: mov rax, qword ptr [rax]",
    "uexc_noncanon_after: ret",
    // #GP: iretq of a frame asking for the kernel's code segment.
    ".global uexc_iretq, uexc_iretq_insn, uexc_iretq_after",
    "uexc_iretq:",
    "    mov rax, rsp",
    "    push 0x1b",
    "    push rax",
    "    pushfq",
    "    push 0x08",
    "    lea rcx, [rip + uexc_iretq_after]",
    "    push rcx",
    "uexc_iretq_insn: iretq",
    "uexc_iretq_after: mov rsp, rax",
    "    ret",
    // #SS: a push with a non-canonical stack pointer. Resuming restores that
    // RSP with iretq, which must not fault in the kernel.
    ".global uexc_ss, uexc_ss_insn, uexc_ss_after",
    "uexc_ss:",
    "    mov rax, rsp",
    "    movabs rsp, 0x8000000000000000",
    "uexc_ss_insn: push rcx",
    "uexc_ss_after: mov rsp, rax",
    "    ret",
    // #MF: an unmasked x87 divide by zero, reported at the next fwait.
    ".global uexc_mf, uexc_mf_insn, uexc_mf_after",
    "uexc_mf:",
    "    fninit",
    "    sub rsp, 8",
    "    mov word ptr [rsp], 0x037b",
    "    fldcw word ptr [rsp]",
    "    add rsp, 8",
    "    fld1",
    "    fldz",
    "    fdivp",
    "uexc_mf_insn: fwait",
    "uexc_mf_after: fninit",
    "    ret",
    // #AC: a misaligned load with RFLAGS.AC set.
    ".global uexc_ac, uexc_ac_insn, uexc_ac_after",
    "uexc_ac:",
    "    pushfq",
    "    or qword ptr [rsp], 0x40000",
    "    popfq",
    "    lea rax, [rsp + 1]",
    "uexc_ac_insn: mov ecx, dword ptr [rax]",
    "uexc_ac_after: pushfq",
    "    and qword ptr [rsp], -0x40001",
    "    popfq",
    "    ret",
    // #XM: an unmasked SSE divide by zero.
    ".global uexc_xm, uexc_xm_insn, uexc_xm_after",
    "uexc_xm:",
    "    sub rsp, 8",
    "    mov dword ptr [rsp], 0x1d80",
    "    ldmxcsr dword ptr [rsp]",
    "    xorps xmm1, xmm1",
    "    mov eax, 0x3f800000",
    "    movd xmm0, eax",
    "uexc_xm_insn: divss xmm0, xmm1",
    "uexc_xm_after: mov dword ptr [rsp], 0x1f80",
    "    ldmxcsr dword ptr [rsp]",
    "    add rsp, 8",
    "    ret",
    // #PF: a read of page 0.
    ".global uexc_pf, uexc_pf_insn, uexc_pf_after",
    "uexc_pf:",
    "    mov eax, 8",
    "uexc_pf_insn: mov rcx, qword ptr [rax]",
    "uexc_pf_after: ret",
);

/// One kind of exception: its routine and the two addresses that matter.
struct Kind {
    name: &'static str,
    run: unsafe extern "C" fn(),
    insn: unsafe extern "C" fn(),
    after: unsafe extern "C" fn(),
}

macro_rules! kinds {
    ($($name:literal => $run:ident $insn:ident $after:ident,)*) => {
        unsafe extern "C" {
            $(fn $run(); fn $insn(); fn $after();)*
        }
        const KINDS: &[Kind] = &[$(Kind { name: $name, run: $run, insn: $insn, after: $after }),*];
    };
}

kinds!(
    "de" => uexc_de uexc_de_insn uexc_de_after,
    "db" => uexc_db uexc_db_insn uexc_db_after,
    "bp" => uexc_bp uexc_bp_insn uexc_bp_after,
    "of" => uexc_of uexc_of_insn uexc_of_after,
    "into" => uexc_into uexc_into_insn uexc_into_after,
    "ud" => uexc_ud uexc_ud_insn uexc_ud_after,
    "hlt" => uexc_hlt uexc_hlt_insn uexc_hlt_after,
    "cli" => uexc_cli uexc_cli_insn uexc_cli_after,
    "in" => uexc_inb uexc_inb_insn uexc_inb_after,
    "out" => uexc_outb uexc_outb_insn uexc_outb_after,
    "int80" => uexc_int80 uexc_int80_insn uexc_int80_after,
    "inttimer" => uexc_inttimer uexc_inttimer_insn uexc_inttimer_after,
    "sysenter" => uexc_sysenter uexc_sysenter_insn uexc_sysenter_after,
    "noncanon" => uexc_noncanon uexc_noncanon_insn uexc_noncanon_after,
    "iretq" => uexc_iretq uexc_iretq_insn uexc_iretq_after,
    "ss" => uexc_ss uexc_ss_insn uexc_ss_after,
    "mf" => uexc_mf uexc_mf_insn uexc_mf_after,
    "ac" => uexc_ac uexc_ac_insn uexc_ac_after,
    "xm" => uexc_xm uexc_xm_insn uexc_xm_after,
    "pf" => uexc_pf uexc_pf_insn uexc_pf_after,
);

/// What the handler saw: reason, reported RIP, and how many times it ran.
/// Relaxed everywhere: the handler runs on this thread, between the fault and
/// the resume, so program order already orders it with `main`.
static SEEN_REASON: AtomicU64 = AtomicU64::new(0);
static SEEN_RIP: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);
/// Where a fault of the kind under test resumes.
static AFTER: AtomicU64 = AtomicU64::new(0);

fn hook(_addr: u64, reason: FaultReason, rip: u64) -> Option<u64> {
    CALLS.fetch_add(1, Ordering::Relaxed);
    SEEN_REASON.store(reason as u64, Ordering::Relaxed);
    SEEN_RIP.store(rip, Ordering::Relaxed);
    if reason.is_trap() {
        Some(0) // already past the instruction
    } else {
        Some(AFTER.load(Ordering::Relaxed))
    }
}

/// The exit code when the kind raised nothing.
const NOT_RAISED: i32 = 2;

fn not_raised(name: &str) -> i32 {
    println!("'{name}' raised no exception on this CPU");
    NOT_RAISED
}

fn find(name: &str) -> &'static Kind {
    match KINDS.iter().find(|k| k.name == name) {
        Some(k) => k,
        None => fail!("no exception kind '{name}'"),
    }
}

fn main(args: Args) -> i32 {
    let mut it = args.iter();
    match (it.next(), it.next(), it.next()) {
        (Some("-h"), Some(name), Some(reasons)) => {
            let mut want = [None; FaultReason::ALL.len()];
            for (slot, r) in want.iter_mut().zip(reasons.split(',')) {
                *slot = r.parse().ok().and_then(FaultReason::from_u64);
                check!(slot.is_some(), "bad reason '{r}'");
            }
            caught(find(name), &want)
        }
        (Some(name), None, None) => {
            let k = find(name);
            println!("raising '{name}' with no handler: the kernel must end this process");
            // SAFETY: the routine follows the C ABI; its exception ends us.
            unsafe { (k.run)() };
            not_raised(name)
        }
        _ => fail!("usage: user_exceptions KIND | -h KIND REASON[,REASON..]"),
    }
}

/// Raise `k` with the handler installed; check that the handler saw one of
/// the reasons in `want`.
fn caught(k: &Kind, want: &[Option<FaultReason>]) -> i32 {
    let _guard = rt::fault::install().expect("install the fault handler");
    rt::fault::set_hook(hook);
    AFTER.store(k.after as usize as u64, Ordering::Relaxed);
    // SAFETY: the routine follows the C ABI; the hook resumes it.
    unsafe { (k.run)() };
    let (calls, reason, rip) = (
        CALLS.load(Ordering::Relaxed),
        SEEN_REASON.load(Ordering::Relaxed),
        SEEN_RIP.load(Ordering::Relaxed),
    );
    if calls == 0 {
        return not_raised(k.name);
    }
    check!(calls == 1, "'{}': the handler ran {calls} times", k.name);
    let Some(seen) = want.iter().flatten().find(|r| **r as u64 == reason) else {
        let want: alloc::vec::Vec<_> = want.iter().flatten().collect();
        fail!("'{}': reason {reason}, expected one of {want:?}", k.name);
    };
    let at = if seen.is_trap() { k.after } else { k.insn } as usize as u64;
    check!(
        rip == at,
        "'{}': reported rip {rip:#x}, expected {at:#x}",
        k.name
    );
    println!(
        "ok: '{}' reached the handler as {} and resumed",
        k.name,
        seen.describe()
    );
    0
}
