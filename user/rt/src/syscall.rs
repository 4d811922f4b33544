//! The `syscall` instruction, for zero to four arguments.
//!
//! Register use is fixed by the ABI ([`abi`]): number in `rax`, arguments in
//! `rdi`, `rsi`, `rdx`, `r10`, result in `rax`; `syscall` itself overwrites
//! `rcx` (return RIP) and `r11` (saved RFLAGS), so they are declared
//! clobbered. The kernel does not touch the user stack (`nostack`).
//!
//! These are `unsafe`: a raw call can unmap memory that Rust still uses,
//! or hand the kernel any pointer. [`crate::sys`] wraps each call safely
//! where it can be.

use core::arch::asm;

/// # Safety
/// The syscall `n` must be one whose effects the caller accounts for.
#[inline(always)]
pub unsafe fn syscall0(n: u64) -> u64 {
    let ret;
    // SAFETY: the caller vouches for the call's effects; the asm follows the
    // ABI's register contract.
    unsafe {
        asm!("syscall", inlateout("rax") n => ret, out("rcx") _, out("r11") _, options(nostack));
    }
    ret
}

/// # Safety
/// As [`syscall0`]; pointer arguments are the caller's responsibility.
#[inline(always)]
pub unsafe fn syscall1(n: u64, a1: u64) -> u64 {
    let ret;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") n => ret, in("rdi") a1,
             out("rcx") _, out("r11") _, options(nostack));
    }
    ret
}

/// # Safety
/// As [`syscall1`].
#[inline(always)]
pub unsafe fn syscall2(n: u64, a1: u64, a2: u64) -> u64 {
    let ret;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") n => ret, in("rdi") a1, in("rsi") a2,
             out("rcx") _, out("r11") _, options(nostack));
    }
    ret
}

/// # Safety
/// As [`syscall1`].
#[inline(always)]
pub unsafe fn syscall3(n: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let ret;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") n => ret, in("rdi") a1, in("rsi") a2, in("rdx") a3,
             out("rcx") _, out("r11") _, options(nostack));
    }
    ret
}

/// # Safety
/// As [`syscall1`].
#[inline(always)]
pub unsafe fn syscall4(n: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> u64 {
    let ret;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") n => ret, in("rdi") a1, in("rsi") a2, in("rdx") a3,
             in("r10") a4, out("rcx") _, out("r11") _, options(nostack));
    }
    ret
}
