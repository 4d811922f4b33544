//! One typed wrapper per syscall. Errors come back as [`Errno`];
//! `docs/syscalls.md` says which call returns which.
//!
//! Calls that can take memory away from Rust code (`munmap`, `mprotect`, a
//! fixed `mmap`) or hand the kernel code addresses are `unsafe`; the rest are
//! safe.

use crate::syscall::{syscall0, syscall1, syscall2, syscall3, syscall4};
use abi::errno::decode;
use abi::mman::{MAP_ANONYMOUS, MAP_PRIVATE};
use abi::{Errno, FaultCounters, nr};

/// Ends the whole process with `code`.
pub fn exit(code: i32) -> ! {
    // SAFETY: EXIT takes no pointer and does not return.
    unsafe { syscall1(nr::EXIT, code as u32 as u64) };
    unreachable!("EXIT returned")
}

/// Ends the calling thread with `code`.
pub fn thread_exit(code: i32) -> ! {
    // SAFETY: THREAD_EXIT takes no pointer and does not return.
    unsafe { syscall1(nr::THREAD_EXIT, code as u32 as u64) };
    unreachable!("THREAD_EXIT returned")
}

/// Starts a thread at `entry` with `rsp = stack_top` and `rdi = arg`.
///
/// # Safety
/// `entry` must be code that never returns and `stack_top` the top of memory
/// nothing else uses while the thread runs. [`crate::thread::spawn`] does this.
pub unsafe fn thread_spawn(entry: u64, stack_top: u64, arg: u64) -> Result<u64, Errno> {
    // SAFETY: the caller upholds the contract above.
    decode(unsafe { syscall3(nr::THREAD_SPAWN, entry, stack_top, arg) })
}

/// Waits for thread `tid` to exit, reaps it and returns its exit code.
/// `ESRCH`: no thread `tid` in this process, or it was joined already;
/// `EBUSY`: another thread is joining it; `EINVAL`: `tid` is the caller.
pub fn thread_join(tid: u64) -> Result<i32, Errno> {
    // SAFETY: THREAD_JOIN takes no pointer.
    decode(unsafe { syscall1(nr::THREAD_JOIN, tid) }).map(abi::thread::exit_code_from_ret)
}

/// Writes `buf` to the console; returns how many bytes were written.
pub fn write(buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is readable for `buf.len()` bytes.
    decode(unsafe { syscall2(nr::WRITE, buf.as_ptr() as u64, buf.len() as u64) })
        .map(|n| n as usize)
}

/// The raw `MMAP`.
///
/// # Safety
/// With `MAP_FIXED` it replaces whatever was mapped at `addr`: nothing may
/// still use that memory.
pub unsafe fn mmap(addr: u64, len: u64, prot: u64, flags: u64) -> Result<*mut u8, Errno> {
    // SAFETY: the caller vouches for a fixed placement; otherwise the kernel
    // only hands out memory nobody uses.
    decode(unsafe { syscall4(nr::MMAP, addr, len, prot, flags) }).map(|a| a as *mut u8)
}

/// Maps `len` bytes of fresh zeroed memory, trying `hint` first (0: no hint).
pub fn mmap_anon(hint: u64, len: u64, prot: u64) -> Result<*mut u8, Errno> {
    // SAFETY: no MAP_FIXED, so no existing mapping is replaced.
    unsafe { mmap(hint, len, prot, MAP_PRIVATE | MAP_ANONYMOUS) }
}

/// Unmaps `[addr, addr + len)`.
///
/// # Safety
/// Nothing may use that memory afterwards.
pub unsafe fn munmap(addr: *mut u8, len: u64) -> Result<(), Errno> {
    // SAFETY: the caller gives the memory up.
    decode(unsafe { syscall2(nr::MUNMAP, addr as u64, len) }).map(drop)
}

/// Changes the rights of `[addr, addr + len)`.
///
/// # Safety
/// No Rust reference may rely on rights being removed.
pub unsafe fn mprotect(addr: *mut u8, len: u64, prot: u64) -> Result<(), Errno> {
    // SAFETY: the caller accounts for the new rights.
    decode(unsafe { syscall3(nr::MPROTECT, addr as u64, len, prot) }).map(drop)
}

