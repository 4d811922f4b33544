//! Crossing between ring 0 and ring 3.
//!
//! - `syscall`: the CPU loads RIP from LSTAR and CS/SS from STAR, saves the
//!   user RIP in rcx and RFLAGS in r11, masks RFLAGS with FMASK, and leaves
//!   RSP alone. `syscall_entry` swaps GS to the per-CPU area, switches to the
//!   thread's kernel stack (gs:16), and builds the same `TrapFrame` an
//!   interrupt builds, so one frame type serves syscalls, faults and the
//!   fault-handler redirection.
//! - Return: `sysretq` when the frame allows it (user, canonical RIP, the
//!   user's own rcx/r11 not needed), else `iretq`. `sysretq` to a
//!   non-canonical RIP would fault in ring 0 on the user's stack (the classic
//!   SYSRET hazard), so the dispatcher checks and chooses.
//! - First entry of a thread: `enter_user` builds an `iretq` frame.

use crate::arch::cpu;
use crate::arch::gdt::{KERNEL_CS, USER_CS, USER_DS};

core::arch::global_asm!(
    r#"
    .section .text
    .global syscall_entry
syscall_entry:
    swapgs
    mov %rsp, %gs:24
    mov %gs:16, %rsp
    push $0x1b                  /* ss: USER_DS */
    push %gs:24                 /* user rsp */
    push %r11                   /* user rflags */
    push $0x23                  /* cs: USER_CS */
    push %rcx                   /* user rip */
    push $0                     /* error code */
    push $0x100                 /* "vector" 256: a syscall frame */
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    xor %ebp, %ebp
    mov %rsp, %rdi
    call syscall_dispatch       /* returns with interrupts off */
    test %rax, %rax
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    lea 16(%rsp), %rsp          /* vector, error code (lea keeps the flags) */
    jnz 1f
    mov 0(%rsp), %rcx           /* rip */
    mov 16(%rsp), %r11          /* rflags */
    mov 24(%rsp), %rsp          /* user rsp */
    swapgs
    sysretq
1:  swapgs
    iretq

    .global enter_user
/* enter_user(rip, rsp, a0, a1, a2) -> ! */
enter_user:
    cli
    push $0x1b
    push %rsi
    push $0x202
    push $0x23
    push %rdi
    mov %rdx, %rdi
    mov %rcx, %rsi
    mov %r8, %rdx
    xor %eax, %eax
    xor %ebx, %ebx
    xor %ecx, %ecx
    xor %ebp, %ebp
    xor %r8d, %r8d
    xor %r9d, %r9d
    xor %r10d, %r10d
    xor %r11d, %r11d
    xor %r12d, %r12d
    xor %r13d, %r13d
    xor %r14d, %r14d
    xor %r15d, %r15d
    swapgs
    iretq
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn syscall_entry();
    fn enter_user(rip: u64, rsp: u64, a0: u64, a1: u64, a2: u64) -> !;
}

const MSR_STAR: u32 = 0xC000_0081;
const MSR_LSTAR: u32 = 0xC000_0082;
const MSR_FMASK: u32 = 0xC000_0084;

/// Enable `syscall` on this CPU.
pub fn init_this_cpu() {
    // sysret loads CS = base + 16 and SS = base + 8 (with RPL 3): base 0x10
    // gives USER_CS 0x23 and USER_DS 0x1b; syscall loads CS = KERNEL_CS.
    let star = (0x10u64 << 48) | (u64::from(KERNEL_CS) << 32);
    const { assert!(USER_CS == 0x23 && USER_DS == 0x1b) };
    // SAFETY: the entry point and selectors are the kernel's own; FMASK
    // clears IF, DF, TF and AC on entry so the entry code runs with
    // interrupts off and a known direction flag.
    unsafe {
        cpu::wrmsr(cpu::MSR_EFER, cpu::rdmsr(cpu::MSR_EFER) | 1); // SCE
        cpu::wrmsr(MSR_STAR, star);
        cpu::wrmsr(MSR_LSTAR, syscall_entry as *const () as u64);
        cpu::wrmsr(MSR_FMASK, (1 << 9) | (1 << 10) | (1 << 8) | (1 << 18));
    }
}

/// Leave the kernel for user code at `rip` with stack `rsp`.
pub fn to_user(rip: u64, rsp: u64, a0: u64, a1: u64, a2: u64) -> ! {
    // SAFETY: the caller's thread has its address space loaded and its
    // kernel stack installed for traps (switch_address_space); rip and rsp
    // were checked to be user addresses.
    unsafe { enter_user(rip, rsp, a0, a1, a2) }
}
