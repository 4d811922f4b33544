//! Syscall numbers (the value in `rax`).
//!
//! Numbers are dense from 0 so the kernel can dispatch with a table or a
//! `match`; an unknown number returns [`crate::Errno::ENOSYS`].

/// `EXIT(code)`: end the whole process (every thread) with `code`. Never returns.
pub const EXIT: u64 = 0;
/// `THREAD_EXIT(code)`: end the calling thread. Never returns. The last thread
/// to exit ends the process with its code.
pub const THREAD_EXIT: u64 = 1;
/// `THREAD_SPAWN(entry, stack_top, arg) -> tid`: start `entry(arg)` in a new
/// thread of this process (see [`crate::thread`] for the entry state).
pub const THREAD_SPAWN: u64 = 2;
/// `THREAD_JOIN(tid) -> code`: wait for a thread of this process to exit and
/// reap it (its kernel stack and task are freed; `tid` is gone). Errors:
/// `EINVAL` for the caller itself, `ESRCH` for no thread of this process (or
/// one joined already), `EBUSY` while another thread is joining it.
pub const THREAD_JOIN: u64 = 3;
/// `WRITE(buf, len) -> len`: write bytes to the console.
pub const WRITE: u64 = 4;
/// `MMAP(addr, len, prot, flags) -> addr`: anonymous private memory only.
pub const MMAP: u64 = 5;
/// `MUNMAP(addr, len)`.
pub const MUNMAP: u64 = 6;
/// `MPROTECT(addr, len, prot)`.
pub const MPROTECT: u64 = 7;
/// `YIELD`: let another runnable thread on this CPU run.
pub const YIELD: u64 = 8;
/// `PIN(cpu)`: run the calling thread only on `cpu`; [`UNPIN`] undoes it.
pub const PIN: u64 = 9;
/// `CPU_ID -> cpu`: the CPU the caller runs on (stale as soon as it returns,
/// unless the thread is pinned).
pub const CPU_ID: u64 = 10;
/// `CPU_COUNT -> n`: CPUs online.
pub const CPU_COUNT: u64 = 11;
/// `CLOCK_NS -> ns`: monotonic nanoseconds since boot, calibrated against a
/// hardware reference timer.
pub const CLOCK_NS: u64 = 12;
/// `NANOSLEEP(ns)`: sleep at least `ns` nanoseconds. Every `ns` is valid: a
/// deadline past the clock's range saturates (the sleep lasts until the
/// process ends).
pub const NANOSLEEP: u64 = 13;
/// `FAULT_COUNTERS(buf, len) -> n`: copy `n = min(len, CPUs)`
/// [`crate::FaultCounters`], one per CPU, to `buf`.
pub const FAULT_COUNTERS: u64 = 14;
/// `SET_FAULT_HANDLER(entry, stack_top)`: register the calling thread's fault
/// handler; `entry = 0` removes it.
pub const SET_FAULT_HANDLER: u64 = 15;
/// `FAULT_RETURN(resume_rip)`: leave the fault handler.
pub const FAULT_RETURN: u64 = 16;
/// `GET_ARGS(buf, len) -> n`: copy the program's argument string.
pub const GET_ARGS: u64 = 17;
/// `SET_PER_VMA(on) -> old`: switch the per-VMA fault path on (1) or off (0).
pub const SET_PER_VMA: u64 = 18;

/// The `PIN` argument that removes a pin.
pub const UNPIN: u64 = u64::MAX;

/// Every syscall with its name, in number order: for dispatch tables, traces
/// and the tests below.
pub const ALL: [(u64, &str); 19] = [
    (EXIT, "exit"),
    (THREAD_EXIT, "thread_exit"),
    (THREAD_SPAWN, "thread_spawn"),
    (THREAD_JOIN, "thread_join"),
    (WRITE, "write"),
    (MMAP, "mmap"),
    (MUNMAP, "munmap"),
    (MPROTECT, "mprotect"),
    (YIELD, "yield"),
    (PIN, "pin"),
    (CPU_ID, "cpu_id"),
    (CPU_COUNT, "cpu_count"),
    (CLOCK_NS, "clock_ns"),
    (NANOSLEEP, "nanosleep"),
    (FAULT_COUNTERS, "fault_counters"),
    (SET_FAULT_HANDLER, "set_fault_handler"),
    (FAULT_RETURN, "fault_return"),
    (GET_ARGS, "get_args"),
    (SET_PER_VMA, "set_per_vma"),
];

/// The name of syscall `n`, if there is one.
pub fn name(n: u64) -> Option<&'static str> {
    ALL.get(usize::try_from(n).ok()?).map(|&(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_dense_and_in_order() {
        for (i, &(n, _)) in ALL.iter().enumerate() {
            assert_eq!(n, i as u64, "syscall {} out of place", ALL[i].1);
        }
    }

    #[test]
    fn names() {
        assert_eq!(name(MMAP), Some("mmap"));
        assert_eq!(name(SET_PER_VMA), Some("set_per_vma"));
        assert_eq!(name(ALL.len() as u64), None);
        assert_eq!(name(u64::MAX), None);
    }
}
