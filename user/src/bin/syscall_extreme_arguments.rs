//! Test: every numeric argument of every syscall at its extremes (0, 1,
//! `u64::MAX`, `i64::MAX`/`MIN`, `u32::MAX`, and just past each limit:
//! lengths, CPU numbers, thread ids, pointers at the ends of user space, in
//! the kernel half, non-canonical, unaligned) gets the result that
//! `docs/syscalls.md` documents, and the process goes on. Arguments a call
//! does not take are passed as `u64::MAX` (they must be ignored).
//!
//! Run with arguments (`x y z`) so GET_ARGS has bytes to copy. With
//! `exit CODE`, it calls EXIT(CODE) at once: the kernel test checks the
//! process's exit code (the low 32 bits).
#![no_std]
#![no_main]

extern crate alloc;

use abi::errno::decode;
use abi::mman::{
    MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE, USER_END,
    USER_START,
};
use abi::thread::ARGS_MAX;
use abi::{Errno, nr};
use rt::args::parse_u64;
use rt::syscall::{syscall1, syscall4};
use rt::{Args, check, println};

rt::main!(main);

/// The result a call must give.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    Is(u64),
    /// Any success (the value depends on the machine).
    Any,
    Fails(Errno),
}
use Want::{Any, Fails, Is};

const X: u64 = u64::MAX; // an unused argument
const KERNEL: u64 = 0xffff_8000_0000_0000;
const NON_CANONICAL: u64 = 0x8000_0000_0000;
const MAP_ANON: u64 = MAP_PRIVATE | MAP_ANONYMOUS;
const RW: u64 = PROT_READ | PROT_WRITE;

fn call(n: u64, a: [u64; 4]) -> Result<u64, Errno> {
    // SAFETY: every call below is refused, or acts only on memory this
    // program set aside for it (see `main`), or changes nothing Rust uses.
    decode(unsafe { syscall4(n, a[0], a[1], a[2], a[3]) })
}

fn matches(got: Result<u64, Errno>, want: Want) -> bool {
    match (got, want) {
        (Ok(v), Is(w)) => v == w,
        (Ok(_), Any) => true,
        (Err(e), Fails(w)) => e == w,
        _ => false,
    }
}

/// Memory the calls may use.
struct Mem {
    /// Two read-write pages, then a `PROT_NONE` page.
    rw: u64,
    /// The last byte of the read-write pages.
    rw_last: u64,
    /// A read-only page.
    ro: u64,
    /// A page-aligned address with nothing mapped (checked by a case).
    unmapped: u64,
}

/// Above the main stack and below the guard page at the top of user space:
/// nothing maps there unless asked to.
const UNMAPPED: u64 = 0x7fff_8000_0000;

fn setup() -> Mem {
    let rw = rt::mmap_anon(0, 3 * PAGE_SIZE, RW).expect("mmap") as u64;
    // A PROT_NONE page rather than a hole: later mappings (the heap's)
    // could land in a hole.
    // SAFETY: the third page of our fresh mapping, unused.
    unsafe { rt::mprotect((rw + 2 * PAGE_SIZE) as *mut u8, PAGE_SIZE, PROT_NONE) }
        .expect("mprotect");
    // SAFETY: inside our mapping: what the one-byte WRITEs print.
    unsafe {
        (rw as *mut u8).write_volatile(b'.');
        ((rw + 2 * PAGE_SIZE - 1) as *mut u8).write_volatile(b'.');
    }
    let ro = rt::mmap_anon(0, PAGE_SIZE, PROT_READ).expect("mmap") as u64;
    Mem {
        rw,
        rw_last: rw + 2 * PAGE_SIZE - 1,
        ro,
        unmapped: UNMAPPED,
    }
}

