//! CPU exceptions from ring 3 are the process's problem, and the syscall
//! entry and exits cannot be turned against the kernel. The user side is in
//! `user/src/bin/{user_exceptions, syscall_entry_masks_nt,
//! fault_return_rejects_bad_frames}.rs`.

use abi::FaultReason;
use abi::thread::EXIT_CODE_FAULT;

use crate::arch::gdt::{KERNEL_CS, USER_CS, USER_DS};
use crate::arch::trap::TrapFrame;
use crate::memory::{frame, heap, paging};
use crate::{kassert, kassert_eq, ktest, rcu, user};

/// Every kind of exception a ring-3 program can raise (the names are the
/// user program's), and the reason the kernel must give it. #BR, #NM and #NP
/// cannot be raised from ring 3 here (docs/kernel.md says why).
///
/// A kind may be accepted with more than one reason: a push with a
/// non-canonical RSP is #SS on hardware, but QEMU's TCG raises #GP for every
/// non-canonical address; `sysenter` in 64-bit mode is #GP on Intel, #UD
/// on AMD.
const KINDS: &[(&str, &[FaultReason])] = &[
    ("de", &[FaultReason::DivideError]),
    ("db", &[FaultReason::Debug]),
    ("bp", &[FaultReason::Breakpoint]),
    ("of", &[FaultReason::Overflow]),
    ("into", &[FaultReason::InvalidOpcode]),
    ("ud", &[FaultReason::InvalidOpcode]),
    ("hlt", &[FaultReason::GeneralProtection]),
    ("cli", &[FaultReason::GeneralProtection]),
    ("in", &[FaultReason::GeneralProtection]),
    ("out", &[FaultReason::GeneralProtection]),
    ("int80", &[FaultReason::GeneralProtection]),
    ("inttimer", &[FaultReason::GeneralProtection]),
    (
        "sysenter",
        &[FaultReason::GeneralProtection, FaultReason::InvalidOpcode],
    ),
    ("noncanon", &[FaultReason::GeneralProtection]),
    ("iretq", &[FaultReason::GeneralProtection]),
    (
        "ss",
        &[FaultReason::StackFault, FaultReason::GeneralProtection],
    ),
    ("mf", &[FaultReason::X87Fp]),
    ("ac", &[FaultReason::AlignmentCheck]),
    ("xm", &[FaultReason::SimdFp]),
    ("pf", &[FaultReason::NotMapped]),
];

/// QEMU's TCG emulates no alignment checking, so #AC cannot happen there
/// (it can under KVM and on hardware). Its CPUID hypervisor leaf says "TCG".
fn cpu_is_qemu_tcg() -> bool {
    let c = crate::arch::cpu::cpuid(0x4000_0000, 0);
    let sig = [c.ebx, c.ecx, c.edx].map(u32::to_le_bytes).concat();
    sig == *b"TCGTCGTCGTCG"
}

/// The exit code of `user_exceptions` when its kind raised nothing.
const NOT_RAISED: i32 = 2;

/// Kinds QEMU's TCG does not raise: alignment checks (#AC) and, before QEMU
/// 8, SSE exceptions (#XM). There a row may end with [`NOT_RAISED`]; it is
/// then reported, not failed. Under KVM or on hardware every row must raise.
fn may_be_unemulated(kind: &str) -> bool {
    matches!(kind, "ac" | "xm") && cpu_is_qemu_tcg()
}

/// Whether the row of `kind` ended as a CPU that cannot raise it ends it.
fn unemulated(kind: &str, p: &user::Process) -> bool {
    let skip = exit_code(p) == NOT_RAISED && may_be_unemulated(kind);
    if skip {
        crate::println_raw!(
            "# '{kind}': QEMU TCG does not emulate this exception; row not checked"
        );
    }
    skip
}

fn run(name: &str, args: &str) -> Result<alloc::sync::Arc<user::Process>, alloc::string::String> {
    user::run_process(name, args).map_err(|e| alloc::format!("cannot run {name}: {e}"))
}

fn exit_code(p: &user::Process) -> i32 {
    p.exit_code.load(core::sync::atomic::Ordering::Relaxed)
}

/// Free frames plus the frames of the kernel's own growing structures (heap,
/// kernel page tables), which may grow during a test without being a leak.
fn frames_accounted() -> usize {
    rcu::rcu_barrier();
    frame::free_count() + heap::mapped_frames() + paging::kernel_table_frames()
}

