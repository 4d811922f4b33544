//! Program entry: `_start`, the `main!` convention, and the panic handler.
//!
//! The kernel jumps to `_start` with `rsp` at the top of the main stack and
//! no return address ([`abi::thread`]), so `_start` aligns the stack and
//! *calls* into Rust. [`rt_start`] fetches the argument string with
//! `GET_ARGS`, runs the program's `main` and exits with what it returns.
//!
//! A program names its main function with [`crate::main!`]:
//! ```ignore
//! rt::main!(main);
//! fn main(args: rt::Args) -> i32 { 0 }
//! ```

use crate::Args;

core::arch::global_asm!(
    ".pushsection .text._start, \"ax\"",
    ".global _start",
    "_start:",
    "    xor ebp, ebp", // the end of the frame-pointer chain
    "    and rsp, -16",
    "    call {start}",
    "    ud2",
    ".popsection",
    start = sym rt_start,
);

unsafe extern "Rust" {
    /// Defined by [`crate::main!`] in the program.
    fn __rt_program_main(args: Args) -> i32;
}

/// The argument string, copied in once before `main` runs. A static, not
/// the heap: a program that never allocates then needs no memory beyond its
/// image and stack, so under memory pressure it meets `ENOMEM` from the
/// calls it makes rather than dying before `main`.
static mut ARGS: [u8; abi::thread::ARGS_MAX] = [0; abi::thread::ARGS_MAX];

extern "C" fn rt_start() -> ! {
    // SAFETY: the only reference ever made to `ARGS` as mutable, made once
    // before `main` runs, while the program has no other thread; after the
    // copy it is only read, through the shared `&'static str` below.
    let buf: &'static mut [u8; abi::thread::ARGS_MAX] =
        unsafe { &mut *core::ptr::addr_of_mut!(ARGS) };
    let n = crate::sys::get_args(buf).unwrap_or(0);
    let buf: &'static [u8] = buf;
    let args = Args::new(core::str::from_utf8(&buf[..n.min(buf.len())]).unwrap_or_default());
    // SAFETY: every program defines this symbol through `main!`, with this
    // signature.
    let code = unsafe { __rt_program_main(args) };
    crate::sys::exit(code)
}

/// Names the program's main function: `fn(rt::Args) -> i32`.
#[macro_export]
macro_rules! main {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn __rt_program_main(args: $crate::Args) -> i32 {
            $main(args)
        }
    };
}

/// Prints `FAIL: reason` and ends the process with code 1 (the test
/// programs' convention).
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {{
        $crate::println!("FAIL: {}", format_args!($($arg)*));
        $crate::sys::exit(1)
    }};
}

/// `fail!` unless the condition holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::fail!($($arg)*);
        }
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::println!("panic: {info}");
    crate::sys::exit(abi::thread::EXIT_CODE_PANIC)
}