/// Lets another thread run on this CPU.
pub fn yield_now() {
    // SAFETY: YIELD takes no argument.
    unsafe { syscall0(nr::YIELD) };
}

/// Runs the calling thread only on `cpu` from now on.
pub fn pin(cpu: usize) -> Result<(), Errno> {
    // SAFETY: PIN takes no pointer.
    decode(unsafe { syscall1(nr::PIN, cpu as u64) }).map(drop)
}

/// Lets the calling thread run on any CPU again.
pub fn unpin() {
    // SAFETY: PIN takes no pointer.
    let r = decode(unsafe { syscall1(nr::PIN, nr::UNPIN) });
    debug_assert!(r.is_ok());
}

/// The CPU the caller runs on (exact only while pinned).
pub fn cpu_id() -> usize {
    // SAFETY: CPU_ID takes no argument.
    unsafe { syscall0(nr::CPU_ID) as usize }
}

/// The number of CPUs online.
pub fn cpu_count() -> usize {
    // SAFETY: CPU_COUNT takes no argument.
    unsafe { syscall0(nr::CPU_COUNT) as usize }
}

/// Monotonic nanoseconds since boot.
pub fn clock_ns() -> u64 {
    // SAFETY: CLOCK_NS takes no argument.
    unsafe { syscall0(nr::CLOCK_NS) }
}

/// Sleeps at least `ns` nanoseconds (`u64::MAX`: until the process ends).
pub fn sleep_ns(ns: u64) {
    // SAFETY: NANOSLEEP takes no pointer.
    unsafe { syscall1(nr::NANOSLEEP, ns) };
}

/// Copies the per-CPU fault counters into `out`; returns how many CPUs' worth.
pub fn fault_counters(out: &mut [FaultCounters]) -> Result<usize, Errno> {
    // SAFETY: `out` is writable for `out.len()` structs.
    decode(unsafe {
        syscall2(
            nr::FAULT_COUNTERS,
            out.as_mut_ptr() as u64,
            out.len() as u64,
        )
    })
    .map(|n| n as usize)
}

/// Registers the calling thread's fault handler (`entry = 0` removes it).
///
/// # Safety
/// `entry` must follow the handler contract of [`abi::fault`] and
/// `stack_top` be the top of memory reserved for it.
pub unsafe fn set_fault_handler(entry: u64, stack_top: u64) -> Result<(), Errno> {
    // SAFETY: the caller upholds the contract above.
    decode(unsafe { syscall2(nr::SET_FAULT_HANDLER, entry, stack_top) }).map(drop)
}

/// Leaves the fault handler; returns only if the kernel refused.
///
/// # Safety
/// Only from a fault handler; `resume_rip` (if not 0) must be code that is
/// correct to run with the faulting context's registers.
pub unsafe fn fault_return(resume_rip: u64) -> Errno {
    // SAFETY: the caller upholds the contract above.
    match decode(unsafe { syscall1(nr::FAULT_RETURN, resume_rip) }) {
        Err(e) => e,
        Ok(_) => Errno::EINVAL,
    }
}

/// Copies the program's argument string into `buf`; returns its length.
pub fn get_args(buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for `buf.len()` bytes.
    decode(unsafe { syscall2(nr::GET_ARGS, buf.as_mut_ptr() as u64, buf.len() as u64) })
        .map(|n| n as usize)
}

/// Switches the per-VMA fault path on or off; returns the old setting.
pub fn set_per_vma(on: bool) -> Result<bool, Errno> {
    // SAFETY: SET_PER_VMA takes no pointer.
    decode(unsafe { syscall1(nr::SET_PER_VMA, on as u64) }).map(|old| old != 0)
}

/// The sum of all CPUs' fault counters, and the per-CPU values in `per_cpu`.
pub fn fault_totals(per_cpu: &mut [FaultCounters]) -> FaultCounters {
    let n = fault_counters(per_cpu).unwrap_or(0);
    per_cpu[..n]
        .iter()
        .fold(FaultCounters::default(), |acc, c| acc.sum(c))
}
