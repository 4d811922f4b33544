//! Catching bad faults and CPU exceptions: the user fault handler,
//! `try_read` and `try_write`.
//!
//! A thread that wants to survive its bad faults calls [`install`] once; the
//! returned guard keeps the handler (and its stack) registered for that
//! thread. The handler runs on its own stack and ends with `FAULT_RETURN`,
//! which restores every register of the faulting context. So the handler
//! cannot *change* a register to say what happened; it says it by choosing
//! *where* to resume:
//!
//! - `try_read`/`try_write` are assembly routines whose one memory access is
//!   at a known label. A fault there resumes at one of the fixup stubs, one
//!   per [`FaultReason`], each returning `reason << 8` instead of the value
//!   (like the kernel's exception table, which this mirrors). A
//!   non-canonical address is a #GP, not a page fault: its stub says
//!   [`FaultReason::GeneralProtection`].
//! - Otherwise a program-wide hook ([`set_hook`]) may claim the fault and say
//!   where to resume (`Some(0)`: retry the instruction, after fixing the
//!   mapping).
//! - Otherwise the handler removes itself and retries: the fault happens
//!   again with no handler and the kernel ends the process, as if none had
//!   been installed. A trap ([`FaultReason::is_trap`]: #DB, #BP, #OF) would
//!   not happen again (its RIP is already past the instruction), so for an
//!   unclaimed trap the handler prints what happened and ends the process
//!   with the fault exit code itself.

