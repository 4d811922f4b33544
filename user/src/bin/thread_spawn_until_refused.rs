//! For the `user_limits` kernel tests: spawn threads until `THREAD_SPAWN`
//! says no, and check that it says so with the expected error.
//!
//! `thread_spawn_until_refused EAGAIN`: no memory pressure, so the refusal
//! must be the per-process limit: `EAGAIN` with exactly
//! `abi::thread::MAX_THREADS` threads. Then joining one thread makes room
//! for exactly one more.
//!
//! `thread_spawn_until_refused ENOMEM`: the kernel test has taken nearly all
//! memory first, so the refusal must be `ENOMEM`, before the limit.
//!
//! Either way the process then exits with every other thread asleep: the
//! kernel must end them all and give back every kernel stack.
//!
//! The threads are raw `THREAD_SPAWN`s of the assembly below, not
//! `rt::spawn`: they never touch their stack (a sleeper loops on `NANOSLEEP`,
//! which saturates at "until the process ends"), so they can share one, and
//! the only memory each costs is the kernel's (its task and kernel stack).
//! `rt::spawn` would map a user stack per thread, and under memory pressure
//! that `mmap` would fail first and hide the path under test.
#![no_std]
#![no_main]

use abi::Errno;
use abi::nr::{NANOSLEEP, THREAD_EXIT};
use abi::thread::MAX_THREADS;
use rt::{Args, check, println};

rt::main!(main);

core::arch::global_asm!(
    ".pushsection .text.limit_threads, \"ax\"",
    ".global limit_sleeper",
    "limit_sleeper:",
    "1:  mov eax, {sleep}",
    "    mov rdi, -1",
    "    syscall",
    "    jmp 1b",
    ".global limit_quitter",
    "limit_quitter:",
    "    mov eax, {exit}",
    "    mov edi, {quit_code}",
    "    syscall",
    "    ud2",
    ".popsection",
    sleep = const NANOSLEEP,
    exit = const THREAD_EXIT,
    quit_code = const QUIT_CODE,
);

unsafe extern "C" {
    fn limit_sleeper();
    fn limit_quitter();
}

/// The exit code of the thread that ends at once.
const QUIT_CODE: i32 = 7;

/// The one stack every thread is given; none of them uses it.
#[repr(C, align(16))]
struct UnusedStack([u8; 64]);
static STACK: UnusedStack = UnusedStack([0; 64]);

fn spawn(entry: unsafe extern "C" fn()) -> Result<u64, Errno> {
    let top = STACK.0.as_ptr_range().end as u64;
    // SAFETY: both entries end in a syscall loop or THREAD_EXIT, never
    // return, and never touch the stack (so sharing it is harmless).
    unsafe { rt::sys::thread_spawn(entry as *const () as u64, top, 0) }
}

/// Spawn sleepers until refused: (threads the process has then, the error).
fn spawn_until_refused(mut threads: usize) -> (usize, Errno) {
    loop {
        match spawn(limit_sleeper) {
            Ok(_) => threads += 1,
            Err(e) => return (threads, e),
        }
        // Far past any limit: the kernel never refused.
        check!(
            threads < 100 * MAX_THREADS,
            "{threads} threads and never refused"
        );
    }
}

fn main(args: Args) -> i32 {
    let expect = args.raw();
    // Main, plus one thread that exits at once and waits to be joined.
    let quitter = spawn(limit_quitter);
    let (threads, err) = match quitter {
        Ok(_) => spawn_until_refused(2),
        Err(e) => (1, e),
    };
    println!("{threads} threads, then THREAD_SPAWN: {err}");
    match expect {
        "EAGAIN" => {
            check!(err == Errno::EAGAIN, "refused with {err}, not EAGAIN");
            check!(
                threads == MAX_THREADS,
                "refused at {threads}, not {MAX_THREADS}"
            );
            // The limit holds: asking again changes nothing.
            check!(spawn(limit_sleeper) == Err(Errno::EAGAIN), "second try");
            // An exited thread counts until joined; joining makes one slot.
            let tid = quitter.unwrap_or(0);
            check!(
                rt::sys::thread_join(tid) == Ok(QUIT_CODE),
                "join of the quitter"
            );
            check!(spawn(limit_sleeper).is_ok(), "no room after a join");
            check!(
                spawn(limit_sleeper) == Err(Errno::EAGAIN),
                "the limit after a join"
            );
        }
        "ENOMEM" => {
            check!(err == Errno::ENOMEM, "refused with {err}, not ENOMEM");
            check!(threads < MAX_THREADS, "ENOMEM at the limit, not before it");
        }
        other => rt::fail!("usage: thread_spawn_until_refused EAGAIN|ENOMEM, not {other:?}"),
    }
    0
}
