//! Page faults at user addresses.
//!
//! From user mode: the `mm` fault path (per-VMA lock first, `mmap_lock` as
//! the fallback). A bad access goes to the thread's fault handler if it has
//! one (the SIGSEGV of this OS), else ends the process with one line saying
//! who, where and why. From kernel mode (copying syscall arguments): the
//! `mmap_lock` path, and on failure the exception table's fixup.

use abi::fault::FaultReason;
use mm::fault::{Access, FaultOutcome, handle_fault_mmap_locked, handle_user_fault};

use super::{current_process, kill_process, save_frame, thread_exit, thread_state};
use crate::arch::cpu;
use crate::arch::percpu;
use crate::arch::trap::TrapFrame;
use crate::mm_platform;

const PF_WRITE: u64 = 1 << 1;
const PF_INSTR: u64 = 1 << 4;

fn access_of(error_code: u64) -> Access {
    if error_code & PF_INSTR != 0 {
        Access::Exec
    } else if error_code & PF_WRITE != 0 {
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
        FaultOutcome::AccessError => bad_fault(frame, addr, why.unwrap_or(FaultReason::NotMapped)),
    }
    cpu::disable_interrupts();
}

fn bad_fault(frame: &mut TrapFrame, addr: u64, why: FaultReason) {
    mm_platform::count_segv();
    let p = current_process();
    let ts = thread_state();
    if ts.fault_handler != 0 && ts.saved.is_none() {
        // Deliver to the handler: it runs on its own stack with the fault's
        // address, reason and RIP; FAULT_RETURN restores `saved`.
        ts.saved = Some(save_frame(frame));
        let rip = frame.rip;
        let zero = TrapFrame {
            vector: frame.vector,
            error_code: 0,
            cs: frame.cs,
            ss: frame.ss,
            ..TrapFrame::default()
        };
        *frame = zero;
        frame.rip = ts.fault_handler;
        frame.rsp = ts.fault_stack;
        frame.rflags = 0x202;
        frame.rdi = addr;
        frame.rsi = why as u64;
        frame.rdx = rip;
        return;
    }
    crate::println_raw!(
        "process {} '{}' thread {} on cpu{}: {} at {:#x}, rip {:#x} (page-fault error {:#x}): killed",
        p.id,
        p.name,
        crate::sched::current().id,
        percpu::cpu_id(),
        why.describe(),
        addr,
        frame.rip,
        frame.error_code
    );
    kill_process(p, abi::thread::EXIT_CODE_FAULT);
    thread_exit(abi::thread::EXIT_CODE_FAULT as i64);
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
    let was = frame.rflags & (1 << 9) != 0;
    if was {
        cpu::enable_interrupts();
    }
    let access = if frame.error_code & PF_WRITE != 0 {
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