use abi::mman::{PROT_READ, PROT_WRITE};
use abi::{Errno, FaultReason};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A bad fault caught by [`try_read`] or [`try_write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub addr: u64,
    pub reason: FaultReason,
}

core::arch::global_asm!(
    ".pushsection .text.rt_fault, \"ax\"",
    // u64 rt_try_read(const u8 *p): the byte, or reason << 8.
    ".global rt_try_read, rt_try_read_insn",
    "rt_try_read:",
    "rt_try_read_insn:",
    "    movzx eax, byte ptr [rdi]",
    "    ret",
    // u64 rt_try_write(u8 *p, u8 v): 0, or reason << 8.
    ".global rt_try_write, rt_try_write_insn",
    "rt_try_write:",
    "rt_try_write_insn:",
    "    mov byte ptr [rdi], sil",
    "    xor eax, eax",
    "    ret",
    // Resumed at with the faulting context: rsp points at the return address
    // of the rt_try_* call, so `ret` goes back to its caller. One 8-byte
    // stub per reason, in reason order: stub n returns n << 8.
    ".balign 8",
    ".global rt_fixups",
    "rt_fixups:",
    ".set rt_fixup_reason, 1",
    ".rept {reasons}",
    "    .balign 8",
    "    mov eax, rt_fixup_reason * 256",
    "    ret",
    "    .set rt_fixup_reason, rt_fixup_reason + 1",
    ".endr",
    // The handler entry: rsp = the handler stack top, no return address.
    ".global rt_fault_entry",
    "rt_fault_entry:",
    "    xor ebp, ebp",
    "    and rsp, -16",
    "    call {handler}", // rdi, rsi, rdx = addr, reason, rip
    "    ud2",
    ".popsection",
    handler = sym fault_main,
    reasons = const FaultReason::ALL.len(),
);

unsafe extern "C" {
    fn rt_try_read(p: *const u8) -> u64;
    fn rt_try_write(p: *mut u8, v: u8) -> u64;
    fn rt_try_read_insn();
    fn rt_try_write_insn();
    fn rt_fixups();
    fn rt_fault_entry();
}

/// A program-wide hook: `fn(addr, reason, rip) -> Option<resume_rip>`.
pub type Hook = fn(u64, FaultReason, u64) -> Option<u64>;

static HOOK: AtomicUsize = AtomicUsize::new(0);
static CAUGHT: AtomicU64 = AtomicU64::new(0);

/// Sets the program-wide hook asked about faults that are not in
/// `try_read`/`try_write`.
pub fn set_hook(hook: Hook) {
    // Release pairs with the Acquire in `fault_main`: a handler that sees the
    // hook sees everything the program set up before installing it.
    HOOK.store(hook as usize, Ordering::Release);
}

/// How many faults the handler resumed from, process-wide.
pub fn caught() -> u64 {
    // Relaxed: a statistic; nothing is read on the strength of its value.
    CAUGHT.load(Ordering::Relaxed)
}

fn resume(rip: u64) -> ! {
    // Relaxed: see `caught`.
    CAUGHT.fetch_add(1, Ordering::Relaxed);
    // SAFETY: we are the fault handler; `rip` is a fixup stub or what a hook
    // chose (0 retries the instruction).
    let e = unsafe { crate::sys::fault_return(rip) };
    panic!("FAULT_RETURN({rip:#x}) refused: {e}")
}

extern "C" fn fault_main(addr: u64, reason: u64, rip: u64) -> ! {
    if let Some(reason) = FaultReason::from_u64(reason) {
        if rip == rt_try_read_insn as *const () as u64
            || rip == rt_try_write_insn as *const () as u64
        {
            resume(rt_fixups as *const () as u64 + 8 * (reason as u64 - 1));
        }
        // Acquire pairs with the Release in `set_hook`.
        let hook = HOOK.load(Ordering::Acquire);
        if hook != 0 {
            // SAFETY: a non-zero HOOK was stored from a `Hook` by `set_hook`.
            let hook: Hook = unsafe { core::mem::transmute::<usize, Hook>(hook) };
            if let Some(at) = hook(addr, reason, rip) {
                resume(at);
            }
        }
        if reason.is_trap() {
            crate::println!("unhandled {} before rip {rip:#x}", reason.describe());
            crate::sys::exit(abi::thread::EXIT_CODE_FAULT);
        }
    }
    // Not ours: fault again with no handler, so the kernel reports it.
    // SAFETY: removing the handler is always sound; retrying the instruction
    // (0) with the faulting context changes nothing.
    unsafe {
        let _ = crate::sys::set_fault_handler(0, 0);
        crate::sys::fault_return(0);
    }
    crate::sys::exit(abi::thread::EXIT_CODE_FAULT)
}

const HANDLER_STACK: u64 = 16 * 1024;

/// Keeps the calling thread's fault handler registered; dropping it removes
/// the handler and frees its stack. Must be dropped by the thread that made it.
pub struct HandlerGuard {
    stack: *mut u8,
}

/// Registers the fault handler for the calling thread.
pub fn install() -> Result<HandlerGuard, Errno> {
    let stack = crate::sys::mmap_anon(0, HANDLER_STACK, PROT_READ | PROT_WRITE)?;
    // The handler must not fault on its own stack (a fault in the handler
    // ends the process), so touch every page now.
    for off in (0..HANDLER_STACK).step_by(4096) {
        // SAFETY: inside the fresh mapping.
        unsafe { stack.add(off as usize).write_volatile(0) };
    }
    let top = stack as u64 + HANDLER_STACK;
    // SAFETY: the entry follows the handler contract and the stack is ours.
    let set = unsafe { crate::sys::set_fault_handler(rt_fault_entry as *const () as u64, top) };
    if let Err(e) = set {
        // SAFETY: nothing uses the fresh mapping.
        let _ = unsafe { crate::sys::munmap(stack, HANDLER_STACK) };
        return Err(e);
    }
    Ok(HandlerGuard { stack })
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        // SAFETY: after removing the handler nothing runs on its stack.
        unsafe {
            let _ = crate::sys::set_fault_handler(0, 0);
            let _ = crate::sys::munmap(self.stack, HANDLER_STACK);
        }
    }
}

fn decode(addr: u64, r: u64) -> Result<u8, Fault> {
    match FaultReason::from_u64(r >> 8) {
        None => Ok(r as u8),
        Some(reason) => Err(Fault { addr, reason }),
    }
}

/// Reads the byte at `addr`, or reports the bad fault. Needs [`install`] on
/// this thread (without it a bad fault ends the process).
///
/// An address, not a pointer: any value is fine, which is the point.
pub fn try_read(addr: u64) -> Result<u8, Fault> {
    // SAFETY: the routine reads one byte in asm, which is sound for any
    // address: a bad one faults and resumes at a fixup, a good one is read
    // like a volatile load.
    decode(addr, unsafe { rt_try_read(addr as *const u8) })
}

/// Writes `v` at `addr`, or reports the bad fault. Needs [`install`].
///
/// # Safety
/// If `addr` is mapped, writing there must not break anything Rust relies on.
pub unsafe fn try_write(addr: u64, v: u8) -> Result<(), Fault> {
    // SAFETY: the caller vouches for the write; a bad address faults and
    // resumes at a fixup.
    decode(addr, unsafe { rt_try_write(addr as *mut u8, v) }).map(drop)
}