fn expect_hello() -> crate::ktest::TestResult {
    let p = run("hello", "")?;
    kassert_eq!(exit_code(&p), 0, "hello after the others");
    Ok(())
}

/// Run `user_exceptions KIND` with no handler: ended with one of `why`.
fn expect_ended(kind: &str, why: &[FaultReason]) -> crate::ktest::TestResult {
    let p = run("user_exceptions", kind)?;
    if unemulated(kind, &p) {
        return Ok(());
    }
    kassert_eq!(exit_code(&p), EXIT_CODE_FAULT, "exit code of '{}'", kind);
    let got = user::fault::fatal_fault(&p);
    kassert!(
        why.iter().any(|r| got == Some((r.vector().unwrap(), *r))),
        "'{}' ended with (vector, reason) {:?}, expected one of {:?}",
        kind,
        got,
        why
    );
    Ok(())
}

ktest!(
    fn user_exceptions_end_only_that_process() {
        kassert!(user::entry::alignment_check_enabled(), "CR0.AM is clear");
        // Warm the caches (VMA cache, heap) with one of each shape first.
        expect_ended("ud", &[FaultReason::InvalidOpcode])?;
        expect_hello()?;
        let before = frames_accounted();
        for &(kind, why) in KINDS {
            expect_ended(kind, why)?;
        }
        expect_hello()?;
        // The ended threads left nothing behind on this CPU's books.
        kassert_eq!(crate::sched::preempt::count(), 0, "preempt count");
        kassert_eq!(
            crate::arch::percpu::this()
                .irq_depth
                .load(core::sync::atomic::Ordering::Relaxed),
            0,
            "irq depth"
        );
        let after = frames_accounted();
        kassert_eq!(
            after,
            before,
            "free frames (plus kernel heap/table frames) before and after {} ended processes",
            KINDS.len()
        );
        Ok(())
    }
);

ktest!(
    fn user_exceptions_reach_fault_handler() {
        for &(kind, why) in KINDS {
            let reasons: alloc::vec::Vec<_> = why
                .iter()
                .map(|r| alloc::format!("{}", *r as u64))
                .collect();
            let args = alloc::format!("-h {kind} {}", reasons.join(","));
            let p = run("user_exceptions", &args)?;
            if unemulated(kind, &p) {
                continue;
            }
            kassert_eq!(exit_code(&p), 0, "user_exceptions {}", args);
            kassert_eq!(user::fault::fatal_fault(&p), None, "{}", kind);
        }
        expect_hello()
    }
);

ktest!(
    fn syscall_entry_masks_nt() {
        let p = run("syscall_entry_masks_nt", "")?;
        kassert_eq!(exit_code(&p), 0, "syscall_entry_masks_nt");
        expect_hello()
    }
);

/// A frame as the user could leave it: a user RIP, every flag set.
fn hostile_frame(rip: u64) -> TrapFrame {
    TrapFrame {
        rip,
        cs: u64::from(KERNEL_CS.0),
        ss: 0x10,
        rflags: !0,
        rsp: 0x8000_0000_0000_0000,
        ..TrapFrame::default()
    }
}

ktest!(
    fn fault_return_rejects_bad_frames() {
        // The kernel's own check, on frames the CPU would never save.
        for rip in [
            0x8000_0000_0000,
            0x8000_0000_0000_0000,
            0xffff_8000_0000_0000,
            u64::MAX,
        ] {
            let mut f = hostile_frame(rip);
            kassert_eq!(
                user::syscall::check_restored(&mut f),
                Err(abi::Errno::EINVAL),
                "restoring rip {:#x}",
                rip
            );
        }
        let mut f = hostile_frame(0x40_1000);
        kassert_eq!(user::syscall::check_restored(&mut f), Ok(()));
        kassert_eq!(f.cs, u64::from(USER_CS.0));
        kassert_eq!(f.ss, u64::from(USER_DS.0));
        let iopl_nt_tf_vm = (3 << 12) | (1 << 14) | (1 << 8) | (1 << 17);
        kassert!(
            f.rflags & iopl_nt_tf_vm == 0,
            "restored rflags {:#x}",
            f.rflags
        );
        kassert!(f.rflags & (1 << 9) != 0, "IF off in {:#x}", f.rflags);
        // And through the syscall, from ring 3.
        let p = run("fault_return_rejects_bad_frames", "")?;
        kassert_eq!(exit_code(&p), 0, "fault_return_rejects_bad_frames");
        expect_hello()
    }
);
