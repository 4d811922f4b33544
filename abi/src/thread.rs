//! How the kernel enters user code: a program, a new thread, a fault handler.
//!
//! In all three cases the kernel sets `rsp` to the given stack top (16-byte
//! aligned) and jumps to the entry point *without* pushing a return address,
//! so the entry must not return. Arguments are in `rdi`, `rsi`, `rdx`; every
//! other general register is zero, and RFLAGS has only IF (and the reserved
//! bit 1) set. Because no return address was pushed, the System V alignment
//! rule (`rsp + 8` 16-byte aligned at a call target) does not hold at the
//! entry: the user runtime enters through small assembly trampolines that call
//! into Rust properly.
//!
//! - Program: `rip` = ELF entry, `rsp` = top of a stack the kernel mapped
//!   (at least [`MIN_MAIN_STACK`] bytes, demand-faulted), no arguments (the
//!   program asks with `GET_ARGS`).
//! - Thread (`THREAD_SPAWN(entry, stack_top, arg)`): `rdi = arg`.
//! - Fault handler: `rdi = addr`, `rsi = reason`, `rdx = rip`,
//!   `rcx = error code` (see [`crate::fault`]).

/// The stack the kernel gives a program's first thread, at least.
pub const MIN_MAIN_STACK: u64 = 64 * 1024;

/// The longest argument string `GET_ARGS` can return.
pub const ARGS_MAX: usize = 1024;

/// Most threads a process may have at once, its first thread included and
/// those that exited but were not joined yet counted: `THREAD_SPAWN` past it
/// returns `EAGAIN` (a `THREAD_JOIN` makes room).
pub const MAX_THREADS: usize = 256;

/// Exit codes are 32-bit; `THREAD_JOIN` returns one zero-extended (so it is
/// never read as an error).
pub fn exit_code_to_ret(code: i32) -> u64 {
    u64::from(code as u32)
}

/// The exit code a `THREAD_JOIN` result carries.
pub fn exit_code_from_ret(ret: u64) -> i32 {
    ret as u32 as i32
}

/// The exit code of a process ended by a bad fault with no handler (as a
/// shell reports SIGSEGV: 128 + 11).
pub const EXIT_CODE_FAULT: i32 = 139;

/// The exit code of a user panic (as Rust's std uses).
pub const EXIT_CODE_PANIC: i32 = 101;

/// The exit code of a process whose program could not be loaded (as a
/// shell reports a command it cannot run), for example when memory for a
/// segment or the stack was refused.
pub const EXIT_CODE_CANNOT_START: i32 = 127;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_round_trip_and_are_never_errors() {
        for code in [0, 1, 101, -1, i32::MIN, i32::MAX] {
            let ret = exit_code_to_ret(code);
            assert!(crate::errno::decode(ret).is_ok(), "{code}");
            assert_eq!(exit_code_from_ret(ret), code);
        }
    }
}
