//! The context switch itself: save the callee-saved registers on the old
//! task's stack, store its stack pointer, load the new one, pop, return.
//!
//! Everything else a task needs to resume (its RIP, caller-saved registers,
//! the interrupt frame if it was preempted) is already on its stack, put there
//! by the call into `switch_to` or by the interrupt entry.
//!
//! Hand-written assembly on purpose: no crate switches kernel stacks, and the
//! registers pushed here must match the frame `initial_stack` builds.

core::arch::global_asm!(
    r#"
    .section .text
    .global switch_stacks
/* switch_stacks(save_rsp: *mut u64 [rdi], new_rsp: u64 [rsi]) */
switch_stacks:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, (%rdi)
    mov %rsi, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret

    .global task_trampoline
/* First "return" of a new task lands here, on its fresh stack. */
task_trampoline:
    xor %ebp, %ebp              /* ends the backtrace of the new task */
    call task_first_run
    ud2
"#,
    options(att_syntax)
);

unsafe extern "C" {
    /// # Safety
    /// `save_rsp` must be writable and `new_rsp` must be a stack prepared by
    /// `initial_stack` or saved by an earlier `switch_stacks`, not in use.
    pub fn switch_stacks(save_rsp: *mut u64, new_rsp: u64);
    fn task_trampoline();
}

/// Lay out a new stack so that switching to it "returns" into
/// `task_trampoline` with zeroed callee-saved registers. Returns the rsp.
pub fn initial_stack(top: u64) -> u64 {
    // Six zeroed registers, the return address, then two words of padding so
    // that the trampoline's `call` enters Rust with rsp = 8 (mod 16), as the
    // ABI requires (`top` is 16-aligned).
    let words: [u64; 9] = [0, 0, 0, 0, 0, 0, task_trampoline as *const () as u64, 0, 0];
    let rsp = top - (words.len() as u64) * 8;
    // SAFETY: [rsp, top) is the top of a fresh stack owned by the new task.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), rsp as *mut u64, words.len()) };
    rsp
}
