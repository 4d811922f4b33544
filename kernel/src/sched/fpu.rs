//! x87/SSE register state: it belongs to a user thread.
//!
//! User programs are compiled for ordinary x86-64 (SSE2, so floating point,
//! `memcpy` and wide copies use `xmm` registers), and ring 3 may use x87,
//! MMX and SSE (`cpu::enable_user_fpu` sets CR0/CR4 on every CPU). The
//! kernel itself never touches these registers: its target
//! (`x86_64-target.json`) is soft-float with `-mmx,-sse,...`, so the compiler
//! emits no x87/MMX/SSE instruction, and the only ones in the kernel are the
//! `fxsave64`/`fxrstor64` below. Hence a user thread's registers stay live in
//! the CPU through syscalls, faults and interrupts, and need saving only
//! when the CPU switches to another task.
//!
//! Eager switching: every switch away from a user thread saves its registers
//! into its task (`fxsave64`), every switch to one loads its own
//! (`fxrstor64`). Lazy switching (CR0.TS and a #NM trap on first use) would
//! save the copy for threads that never touch the FPU, but leaves one
//! thread's registers in a CPU while another runs, and makes migration need
//! an IPI to fetch them back; eager is simpler and obviously right (Linux
//! went eager for the same reasons). Kernel tasks neither save nor load:
//! they never read the registers, and whatever user thread runs next on this
//! CPU loads its own state first, so nothing leaks from one thread to another.
//!
//! `fxsave` covers x87, MMX, SSE and MXCSR, all a user program can use: AVX
//! is not enabled (CR4.OSXSAVE stays clear, so `xsave` and `ymm` registers
//! do not exist for it), so `xsave` would buy nothing.

use super::Task;

/// The `fxsave64` image: 512 bytes, 16-byte aligned (the instruction's rule).
#[repr(C, align(16))]
pub struct FpuState([u8; 512]);

/// Byte offsets in the image (Intel SDM vol. 1, table 10-2).
const FCW: usize = 0;
const MXCSR: usize = 24;

/// x87 control word after `fninit`: every exception masked, 64-bit
/// precision, round to nearest.
pub const INITIAL_FCW: u16 = 0x037F;
/// MXCSR after reset: every SIMD exception masked, round to nearest.
pub const INITIAL_MXCSR: u32 = 0x1F80;

impl FpuState {
    /// The state a new thread starts with: the control words above, every
    /// data register zero, the x87 stack empty (tag word 0), no status bits.
    pub const fn initial() -> Self {
        let mut b = [0u8; 512];
        let fcw = INITIAL_FCW.to_le_bytes();
        b[FCW] = fcw[0];
        b[FCW + 1] = fcw[1];
        let mxcsr = INITIAL_MXCSR.to_le_bytes();
        let mut i = 0;
        while i < 4 {
            b[MXCSR + i] = mxcsr[i];
            i += 1;
        }
        FpuState(b)
    }
}

/// Store this CPU's x87/SSE registers into `area`.
///
/// # Safety
/// `area` is a task's image and the caller the only one touching it (the
/// switching CPU, `Task::save_fpu`).
pub(super) unsafe fn save(area: *mut FpuState) {
    // SAFETY: `area` is a 16-byte-aligned 512-byte image nobody else touches
    // (the caller's contract); CR4.OSFXSR is set, so `fxsave64` includes the
    // `xmm` registers.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) area, options(nostack, preserves_flags)) };
}

/// Load this CPU's x87/SSE registers from `area`.
///
/// # Safety
/// As for [`save`] (`Task::restore_fpu`).
pub(super) unsafe fn restore(area: *mut FpuState) {
    // SAFETY: as in `save`. The image is either `initial()` or one written
    // by `fxsave64`, so its MXCSR has no reserved bit set (which would #GP).
    unsafe {
        core::arch::asm!("fxrstor64 [{}]", in(reg) area, options(nostack, readonly, preserves_flags))
    };
}

/// Called by the context switch (interrupts off) from `prev` to `next`.
///
/// # Safety
/// The caller is the switching CPU: it runs `prev` and has claimed `next`.
pub(super) unsafe fn switch(prev: &Task, next: &Task) {
    if prev.user.is_some() {
        // SAFETY: we are switching `prev` out (the caller's contract).
        unsafe { prev.save_fpu() };
    }
    if next.user.is_some() {
        // SAFETY: we are switching `next` in (the caller's contract).
        unsafe { next.restore_fpu() };
    }
}
