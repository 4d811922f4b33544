//! Support the in-kernel tests need inside production paths.
//!
//! The tests run in the real kernel (`ktest`), and a few of them provoke
//! events the kernel normally treats as fatal. The hooks for those live here,
//! so that the production handlers show only a single call to a named hook.
//!
//! `call_on_stack_recoverable` lets `stack_guard_page_catches_overflow`
//! overflow a kernel stack on purpose and come back: the double-fault handler
//! asks [`recover_stack_overflow`] whether the overflow was armed, and if so
//! unwinds to the recovery point (a longjmp).

use core::sync::atomic::Ordering;

use crate::arch::percpu;
use crate::arch::trap::TrapFrame;

/// If the double fault `frame` (at `cr2`) is a stack overflow inside
/// `call_on_stack_recoverable`, report it, redirect `frame` to the recovery
/// point and return true.
pub fn recover_stack_overflow(frame: &mut TrapFrame, cr2: u64) -> bool {
    let pc = percpu::this();
    let recovery = pc.recovery_rsp.load(Ordering::Relaxed);
    if recovery == 0 || !crate::memory::kstack::is_guard_page(cr2) {
        return false;
    }
    crate::error!(
        "kernel stack overflow on cpu{}: rip={:#x} rsp={:#x} hit guard page {:#x}",
        pc.cpu_id,
        frame.rip,
        frame.rsp,
        cr2 & !0xFFF
    );
    pc.last_fixup_cr2.store(cr2, Ordering::Relaxed);
    frame.rsp = recovery;
    frame.rip = recovery_landing as *const () as u64;
    true
}

// `call_on_stack_recoverable(stack_top, f, arg) -> u64`: run `f(arg)` on
// another stack; returns 0 if it returned normally, 1 if it overflowed the
// stack and the double-fault handler unwound to `recovery_landing`.
// The saved RSP (after pushing callee-saved registers) is kept in gs:8.
core::arch::global_asm!(
    r#"
    .section .text
    .global call_on_stack_recoverable
call_on_stack_recoverable:
    push %rbp
    mov %rsp, %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    sub $8, %rsp
    mov %rsp, %gs:8
    mov %rdi, %rsp
    mov %rdx, %rdi
    call *%rsi
    mov %gs:8, %rsp
    xor %eax, %eax
    jmp 3f
    .global recovery_landing
recovery_landing:
    mov $1, %eax
3:  movq $0, %gs:8
    add $8, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret
"#,
    options(att_syntax)
);

unsafe extern "C" {
    pub fn call_on_stack_recoverable(stack_top: u64, f: extern "C" fn(u64), arg: u64) -> u64;
    fn recovery_landing();
}
