//! Hostile input at the kernel's limits: a process that spawns threads in a
//! loop is refused with an error code (`EAGAIN` at the per-process limit,
//! `ENOMEM` when memory is low) instead of emptying the frame reserve or
//! the heap, exits cleanly, and leaves every frame behind it free. The user
//! program checks the error codes; these tests add what only the kernel
//! sees: the thread list, the reserve, the frames.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::user_threads::{expect_frames_back, free_frames};
use crate::memory::{frame, heap, paging};
use crate::{kassert, kassert_eq, ktest, rcu, user};

/// Long enough for any of these programs under TCG on a loaded host; a
/// process still alive after this is stuck.
const TIMEOUT_NS: u64 = 60_000_000_000;

/// The frame count that must come back: free frames plus those the
/// kernel's own growing structures (heap, kernel page tables) took.
fn frames_baseline() -> usize {
    rcu::rcu_barrier();
    free_frames()
}

/// Run `name args` to its end (bounded), let `ended` look at the process
/// after it ended and before its threads are reaped (their tasks and kernel
/// stacks still exist then), reap it; the exit code.
fn run_and_look(name: &str, args: &str, ended: impl FnOnce(&user::Process)) -> Result<i32, String> {
    let p = user::spawn(name, args).map_err(|e| format!("cannot run {name}: {e}"))?;
    let Some(code) = user::wait_timeout(&p, TIMEOUT_NS) else {
        user::kill_process(&p, -1);
        if user::wait_timeout(&p, TIMEOUT_NS).is_some() {
            user::reap(&p);
        }
        return Err(format!("{name} {args}: still running after the timeout"));
    };
    ended(&p);
    user::reap(&p);
    Ok(code)
}

ktest!(
    fn thread_spawn_in_a_loop_gets_eagain_at_the_limit() {
        // Once to warm the caches a process fills (VMA cache, heap).
        kassert_eq!(run_and_look("hello", "", |_| ())?, 0, "hello before");
        let before = frames_baseline();
        for round in 0..2 {
            let mut listed = 0;
            let code = run_and_look("thread_spawn_until_refused", "EAGAIN", |p| {
                listed = user::thread_count(p);
            })?;
            kassert_eq!(
                code,
                0,
                "exit code in round {} (1: see its FAIL line)",
                round
            );
            kassert_eq!(
                listed,
                user::MAX_THREADS,
                "threads of the process when it exited, round {}",
                round
            );
        }
        kassert_eq!(run_and_look("hello", "", |_| ())?, 0, "hello after");
        expect_frames_back(before, "two processes at the thread limit")
    }
);

/// Take user frames until only `left` more could be taken; they are the
/// caller's to free.
fn hold_user_frames_leaving(left: usize) -> Vec<u64> {
    let mut held = Vec::with_capacity(frame::free_count());
    while frame::user_can_take(left) {
        match frame::alloc_user() {
            Some(pa) => held.push(pa),
            None => break,
        }
    }
    held
}

ktest!(
    fn thread_spawn_under_memory_pressure_gets_enomem() {
        kassert_eq!(run_and_look("hello", "", |_| ())?, 0, "hello before");
        let before = frames_baseline();
        let tables_before = paging::kernel_table_frames();
        // Room to start the program (its image, page tables, stack VMA, and
        // one heap growth step) and a few dozen threads, no more: the limit
        // is far away, so only memory can stop it.
        let held = hold_user_frames_leaving(heap::GROW_MIN_FRAMES + 512);
        let mut free_at_exit = 0;
        let code = run_and_look("thread_spawn_until_refused", "ENOMEM", |_| {
            free_at_exit = frame::free_count();
        });
        for pa in held {
            frame::free(pa);
        }
        kassert_eq!(code?, 0, "exit code (1: see its FAIL line)");
        // Its threads' kernel stacks were all still allocated at the exit:
        // none may have come out of the kernel's reserve. Only the kernel's
        // own page tables (mapping the stacks and the heap's growth) may.
        let tables = paging::kernel_table_frames() - tables_before;
        kassert!(
            free_at_exit + tables >= frame::reserve_count(),
            "free frames {} at the exit fell below the reserve {} by more than the {} kernel page-table frames added",
            free_at_exit,
            frame::reserve_count(),
            tables
        );
        kassert_eq!(run_and_look("hello", "", |_| ())?, 0, "hello after");
        expect_frames_back(before, "thread spawning under memory pressure")
    }
);
