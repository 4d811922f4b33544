//! Crossing between ring 0 and ring 3.
//!
//! - `syscall`: the CPU loads RIP from LSTAR and CS/SS from STAR, saves the
//!   user RIP in rcx and RFLAGS in r11, masks RFLAGS with FMASK (every flag
//!   the kernel must not inherit from the user: see [`FMASK`]), and leaves
//!   RSP alone. `syscall_entry` swaps GS to the per-CPU area, switches to the
//!   thread's kernel stack (gs:16), and builds the same `TrapFrame` an
//!   interrupt builds, so one frame type serves syscalls, faults and the
//!   fault-handler redirection.
//! - Return: `sysretq` when the frame allows it (user, canonical RIP, the
//!   user's own rcx/r11 not needed), else `iretq`. `sysretq` to a
//!   non-canonical RIP would fault in ring 0 on the user's stack (the classic
//!   SYSRET hazard), so the dispatcher checks and chooses.
//! - Every return to ring 3 passes [`prepare_return`], which makes sure the
//!   frame cannot make `iretq`/`sysretq` fault in ring 0.
//! - First entry of a thread: `enter_user` builds an `iretq` frame.
//!
//! What the two return instructions check, and so what must never reach
//! them from user-controlled state:
//! - RIP: both fault on a non-canonical one *in ring 0* (`iretq` with #GP
//!   before leaving; Intel's `sysretq` with #GP on the user's RSP).
//!   `prepare_return` turns such a RIP into a #GP of the process instead, as
//!   Linux's bad-IRET fixup does.
//! - RSP: neither checks it. `iretq` loads a non-canonical user RSP as it
//!   is (the SDM's IRET checks RIP, CS and SS, not RSP; QEMU agrees, see the
//!   `fault_return_rejects_bad_frames` test), and the first stack access in
//!   ring 3 raises #SS there, which is the process's problem. `sysretq` is
//!   preceded by `mov user_rsp, %rsp` in ring 0 with interrupts off; only an
//!   NMI or #MC could arrive in that window, and both run on IST stacks.
//! - The kernel's own RFLAGS.NT: `iretq` in 64-bit mode raises #GP if NT is
//!   set *in the running flags*. A user can set NT (`popfq`), and `syscall`
//!   copies the user's flags, so FMASK must clear it. (Interrupts and
//!   exceptions clear NT on entry by themselves.)
//! - The flags restored: `iretq` and `sysretq` load RFLAGS from the frame;
//!   `prepare_return` keeps only flags a user may own (never IOPL, which
//!   would grant `in`/`out`/`cli`, nor NT or VM).
//!
//! The entry and exit paths stay hand-written `global_asm!`: `syscall`
//! arrives with the user's RSP and GS, so the code must `swapgs` and switch
//! stacks before any Rust can run, and leave in the exact reverse order. The
//! MSRs, CR0 and the RFLAGS bits are set through the `x86_64` crate.

use abi::FaultReason;

