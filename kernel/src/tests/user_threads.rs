//! User threads at their ends: NANOSLEEP and every other syscall at extreme
//! arguments, a process ended while its threads sleep or wait, THREAD_JOIN
//! reaping, and its errors. Each process runs under a timeout: one that
//! does not end is a failure with a name, not a hang.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;

use crate::memory::{frame, heap, paging};
use crate::{kassert, kassert_eq, ktest, rcu, sched, time, user};

/// Long enough for any of these programs under TCG on a loaded host; a
/// process still alive after this is stuck.
const TIMEOUT_NS: u64 = 30_000_000_000;

/// Run `name` to its end; its exit code, or an error if it did not end in
/// `timeout_ns` (then it is killed, and left behind if even that fails).
fn run_bounded(name: &str, args: &str, timeout_ns: u64) -> Result<i32, String> {
    let p = user::spawn(name, args).map_err(|e| format!("cannot run {name}: {e}"))?;
    if let Some(code) = user::wait_timeout(&p, timeout_ns) {
        user::reap(&p);
        expect_freed(p)?;
        return Ok(code);
    }
    user::kill_process(&p, -1);
    let ended = user::wait_timeout(&p, timeout_ns).is_some();
    if ended {
        user::reap(&p);
    }
    Err(format!(
        "{name} {args}: still running after {} s{}",
        timeout_ns / 1_000_000_000,
        if ended {
            "; it ended when the kernel killed it"
        } else {
            "; not even a kill ended it (left behind)"
        }
    ))
}

/// Once ended and reaped, nothing may hold the process but us: its last
/// threads' tasks let go of it when their CPUs have switched away from them
/// (a bounded wait). A reference kept elsewhere leaks the process.
fn expect_freed(p: Arc<user::Process>) -> Result<(), String> {
    for _ in 0..200 {
        if Arc::strong_count(&p) == 1 {
            return Ok(());
        }
        sched::sleep_ns(10_000_000);
    }
    Err(format!(
        "process '{}' still has {} other references after it ended",
        p.name,
        Arc::strong_count(&p) - 1
    ))
}

/// Free frames plus those the kernel's own growing structures (heap, kernel
/// page tables) took: constant unless something leaks.
pub(super) fn free_frames() -> usize {
    frame::free_count() + heap::mapped_frames() + paging::kernel_table_frames()
}

/// Wait (bounded) until the free frames are back to `before`, then check.
/// An exited thread's kernel stack is freed only once its CPU has switched
/// away from it, and RCU frees page tables after a grace period.
pub(super) fn expect_frames_back(before: usize, what: &str) -> crate::ktest::TestResult {
    for _ in 0..200 {
        rcu::rcu_barrier();
        if free_frames() == before {
            return Ok(());
        }
        sched::sleep_ns(10_000_000);
    }
    kassert_eq!(
        free_frames(),
        before,
        "free frames (plus kernel heap/table frames) before and after {}",
        what
    );
    Ok(())
}

ktest!(
    fn nanosleep_extreme_durations() {
        let code = run_bounded("nanosleep_extreme_durations", "", TIMEOUT_NS)?;
        kassert_eq!(code, 0, "exit code of nanosleep_extreme_durations");
        let code = run_bounded("syscall_extreme_arguments", "x y z", TIMEOUT_NS)?;
        kassert_eq!(code, 0, "exit code of syscall_extreme_arguments");
        // EXIT keeps the low 32 bits of its argument.
        for (arg, want) in [
            ("0xffffffffffffffff", -1),
            ("0x100000003", 3),
            ("0x80000000", i32::MIN),
            ("0x8000000000000000", 0),
            ("1", 1),
        ] {
            let code = run_bounded(
                "syscall_extreme_arguments",
                &format!("exit {arg}"),
                TIMEOUT_NS,
            )?;
            kassert_eq!(code, want, "exit code after EXIT({})", arg);
        }
        Ok(())
    }
);