#[rustfmt::skip]
fn cases(m: &Mem, cpus: u64) -> alloc::vec::Vec<(&'static str, u64, [u64; 4], Want)> {
    let code_addr = main as *const () as u64;
    let fc = core::mem::size_of::<abi::FaultCounters>() as u64;
    let args_len = ARGS_MAX as u64;
    alloc::vec![
        // THREAD_SPAWN(entry, stack_top, arg): nothing may start.
        ("spawn entry 0", nr::THREAD_SPAWN, [0, m.unmapped, 0, X], Fails(Errno::EINVAL)),
        ("spawn entry 1", nr::THREAD_SPAWN, [1, m.unmapped, 0, X], Fails(Errno::EINVAL)),
        ("spawn entry below user space", nr::THREAD_SPAWN, [USER_START - 1, m.unmapped, 0, X], Fails(Errno::EINVAL)),
        ("spawn entry at USER_END", nr::THREAD_SPAWN, [USER_END, m.unmapped, 0, X], Fails(Errno::EINVAL)),
        ("spawn entry non-canonical", nr::THREAD_SPAWN, [NON_CANONICAL, m.unmapped, 0, X], Fails(Errno::EINVAL)),
        ("spawn entry kernel", nr::THREAD_SPAWN, [KERNEL, m.unmapped, 0, X], Fails(Errno::EINVAL)),
        ("spawn entry -1", nr::THREAD_SPAWN, [u64::MAX, m.unmapped, 0, X], Fails(Errno::EINVAL)),
        ("spawn stack 0", nr::THREAD_SPAWN, [code_addr, 0, 0, X], Fails(Errno::EINVAL)),
        ("spawn stack 1", nr::THREAD_SPAWN, [code_addr, 1, 0, X], Fails(Errno::EINVAL)),
        ("spawn stack at USER_START", nr::THREAD_SPAWN, [code_addr, USER_START, 0, X], Fails(Errno::EINVAL)),
        ("spawn stack past USER_END", nr::THREAD_SPAWN, [code_addr, USER_END + 16, 0, X], Fails(Errno::EINVAL)),
        ("spawn stack unaligned", nr::THREAD_SPAWN, [code_addr, m.unmapped - 8, 0, X], Fails(Errno::EINVAL)),
        ("spawn stack kernel", nr::THREAD_SPAWN, [code_addr, KERNEL, 0, X], Fails(Errno::EINVAL)),
        ("spawn stack -1", nr::THREAD_SPAWN, [code_addr, u64::MAX, 0, X], Fails(Errno::EINVAL)),
        ("spawn stack 2^63", nr::THREAD_SPAWN, [code_addr, 1 << 63, 0, X], Fails(Errno::EINVAL)),
        // THREAD_JOIN(tid)
        ("join 0", nr::THREAD_JOIN, [0, X, X, X], Fails(Errno::ESRCH)),
        ("join 1 (a kernel task)", nr::THREAD_JOIN, [1, X, X, X], Fails(Errno::ESRCH)),
        ("join u32::MAX", nr::THREAD_JOIN, [u32::MAX as u64, X, X, X], Fails(Errno::ESRCH)),
        ("join i64::MIN", nr::THREAD_JOIN, [1 << 63, X, X, X], Fails(Errno::ESRCH)),
        ("join -1", nr::THREAD_JOIN, [u64::MAX, X, X, X], Fails(Errno::ESRCH)),
        // WRITE(buf, len)
        ("write len 0", nr::WRITE, [m.rw, 0, X, X], Is(0)),
        ("write null len 0", nr::WRITE, [0, 0, X, X], Is(0)),
        ("write -1 len 0", nr::WRITE, [u64::MAX, 0, X, X], Is(0)),
        ("write kernel len 0", nr::WRITE, [KERNEL, 0, X, X], Is(0)),
        ("write len 1", nr::WRITE, [m.rw, 1, X, X], Is(1)),
        ("write unaligned len 1", nr::WRITE, [m.rw_last, 1, X, X], Is(1)),
        ("write len -1", nr::WRITE, [m.rw, u64::MAX, X, X], Fails(Errno::EFAULT)),
        ("write len i64::MAX", nr::WRITE, [m.rw, i64::MAX as u64, X, X], Fails(Errno::EFAULT)),
        ("write len to USER_END + 1", nr::WRITE, [m.rw, USER_END - m.rw + 1, X, X], Fails(Errno::EFAULT)),
        ("write one byte into PROT_NONE", nr::WRITE, [m.rw_last, 2, X, X], Fails(Errno::EFAULT)),
        ("write at USER_END - 1", nr::WRITE, [USER_END - 1, 1, X, X], Fails(Errno::EFAULT)),
        ("write at USER_END", nr::WRITE, [USER_END, 1, X, X], Fails(Errno::EFAULT)),
        ("write below USER_START", nr::WRITE, [USER_START - 1, 1, X, X], Fails(Errno::EFAULT)),
        ("write null", nr::WRITE, [0, 1, X, X], Fails(Errno::EFAULT)),
        ("write kernel", nr::WRITE, [KERNEL, 1, X, X], Fails(Errno::EFAULT)),
        ("write non-canonical", nr::WRITE, [NON_CANONICAL, 1, X, X], Fails(Errno::EFAULT)),
        ("write -1", nr::WRITE, [u64::MAX, 1, X, X], Fails(Errno::EFAULT)),
        // MMAP(addr, len, prot, flags); a success is unmapped again.
        ("mmap len 0", nr::MMAP, [0, 0, RW, MAP_ANON], Fails(Errno::EINVAL)),
        ("mmap len 1", nr::MMAP, [0, 1, RW, MAP_ANON], Any),
        ("mmap len -1", nr::MMAP, [0, u64::MAX, RW, MAP_ANON], Fails(Errno::ENOMEM)),
        ("mmap len rounding past 2^64", nr::MMAP, [0, u64::MAX - PAGE_SIZE + 2, RW, MAP_ANON], Fails(Errno::ENOMEM)),
        ("mmap len all user space + 1", nr::MMAP, [0, USER_END - USER_START + 1, RW, MAP_ANON], Fails(Errno::ENOMEM)),
        ("mmap len 2^63", nr::MMAP, [0, 1 << 63, RW, MAP_ANON], Fails(Errno::ENOMEM)),
        ("mmap prot -1", nr::MMAP, [0, PAGE_SIZE, u64::MAX, MAP_ANON], Fails(Errno::EINVAL)),
        ("mmap prot 8", nr::MMAP, [0, PAGE_SIZE, 8, MAP_ANON], Fails(Errno::EINVAL)),
        ("mmap prot 7", nr::MMAP, [0, PAGE_SIZE, 7, MAP_ANON], Any),
        ("mmap flags 0", nr::MMAP, [0, PAGE_SIZE, RW, 0], Fails(Errno::EINVAL)),
        ("mmap flags -1", nr::MMAP, [0, PAGE_SIZE, RW, u64::MAX], Fails(Errno::EINVAL)),
        ("mmap addr 1", nr::MMAP, [1, PAGE_SIZE, RW, MAP_ANON], Fails(Errno::EINVAL)),
        ("mmap addr -1", nr::MMAP, [u64::MAX, PAGE_SIZE, RW, MAP_ANON], Fails(Errno::EINVAL)),
        ("mmap hint in the kernel half", nr::MMAP, [KERNEL, PAGE_SIZE, RW, MAP_ANON], Any),
        ("mmap hint at the top page", nr::MMAP, [!(PAGE_SIZE - 1), PAGE_SIZE, RW, MAP_ANON], Any),
        ("mmap fixed 0", nr::MMAP, [0, PAGE_SIZE, RW, MAP_ANON | MAP_FIXED], Fails(Errno::EPERM)),
        ("mmap fixed last page", nr::MMAP, [USER_END - PAGE_SIZE, PAGE_SIZE, RW, MAP_ANON | MAP_FIXED], Is(USER_END - PAGE_SIZE)),
        ("mmap fixed last page + 1", nr::MMAP, [USER_END - PAGE_SIZE, PAGE_SIZE + 1, RW, MAP_ANON | MAP_FIXED], Fails(Errno::ENOMEM)),
        ("mmap fixed at USER_END", nr::MMAP, [USER_END, PAGE_SIZE, RW, MAP_ANON | MAP_FIXED], Fails(Errno::ENOMEM)),
        ("mmap fixed non-canonical", nr::MMAP, [NON_CANONICAL, PAGE_SIZE, RW, MAP_ANON | MAP_FIXED], Fails(Errno::ENOMEM)),
        ("mmap fixed kernel", nr::MMAP, [KERNEL, PAGE_SIZE, RW, MAP_ANON | MAP_FIXED], Fails(Errno::ENOMEM)),
        ("mmap fixed top page", nr::MMAP, [!(PAGE_SIZE - 1), PAGE_SIZE, RW, MAP_ANON | MAP_FIXED], Fails(Errno::ENOMEM)),
        // MUNMAP(addr, len)
        ("munmap 0, 0", nr::MUNMAP, [0, 0, X, X], Fails(Errno::EINVAL)),
        ("munmap len 0", nr::MUNMAP, [m.unmapped, 0, X, X], Fails(Errno::EINVAL)),
        ("munmap addr 1", nr::MUNMAP, [1, PAGE_SIZE, X, X], Fails(Errno::EINVAL)),
        ("munmap addr 0", nr::MUNMAP, [0, PAGE_SIZE, X, X], Fails(Errno::EINVAL)),
        ("munmap addr -1", nr::MUNMAP, [u64::MAX, 1, X, X], Fails(Errno::EINVAL)),
        ("munmap len -1", nr::MUNMAP, [m.unmapped, u64::MAX, X, X], Fails(Errno::EINVAL)),
        ("munmap last page (unmapped)", nr::MUNMAP, [USER_END - PAGE_SIZE, PAGE_SIZE, X, X], Is(0)),
        ("munmap last page + 1", nr::MUNMAP, [USER_END - PAGE_SIZE, PAGE_SIZE + 1, X, X], Fails(Errno::EINVAL)),
        ("munmap at USER_END", nr::MUNMAP, [USER_END, PAGE_SIZE, X, X], Fails(Errno::EINVAL)),
        ("munmap non-canonical", nr::MUNMAP, [NON_CANONICAL, PAGE_SIZE, X, X], Fails(Errno::EINVAL)),
        ("munmap kernel", nr::MUNMAP, [KERNEL, PAGE_SIZE, X, X], Fails(Errno::EINVAL)),
        ("munmap unmapped", nr::MUNMAP, [m.unmapped, PAGE_SIZE, X, X], Is(0)),
        // MPROTECT(addr, len, prot)
        ("mprotect prot -1", nr::MPROTECT, [m.rw, PAGE_SIZE, u64::MAX, X], Fails(Errno::EINVAL)),
        ("mprotect prot 8", nr::MPROTECT, [m.rw, PAGE_SIZE, 8, X], Fails(Errno::EINVAL)),
        ("mprotect len 0", nr::MPROTECT, [m.rw, 0, RW, X], Fails(Errno::EINVAL)),
        ("mprotect len -1", nr::MPROTECT, [m.rw, u64::MAX, RW, X], Fails(Errno::EINVAL)),
        ("mprotect addr 1", nr::MPROTECT, [1, PAGE_SIZE, RW, X], Fails(Errno::EINVAL)),
        ("mprotect unaligned", nr::MPROTECT, [m.rw + 1, PAGE_SIZE, RW, X], Fails(Errno::EINVAL)),
        ("mprotect at USER_END", nr::MPROTECT, [USER_END, PAGE_SIZE, RW, X], Fails(Errno::EINVAL)),
        ("mprotect kernel", nr::MPROTECT, [KERNEL, PAGE_SIZE, RW, X], Fails(Errno::EINVAL)),
        ("mprotect unmapped", nr::MPROTECT, [m.unmapped, PAGE_SIZE, RW, X], Fails(Errno::ENOMEM)),
        ("mprotect len 1", nr::MPROTECT, [m.rw, 1, RW, X], Is(0)),
        // PIN(cpu); UNPIN last.
        ("pin 0", nr::PIN, [0, X, X, X], Is(0)),
        ("pin last CPU", nr::PIN, [cpus - 1, X, X, X], Is(0)),
        ("pin CPU_COUNT", nr::PIN, [cpus, X, X, X], Fails(Errno::EINVAL)),
        ("pin 64", nr::PIN, [64, X, X, X], Fails(Errno::EINVAL)),
        ("pin 2^32", nr::PIN, [1 << 32, X, X, X], Fails(Errno::EINVAL)),
        ("pin i64::MAX", nr::PIN, [i64::MAX as u64, X, X, X], Fails(Errno::EINVAL)),
        ("pin -2", nr::PIN, [u64::MAX - 1, X, X, X], Fails(Errno::EINVAL)),
        ("pin -1 (unpin)", nr::PIN, [u64::MAX, X, X, X], Is(0)),
        // No arguments: all four ignored.
        ("yield", nr::YIELD, [X, X, X, X], Is(0)),
        ("cpu_count", nr::CPU_COUNT, [X, X, X, X], Is(cpus)),
        ("cpu_id", nr::CPU_ID, [X, X, X, X], Any),
        ("clock_ns", nr::CLOCK_NS, [X, X, X, X], Any),
        // NANOSLEEP(ns): the endless ones are `nanosleep_extreme_durations`.
        ("nanosleep 0", nr::NANOSLEEP, [0, X, X, X], Is(0)),
        ("nanosleep 1", nr::NANOSLEEP, [1, X, X, X], Is(0)),
        // FAULT_COUNTERS(buf, len)
        ("counters len 0", nr::FAULT_COUNTERS, [m.rw, 0, X, X], Is(0)),
        ("counters null len 0", nr::FAULT_COUNTERS, [0, 0, X, X], Is(0)),
        ("counters -1 len 0", nr::FAULT_COUNTERS, [u64::MAX, 0, X, X], Is(0)),
        ("counters len 1", nr::FAULT_COUNTERS, [m.rw, 1, X, X], Is(1)),
        ("counters unaligned", nr::FAULT_COUNTERS, [m.rw + 1, 1, X, X], Is(1)),
        ("counters len CPU_COUNT", nr::FAULT_COUNTERS, [m.rw, cpus, X, X], Is(cpus)),
        ("counters len to USER_END", nr::FAULT_COUNTERS, [m.rw, (USER_END - m.rw) / fc, X, X], Is(cpus)),
        ("counters len past USER_END", nr::FAULT_COUNTERS, [m.rw, (USER_END - m.rw) / fc + 1, X, X], Fails(Errno::EFAULT)),
        ("counters len -1", nr::FAULT_COUNTERS, [m.rw, u64::MAX, X, X], Fails(Errno::EFAULT)),
        ("counters len * 48 wrapping to 32", nr::FAULT_COUNTERS, [m.rw, u64::MAX / fc + 1, X, X], Fails(Errno::EFAULT)),
        ("counters read-only", nr::FAULT_COUNTERS, [m.ro, 1, X, X], Fails(Errno::EFAULT)),
        ("counters straddling into PROT_NONE", nr::FAULT_COUNTERS, [m.rw_last - fc + 2, 1, X, X], Fails(Errno::EFAULT)),
        ("counters null", nr::FAULT_COUNTERS, [0, 1, X, X], Fails(Errno::EFAULT)),
        ("counters kernel", nr::FAULT_COUNTERS, [KERNEL, 1, X, X], Fails(Errno::EFAULT)),
        ("counters non-canonical", nr::FAULT_COUNTERS, [NON_CANONICAL, 1, X, X], Fails(Errno::EFAULT)),
        // SET_FAULT_HANDLER(entry, stack_top), FAULT_RETURN(rip): the
        // refusals (a handler is `user_fault_handler_resumes`'s business).
        ("set_fault_handler 0 (remove)", nr::SET_FAULT_HANDLER, [0, X, X, X], Is(0)),
        ("set_fault_handler -1", nr::SET_FAULT_HANDLER, [u64::MAX, m.unmapped, X, X], Fails(Errno::EINVAL)),
        ("set_fault_handler kernel", nr::SET_FAULT_HANDLER, [KERNEL, m.unmapped, X, X], Fails(Errno::EINVAL)),
        ("set_fault_handler stack 0", nr::SET_FAULT_HANDLER, [code_addr, 0, X, X], Fails(Errno::EINVAL)),
        ("fault_return 0 outside a handler", nr::FAULT_RETURN, [0, X, X, X], Fails(Errno::EINVAL)),
        ("fault_return -1 outside a handler", nr::FAULT_RETURN, [u64::MAX, X, X, X], Fails(Errno::EINVAL)),
        // GET_ARGS(buf, len), with arguments "x y z" (5 bytes).
        ("get_args len 0", nr::GET_ARGS, [m.rw, 0, X, X], Is(0)),
        ("get_args null len 0", nr::GET_ARGS, [0, 0, X, X], Is(0)),
        ("get_args -1 len 0", nr::GET_ARGS, [u64::MAX, 0, X, X], Is(0)),
        ("get_args len 1", nr::GET_ARGS, [m.rw, 1, X, X], Is(1)),
        ("get_args unaligned", nr::GET_ARGS, [m.rw_last - 1, 2, X, X], Is(2)),
        ("get_args len ARGS_MAX + 1", nr::GET_ARGS, [m.rw, args_len + 1, X, X], Is(5)),
        ("get_args len to USER_END", nr::GET_ARGS, [m.rw, USER_END - m.rw, X, X], Is(5)),
        ("get_args len past USER_END", nr::GET_ARGS, [m.rw, USER_END - m.rw + 1, X, X], Fails(Errno::EFAULT)),
        ("get_args len -1", nr::GET_ARGS, [m.rw, u64::MAX, X, X], Fails(Errno::EFAULT)),
        ("get_args straddling into PROT_NONE", nr::GET_ARGS, [m.rw_last, 2, X, X], Fails(Errno::EFAULT)),
        ("get_args read-only", nr::GET_ARGS, [m.ro, 1, X, X], Fails(Errno::EFAULT)),
        ("get_args at USER_END - 1", nr::GET_ARGS, [USER_END - 1, 1, X, X], Fails(Errno::EFAULT)),
        ("get_args null", nr::GET_ARGS, [0, 1, X, X], Fails(Errno::EFAULT)),
        ("get_args kernel", nr::GET_ARGS, [KERNEL, 1, X, X], Fails(Errno::EFAULT)),
        ("get_args non-canonical", nr::GET_ARGS, [NON_CANONICAL, 1, X, X], Fails(Errno::EFAULT)),
        // SET_PER_VMA(on): `main` restores the setting afterwards.
        ("set_per_vma 1", nr::SET_PER_VMA, [1, X, X, X], Any),
        ("set_per_vma 0", nr::SET_PER_VMA, [0, X, X, X], Is(1)),
        ("set_per_vma 1 again", nr::SET_PER_VMA, [1, X, X, X], Is(0)),
        ("set_per_vma 2", nr::SET_PER_VMA, [2, X, X, X], Fails(Errno::EINVAL)),
        ("set_per_vma 2^32 + 1", nr::SET_PER_VMA, [(1 << 32) + 1, X, X, X], Fails(Errno::EINVAL)),
        ("set_per_vma -1", nr::SET_PER_VMA, [u64::MAX, X, X, X], Fails(Errno::EINVAL)),
        // Numbers that are no syscall (high bits are not dropped).
        ("syscall past the last", nr::ALL.len() as u64, [X, X, X, X], Fails(Errno::ENOSYS)),
        ("syscall u32::MAX", u32::MAX as u64, [X, X, X, X], Fails(Errno::ENOSYS)),
        ("syscall 2^32 (EXIT + 2^32)", 1 << 32, [0, X, X, X], Fails(Errno::ENOSYS)),
        ("syscall 2^63", 1 << 63, [X, X, X, X], Fails(Errno::ENOSYS)),
        ("syscall -1", u64::MAX, [X, X, X, X], Fails(Errno::ENOSYS)),
    ]
}

