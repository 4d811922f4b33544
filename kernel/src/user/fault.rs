//! Faults from user mode, and page faults at user addresses.
//!
//! A page fault from user mode takes the `mm` fault path (per-VMA lock
//! first, `mmap_lock` as the fallback). A bad access, and every other CPU
//! exception a ring-3 instruction raises (#DE, #UD, #GP, ...), is the
//! process's problem, never the kernel's: [`deliver`] hands it to the
//! thread's fault handler if it has one (the signals of this OS), else ends
//! the process with one line saying who, where and why. From kernel mode
//! (copying syscall arguments): the `mmap_lock` path, and on failure the
//! exception table's fixup.

use core::sync::atomic::Ordering;

use abi::fault::FaultReason;
use mm::fault::{Access, FaultOutcome, handle_fault_mmap_locked, handle_user_fault};
use x86_64::registers::rflags::RFlags;
use x86_64::structures::idt::PageFaultErrorCode;

use super::{Process, current_process, kill_process, save_frame, thread_exit, thread_state};
use crate::arch::exception;
use crate::arch::trap::TrapFrame;
use crate::arch::{cpu, percpu};
use crate::mm_platform;

/// The access a page fault's error code describes.
fn access_of(error_code: u64) -> Access {
    let code = PageFaultErrorCode::from_bits_truncate(error_code);
    if code.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
        Access::Exec
    } else if code.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
        Access::Write
    } else {
        Access::Read
    }
}

/// Why a fault that `mm` refused is bad, judged from the VMA there now.
/// `None`: the VMA there now allows the access (the mapping changed since
/// `mm` looked, as when another thread maps the window again): retry.
fn reason(addr: u64, access: Access) -> Option<FaultReason> {
    let vma = super::current_process()
        .with_mm(|mm| mm.find(addr))
        .flatten();
    let Some((_, prot)) = vma else {
        return Some(FaultReason::NotMapped);
    };
    if mm::fault::access_allowed(prot, access) {
        return None;
    }
    Some(match access {
        Access::Write => FaultReason::WriteToReadOnly,
        Access::Exec => FaultReason::ExecNoExec,
        Access::Read => FaultReason::ProtNone,
    })
}

/// A page fault from ring 3.
pub fn user_fault(frame: &mut TrapFrame, addr: u64) {
    // The fault path may sleep (mmap_lock, a VMA writer waiting for
    // readers): run it with interrupts on, as the interrupted code had them.
    cpu::enable_interrupts();
    let p = current_process();
    let access = access_of(frame.error_code);
    let mut outcome;
    let mut tries = 0;
    let why = loop {
        outcome = p
            .with_mm(|mm| handle_user_fault(mm, addr, access))
            .unwrap_or(FaultOutcome::AccessError);
        if outcome != FaultOutcome::AccessError {
            break None;
        }
        match reason(addr, access) {
            Some(why) => break Some(why),
            None if tries < 3 => tries += 1,
            None => break Some(FaultReason::NotMapped),
        }
    };
    match outcome {
        FaultOutcome::Done => {}
        FaultOutcome::Retry => unreachable!("handle_user_fault never asks to retry"),
        FaultOutcome::OutOfMemory => {
            crate::user_error!(
                "process {} '{}': out of memory at {:#x}, killed",
                p.id,
                p.name,
                addr
            );
            kill_process(p, 137);
            thread_exit(137);
        }
        FaultOutcome::AccessError => {
            mm_platform::count_segv();
            deliver(frame, why.unwrap_or(FaultReason::NotMapped), addr);
        }
    }
    cpu::disable_interrupts();
}

/// Any other CPU exception from ring 3 (the vectors
/// [`FaultReason::for_vector`] names): always the process's problem.
pub fn user_exception(frame: &mut TrapFrame, why: FaultReason) {
    // Like a syscall: process context, interrupts on while we decide (the
    // report takes the console, ending the process may sleep).
    cpu::enable_interrupts();
    deliver(frame, why, 0);
    cpu::disable_interrupts();
}

