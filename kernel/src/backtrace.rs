//! Backtraces from frame pointers.
//!
//! The kernel keeps frame pointers (`"frame-pointer": "always"` in the target
//! spec), so every frame starts with `[rbp] = caller's rbp, [rbp+8] = return
//! address`. The walk reads through `probe_read_u64`, so a corrupt chain ends
//! the backtrace instead of faulting again. The runner turns the `bt #`
//! lines into function names and source lines with addr2line.

use crate::extable::probe_read_u64;
use crate::println_raw;

const MAX_FRAMES: usize = 32;

pub fn print_from(rip: u64, mut rbp: u64) {
    println_raw!("  backtrace:");
    println_raw!("    bt #0 {rip:#018x}");
    for depth in 1..MAX_FRAMES {
        if rbp == 0 || rbp < 0xFFFF_8000_0000_0000 {
            break;
        }
        let (Some(next), Some(ret)) = (probe_read_u64(rbp), probe_read_u64(rbp + 8)) else {
            break;
        };
        if ret == 0 {
            break;
        }
        // A return address points after the call: the caller's line is at ret-1.
        println_raw!("    bt #{depth} {:#018x}", ret - 1);
        if next <= rbp {
            break; // frames grow upwards as we walk; anything else is corrupt
        }
        rbp = next;
    }
}

/// Backtrace of the caller.
#[inline(never)]
pub fn print_here() {
    let rbp: u64;
    // SAFETY: reading RBP has no side effects.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags))
    };
    let rip = print_here as *const () as u64;
    print_from(rip, rbp);
}
