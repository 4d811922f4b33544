//! Test: user flags cannot follow `syscall` into the kernel. With RFLAGS.NT
//! set (plus DF and AC), a FAULT_RETURN outside a handler (refused, and
//! returned with `iretq`, which faults in ring 0 if the kernel runs with NT),
//! a YIELD (returned with `sysretq`) and a WRITE (a user copy, which must
//! not run backwards with DF) all come back normally. A kernel that keeps NT
//! stops on the first call; the kernel test then never sees exit 0.
#![no_std]
#![no_main]

use abi::{Errno, nr};
use rt::{Args, check, println};

rt::main!(main);

const NT: u64 = 1 << 14;
const DF: u64 = 1 << 10;
const AC: u64 = 1 << 18;

/// Makes syscall `n(a0, a1)` with `flags` or-ed into RFLAGS; the result, and
/// RFLAGS as the call left them. The caller's flags are put back after.
///
/// # Safety
/// As for any raw syscall: the call's effects are the caller's business.
unsafe fn syscall_with_flags(flags: u64, n: u64, a0: u64, a1: u64) -> (u64, u64) {
    let (ret, after): (u64, u64);
    // SAFETY: pushes and pops balance (the stack is ours); the caller's
    // flags, including DF and AC, are restored before Rust code runs again.
    unsafe {
        core::arch::asm!(
            "pushfq",
            "pop {saved}",
            "mov {tmp}, {saved}",
            "or {tmp}, {set}",
            "push {tmp}",
            "popfq",
            "syscall",
            "pushfq",
            "pop {after}",
            "push {saved}",
            "popfq",
            set = in(reg) flags,
            saved = out(reg) _,
            tmp = out(reg) _,
            after = lateout(reg) after,
            inlateout("rax") n => ret,
            in("rdi") a0,
            in("rsi") a1,
            out("rcx") _,
            out("r11") _,
        );
    }
    (ret, after)
}

fn main(_args: Args) -> i32 {
    for (name, set) in [("NT", NT), ("NT|DF|AC", NT | DF | AC)] {
        // SAFETY: FAULT_RETURN outside a handler only returns EINVAL.
        let (r, _) = unsafe { syscall_with_flags(set, nr::FAULT_RETURN, 0, 0) };
        check!(
            abi::errno::decode(r) == Err(Errno::EINVAL),
            "FAULT_RETURN with {name} set returned {r:#x}, expected EINVAL"
        );
        // SAFETY: YIELD takes no pointer.
        let (r, _) = unsafe { syscall_with_flags(set, nr::YIELD, 0, 0) };
        check!(r == 0, "YIELD with {name} set returned {r:#x}");
        let msg = b"a WRITE with hostile flags\n";
        // SAFETY: WRITE reads `msg`, which is ours.
        let (r, _) =
            unsafe { syscall_with_flags(set, nr::WRITE, msg.as_ptr() as u64, msg.len() as u64) };
        check!(
            r == msg.len() as u64,
            "WRITE with {name} set returned {r:#x}"
        );
    }
    println!("ok: syscalls with NT, DF and AC set came back");
    0
}
