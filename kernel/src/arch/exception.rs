//! Exceptions in kernel mode, and the report of one the kernel cannot
//! handle.
//!
//! A kernel page fault at a user address may be a user copy that expects it
//! (the exception table names where to resume); a double fault is usually a
//! kernel stack overflow (the guard page); an NMI from another CPU means it
//! panicked. Anything else in ring 0 is a kernel bug: [`fatal_exception`]
//! prints the registers and a backtrace, then panics.

use core::sync::atomic::Ordering;

use x86_64::registers::control::Cr2;

use super::trap::TrapFrame;
use super::{cpu, percpu};
use crate::{backtrace, extable, println_raw};

const EXCEPTION_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved",
    "#MF x87 floating point",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating point",
    "#VE virtualization",
    "#CP control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved",
];

/// The name of exception `vector` for reports, e.g. "#UD invalid opcode".
pub fn exception_name(vector: u64) -> &'static str {
    EXCEPTION_NAMES
        .get(vector as usize)
        .copied()
        .unwrap_or("interrupt")
}

/// A page fault in kernel mode (ring 3's go to `user_exception`).
pub(super) fn page_fault(frame: &mut TrapFrame) {
    let cr2 = Cr2::read_raw();
    if cr2 < abi::mman::USER_END
        && extable::fixup_for(frame.rip).is_some()
        && crate::user::fault::kernel_fault_on_user(frame, cr2)
    {
        return; // the user page is there now: retry the copy
    }
    if let Some(fixup) = extable::fixup_for(frame.rip) {
        // A kernel access that expects to fault (a probe, a user copy): resume
        // at its fixup, which reports the error to its caller.
        percpu::this().last_fixup_cr2.store(cr2, Ordering::Relaxed);
        crate::debug!(
            "page fault fixed up: rip={:#x} cr2={:#x} error={:#x} -> {:#x}",
            frame.rip,
            cr2,
            frame.error_code,
            fixup
        );
        frame.rip = fixup;
        return;
    }
    fatal_exception(frame, Some(cr2));
}

pub(super) fn double_fault(frame: &mut TrapFrame) {
    let cr2 = Cr2::read_raw();
    if crate::testing::recover_stack_overflow(frame, cr2) {
        return; // a test overflowed a stack on purpose
    }
    if crate::memory::kstack::is_guard_page(cr2) {
        println_raw!("kernel stack overflow: guard page {:#x} hit", cr2 & !0xFFF);
    }
    fatal_exception(frame, Some(cr2));
}

pub(super) fn nmi(frame: &mut TrapFrame) {
    if crate::panic::panicking() {
        // Another CPU panicked and asked everyone to stop.
        cpu::halt_forever();
    }
    fatal_exception(frame, None);
}

/// Report an exception that the kernel cannot handle, then panic.
pub(super) fn fatal_exception(frame: &TrapFrame, cr2: Option<u64>) -> ! {
    let v = frame.vector;
    let name = exception_name(v);
    println_raw!(
        "EXCEPTION {} (vector {}) on cpu{} in {} mode: error={:#x} rip={:#x} rsp={:#x}{}",
        name,
        v,
        percpu::cpu_id(),
        if frame.from_user() { "user" } else { "kernel" },
        frame.error_code,
        frame.rip,
        frame.rsp,
        match cr2 {
            Some(a) => alloc::format!(" cr2={a:#x}"),
            None => alloc::string::String::new(),
        }
    );
    println_raw!(
        "  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx
    );
    println_raw!(
        "  rsi={:#018x} rdi={:#018x} rbp={:#018x} r8 ={:#018x}",
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.r8
    );
    backtrace::print_from(frame.rip, frame.rbp);
    crate::panic::fail_and_stop(name);
}