/// Hand a fault of the current thread to its fault handler, or end the
/// process. `addr` is the faulting address of a page fault, else 0. Returns
/// only if the handler will run (the frame now enters it); the caller then
/// returns to user mode as usual.
///
/// Nothing here is held across `thread_exit`: the caller took no lock, no
/// preemption count and no RCU or interrupt nesting (a user exception is
/// process context), so ending the thread leaves the CPU's books balanced.
pub fn deliver(frame: &mut TrapFrame, why: FaultReason, addr: u64) {
    debug_assert!(frame.from_user());
    let mut ts = thread_state();
    if ts.fault_handler != 0 && ts.saved.is_none() {
        // Deliver to the handler: it runs on its own stack with the fault's
        // address, reason, RIP and error code; FAULT_RETURN restores `saved`.
        ts.saved = Some(save_frame(frame));
        *frame = TrapFrame {
            vector: frame.vector,
            cs: frame.cs,
            ss: frame.ss,
            rip: ts.fault_handler,
            rsp: ts.fault_stack,
            rflags: 0x202,
            rdi: addr,
            rsi: why as u64,
            rdx: frame.rip,
            rcx: frame.error_code,
            ..TrapFrame::default()
        };
        return;
    }
    // Not held into `end_process`, which ends the thread.
    drop(ts);
    end_process(frame, why, addr)
}

/// No handler (or a fault inside it): one line, then the whole process ends.
fn end_process(frame: &TrapFrame, why: FaultReason, addr: u64) -> ! {
    let p = current_process();
    let at = FaultAddr((frame.vector == 14).then_some(addr));
    crate::println_raw!(
        "process {} '{}' thread {} on cpu{}: {} (vector {}) at rip {:#x}: {}{} (error {:#x}): killed",
        p.id,
        p.name,
        crate::sched::current().id,
        percpu::cpu_id(),
        exception::exception_name(frame.vector),
        frame.vector,
        frame.rip,
        why.describe(),
        at,
        frame.error_code
    );
    // Only if this fault is what ends the process (not an EXIT or another
    // thread's fault a moment earlier; a tie between two faults keeps one).
    if !p.killed.load(Ordering::Relaxed) {
        record_fatal_fault(p, frame.vector, why);
    }
    kill_process(p, abi::thread::EXIT_CODE_FAULT);
    thread_exit(abi::thread::EXIT_CODE_FAULT as i64)
}

/// " at ADDR" for a page fault, nothing for other exceptions; printed
/// without a heap allocation, since every thread of a process may get here
/// at once.
struct FaultAddr(Option<u64>);

impl core::fmt::Display for FaultAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(a) => write!(f, " at {a:#x}"),
            None => Ok(()),
        }
    }
}

/// Remember the first fault that ended `p` (for tests and post-mortems).
fn record_fatal_fault(p: &Process, vector: u64, why: FaultReason) {
    // Relaxed: read after the process has ended (`super::wait`, whose
    // Acquire on `done` pairs with the last thread's Release), so that
    // edge orders it; the compare-exchange keeps only the first fault.
    let _ = p.fatal_fault.compare_exchange(
        0,
        (vector << 32) | why as u64,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
}

/// The fault that ended `p`, if one did: its vector and reason.
pub fn fatal_fault(p: &Process) -> Option<(u64, FaultReason)> {
    // Relaxed: see `record_fatal_fault`.
    let v = p.fatal_fault.load(Ordering::Relaxed);
    FaultReason::from_u64(v & 0xFFFF_FFFF).map(|r| (v >> 32, r))
}

/// A kernel-mode fault at a user address from a user-copy instruction: try
/// to fault the page in for the process. True if the access can be retried.
pub fn kernel_fault_on_user(frame: &TrapFrame, addr: u64) -> bool {
    if crate::sched::try_current()
        .and_then(|t| t.user.as_ref())
        .is_none()
    {
        return false;
    }
    let was = RFlags::from_bits_truncate(frame.rflags).contains(RFlags::INTERRUPT_FLAG);
    if was {
        cpu::enable_interrupts();
    }
    let code = PageFaultErrorCode::from_bits_truncate(frame.error_code);
    let access = if code.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
        Access::Write
    } else {
        Access::Read
    };
    let ok = current_process()
        .with_mm(|mm| handle_fault_mmap_locked(mm, addr, access) == FaultOutcome::Done)
        .unwrap_or(false);
    cpu::disable_interrupts();
    ok
}