/// THREAD_EXIT keeps the low 32 bits of its code, which THREAD_JOIN returns
/// zero-extended.
fn thread_exit_codes() {
    for (code, want) in [
        (u64::MAX, -1),
        ((1 << 32) + 5, 5),
        (1 << 63, 0),
        (0x8000_0000, i32::MIN),
    ] {
        let t = rt::spawn(move || {
            // SAFETY: THREAD_EXIT takes no pointer and does not return.
            unsafe { syscall1(nr::THREAD_EXIT, code) };
        });
        let got = rt::thread_join(t.tid());
        check!(got == Ok(want), "THREAD_EXIT({code:#x}) joined as {got:?}");
        // The handle's join would find the thread reaped already.
        core::mem::forget(t);
    }
    println!("ok: THREAD_EXIT keeps the low 32 bits");
}

fn main(args: Args) -> i32 {
    let mut words = args.iter();
    if words.next() == Some("exit") {
        let code = words.next().and_then(parse_u64).expect("exit CODE");
        // SAFETY: EXIT takes no pointer and does not return.
        unsafe { syscall1(nr::EXIT, code) };
        rt::fail!("EXIT returned");
    }
    let cpus = rt::cpu_count() as u64;
    let per_vma = rt::set_per_vma(true).expect("set_per_vma");
    let m = setup();
    let all = cases(&m, cpus);
    for (what, n, a, want) in &all {
        let got = call(*n, *a);
        check!(
            matches(got, *want),
            "{what}: syscall {n:#x}{a:x?} returned {got:?}, documented {want:?}"
        );
        if *n == nr::MMAP
            && let Ok(addr) = got
        {
            // SAFETY: the mapping the call just made.
            unsafe { rt::munmap(addr as *mut u8, a[1]) }.expect("munmap");
        }
    }
    rt::set_per_vma(per_vma).expect("set_per_vma");
    println!();
    println!(
        "ok: {} extreme arguments got their documented results",
        all.len()
    );
    thread_exit_codes();
    0
}