use x86_64::VirtAddr;
use x86_64::registers::control::{Cr0, Cr0Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;

use crate::arch::gdt::{KERNEL_CS, KERNEL_DS, USER_CS, USER_DS};
use crate::arch::trap::TrapFrame;

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

/// The flags `syscall` clears on entry: the same set as Linux. IF: the entry
/// code runs with interrupts off until it is on the kernel stack. TF: no
/// single-step trap in ring 0. DF: the ABI wants it clear. AC: no user
/// alignment rules (or SMAP override) in the kernel. NT: `iretq` would fault
/// (see the module comment). IOPL, RF, ID and the arithmetic flags: the
/// kernel starts from known flags, not the user's.
pub const FMASK: RFlags = ARITHMETIC
    .union(RFlags::TRAP_FLAG)
    .union(RFlags::INTERRUPT_FLAG)
    .union(RFlags::DIRECTION_FLAG)
    .union(RFlags::IOPL_LOW)
    .union(RFlags::IOPL_HIGH)
    .union(RFlags::NESTED_TASK)
    .union(RFlags::RESUME_FLAG)
    .union(RFlags::ALIGNMENT_CHECK)
    .union(RFlags::ID);

/// The flags a user context may carry back to ring 3; IF is forced on.
pub const USER_FLAGS: RFlags = ARITHMETIC
    .union(RFlags::TRAP_FLAG)
    .union(RFlags::DIRECTION_FLAG)
    .union(RFlags::RESUME_FLAG)
    .union(RFlags::ALIGNMENT_CHECK)
    .union(RFlags::ID);

const ARITHMETIC: RFlags = RFlags::CARRY_FLAG
    .union(RFlags::PARITY_FLAG)
    .union(RFlags::AUXILIARY_CARRY_FLAG)
    .union(RFlags::ZERO_FLAG)
    .union(RFlags::SIGN_FLAG)
    .union(RFlags::OVERFLOW_FLAG);

/// RFLAGS bit 1 reads as 1 always (the crate's type has no name for it).
const RESERVED1: u64 = 1 << 1;

/// The RFLAGS value to return to ring 3 with: `user`'s user-owned flags
/// (minus `drop`), IF on, and the always-one bit.
pub fn user_rflags(user: u64, drop: RFlags) -> u64 {
    let kept = RFlags::from_bits_truncate(user) & (USER_FLAGS - drop);
    (kept | RFlags::INTERRUPT_FLAG).bits() | RESERVED1
}

/// The lower (user) half of the canonical address space.
pub fn is_canonical_user(a: u64) -> bool {
    a < 1 << 47
}

/// Enable `syscall` on this CPU.
pub fn init_this_cpu() {
    // sysret loads CS = base + 16 and SS = base + 8 (with RPL 3): USER_CS
    // 0x23 and USER_DS 0x1b; syscall loads CS = KERNEL_CS, SS = KERNEL_DS.
    // The entry assembly pushes these two user selectors as literals.
    const { assert!(USER_CS.0 == 0x23 && USER_DS.0 == 0x1b) };
    Star::write(USER_CS, USER_DS, KERNEL_CS, KERNEL_DS).expect("GDT order fits sysret");
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    SFMask::write(FMASK);
    // SAFETY: SCE only makes `syscall`/`sysret` valid instructions; the
    // entry point and selectors above are the kernel's own, and FMASK
    // clears IF (the entry code runs with interrupts off) and every other
    // flag the kernel must not inherit.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
    enable_alignment_check();
}

/// Let ring 3 ask for alignment checking (RFLAGS.AC): a misaligned access
/// then raises #AC, which goes to the process. Ring 0 is never checked.
fn enable_alignment_check() {
    // SAFETY: AM changes only how ring-3 accesses with RFLAGS.AC set behave;
    // PE, PG and WP stay as they are.
    unsafe { Cr0::update(|f| f.insert(Cr0Flags::ALIGNMENT_MASK)) };
}

/// True if CR0.AM is set on this CPU (ring 3 may ask for #AC).
pub fn alignment_check_enabled() -> bool {
    Cr0::read().contains(Cr0Flags::ALIGNMENT_MASK)
}

/// The last look at a frame before it returns to ring 3 (by `iretq` or
/// `sysretq`): nothing in it may make the return fault in ring 0. Keeps
/// only user flags; a non-canonical RIP becomes a #GP of the process (its
/// fault handler runs, or it ends). Returns true if the frame was
/// redirected to the fault handler (which needs the `iretq` return).
pub fn prepare_return(frame: &mut TrapFrame) -> bool {
    frame.rflags = user_rflags(frame.rflags, RFlags::empty());
    debug_assert!(frame.cs == u64::from(USER_CS.0) && frame.ss == u64::from(USER_DS.0));
    if is_canonical_user(frame.rip) {
        return false;
    }
    frame.vector = 13;
    frame.error_code = 0;
    super::fault::deliver(frame, FaultReason::GeneralProtection, 0);
    true
}

/// Leave the kernel for user code at `rip` with stack `rsp`.
pub fn to_user(rip: u64, rsp: u64, a0: u64, a1: u64, a2: u64) -> ! {
    // SAFETY: the caller's thread has its address space loaded and its
    // kernel stack installed for traps (switch_address_space); rip and rsp
    // were checked to be user addresses.
    unsafe { enter_user(rip, rsp, a0, a1, a2) }
}