ktest!(
    fn exit_with_blocked_threads_returns_all_frames() {
        // Once to warm caches (VMA cache, heap), then measure a second run.
        let code = run_bounded("exit_with_blocked_threads", "", TIMEOUT_NS)?;
        kassert_eq!(code, 0, "exit code of the first run");
        rcu::rcu_barrier();
        let before = free_frames();
        let code = run_bounded("exit_with_blocked_threads", "", TIMEOUT_NS)?;
        kassert_eq!(code, 0, "exit code of the second run");
        expect_frames_back(before, "a process exiting with threads blocked")
    }
);

/// What `join_reaps_thread` watches while the program runs.
#[derive(Default)]
struct Peak {
    threads: usize,
    frames: usize,
    heap: usize,
}

/// Run `join_reaps_thread` with `args`, sampling its thread list, the frames
/// in use and the kernel heap in use (both above `base`) until it ends.
fn watch_join_cycles(args: &str, base: (usize, usize)) -> Result<Peak, String> {
    let p = user::spawn("join_reaps_thread", args).map_err(|e| format!("cannot run: {e}"))?;
    let deadline = time::uptime_ns() + TIMEOUT_NS * 4;
    let mut peak = Peak::default();
    let code = loop {
        peak.threads = peak.threads.max(user::thread_count(&p));
        peak.frames = peak.frames.max(base.0.saturating_sub(free_frames()));
        peak.heap = peak.heap.max(heap::used().saturating_sub(base.1));
        if let Some(code) = user::wait_timeout(&p, 2_000_000) {
            break code;
        }
        if time::uptime_ns() > deadline {
            user::kill_process(&p, -1);
            return Err(format!(
                "join_reaps_thread {args}: still running after {} s",
                TIMEOUT_NS * 4 / 1_000_000_000
            ));
        }
    };
    user::reap(&p);
    expect_freed(p)?;
    kassert_eq!(code, 0, "exit code of join_reaps_thread {}", args);
    Ok(peak)
}

/// The program's own memory (image, stacks, heap, page tables) and a few
/// threads in flight; far below the 16 frames per cycle that keeping every
/// joined thread's kernel stack would cost.
const PEAK_FRAMES_MAX: usize = 512;
/// The kernel heap at the peak: a few tasks, the VMA cache and what waits
/// for a grace period. That backlog grows with how late grace periods are
/// (1.4 MiB was seen at SMP=2 on a loaded host), so the bound is set by the
/// bug it is for: keeping every joined task would add over a kilobyte per
/// cycle, over 10 MiB in all.
const PEAK_HEAP_MAX: usize = 4 << 20;
/// The kernel heap after the process: caches (kernel stack slots, VMAs)
/// that settle after the warm-up; a leak of even 8 bytes per thread would
/// show.
const AFTER_HEAP_MAX: usize = 128 << 10;

ktest!(
    fn join_reaps_thread() {
        // Warm up (VMA cache, heap, kernel stack slots).
        watch_join_cycles("-n 1000", (free_frames(), heap::used()))?;
        rcu::rcu_barrier();
        let base = (free_frames(), heap::used());
        let peak = watch_join_cycles("", base)?;
        rcu::rcu_barrier();
        let heap_after = heap::used().saturating_sub(base.1);
        crate::println_raw!(
            "# 10000 cycles: at most {} threads listed; {} frames and {} KiB of kernel heap in use above the start at the peak, {} KiB of heap after",
            peak.threads,
            peak.frames,
            peak.heap >> 10,
            heap_after >> 10
        );
        // Spawned one at a time: `main` and the thread being joined.
        kassert!(
            peak.threads <= 2,
            "{} threads listed at once: joined threads were not reaped",
            peak.threads
        );
        kassert!(
            peak.frames <= PEAK_FRAMES_MAX,
            "{} frames in use at the peak",
            peak.frames
        );
        kassert!(
            peak.heap <= PEAK_HEAP_MAX,
            "{} bytes of kernel heap in use at the peak",
            peak.heap
        );
        kassert!(
            heap_after <= AFTER_HEAP_MAX,
            "{} bytes of kernel heap still in use after the process",
            heap_after
        );
        expect_frames_back(base.0, "10,000 spawn/join cycles")
    }
);

ktest!(
    fn join_twice_and_two_joiners() {
        let code = run_bounded("join_twice_and_two_joiners", "", TIMEOUT_NS)?;
        kassert_eq!(code, 0, "exit code of join_twice_and_two_joiners");
        Ok(())
    }
);
