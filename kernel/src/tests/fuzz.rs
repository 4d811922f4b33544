//! The fuzzer's kernel side: start `fuzz` processes (user/src/bin/fuzz.rs)
//! one after another, each with its own seed and mode, and after every one
//! check what only the kernel can see:
//!
//! - the kernel is alive (this loop still runs; a kernel that dies fails the
//!   test by name, with the seed of the child that killed it printed last);
//! - the child ended, within a bound (a hang is killed and named);
//! - its exit code is 0, except in `code` mode, where random code may end
//!   its process any way it likes;
//! - every frame it held came back (free frames plus the kernel's own
//!   growing structures, as `process_exit_returns_all_frames` counts them);
//! - no kernel warning or error was logged, lockdep reported nothing and RCU
//!   saw no stall (a process killed for a bad access is not a warning).
//!
//! Command line (`make fuzz` sets these): `fuzz.seed=S` (child `i` gets seed
//! `S + i`), `fuzz.modes=syscalls,vm,flags,code` (taken in turn),
//! `fuzz.children=N` (the short round's count) and `fuzz.seconds=T` (run
//! children until T seconds have passed instead), `fuzz.child_timeout=T`
//! (seconds before a child counts as hung; 120).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::memory::{frame, heap, paging};
use crate::{console, ktest, lockdep, println_raw, rcu, sched, time, user};

const MODES: [&str; 4] = ["syscalls", "vm", "flags", "code"];
/// Children in the short round (`make test`): four of each mode.
const SHORT_CHILDREN: u64 = 16;
const DEFAULT_SEED: u64 = 0x5eed;
/// A child not done by then is a hang (a generous bound: TCG at SMP=8 on two
/// host cores is slow). `fuzz.child_timeout=` seconds overrides it.
const CHILD_TIMEOUT_S: u64 = 120;
/// How long a killed child gets to end, and the frame count to settle.
const SETTLE_NS: u64 = 10_000_000_000;

struct Config {
    seed: u64,
    modes: Vec<String>,
    children: u64,
    seconds: Option<u64>,
    child_timeout_ns: u64,
}

fn config() -> Result<Config, String> {
    let cmdline = &crate::BOOT.get().ok_or("no boot information")?.cmdline;
    let num = |key: &str| -> Result<Option<u64>, String> {
        cmdline
            .get(key)
            .map(|v| parse_u64(v).ok_or_else(|| format!("{key}={v}: not a number")))
            .transpose()
    };
    let mut modes: Vec<String> = cmdline
        .list("fuzz.modes")
        .into_iter()
        .map(String::from)
        .collect();
    if modes.is_empty() {
        modes = MODES.iter().map(|&m| String::from(m)).collect();
    }
    if let Some(m) = modes.iter().find(|m| !MODES.contains(&m.as_str())) {
        return Err(format!("fuzz.modes: unknown mode {m} (known: {MODES:?})"));
    }
    Ok(Config {
        seed: num("fuzz.seed")?.unwrap_or(DEFAULT_SEED),
        modes,
        children: num("fuzz.children")?.unwrap_or(SHORT_CHILDREN),
        seconds: num("fuzz.seconds")?,
        child_timeout_ns: num("fuzz.child_timeout")?.unwrap_or(CHILD_TIMEOUT_S) * 1_000_000_000,
    })
}

pub(super) fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The program's arguments for one child: enough work to matter, little
/// enough that the short round stays well inside a minute under TCG.
fn child_args(mode: &str, seed: u64) -> String {
    let work = match mode {
        "syscalls" | "flags" => "threads=4 iters=1500",
        "vm" => "threads=4 iters=1000",
        _ => "iters=16",
    };
    format!("seed={seed} mode={mode} {work}")
}

/// Everything that must not change while a child runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Health {
    kernel_warnings: u64,
    lockdep_reports: u64,
    rcu_stalls: u64,
}

impl Health {
    pub(super) fn now() -> Health {
        // Relaxed: counters compared between two points of this test.
        Health {
            kernel_warnings: console::kernel_warnings(),
            lockdep_reports: lockdep::total_reports(),
            rcu_stalls: rcu::STALL_WARNINGS.load(Ordering::Relaxed),
        }
    }
}

/// Free frames plus the frames the kernel's own structures grew into (heap,
/// kernel page tables), which may grow without being a leak.
pub(super) fn frames() -> usize {
    frame::free_count() + heap::mapped_frames() + paging::kernel_table_frames()
}

/// Runs `args` as a `fuzz` process and returns its exit code; a child still
/// running after `timeout_ns` is killed, and one that then does not end is
/// an error.
fn run_bounded(args: &str, timeout_ns: u64) -> Result<i32, String> {
    let p = user::spawn("fuzz", args).map_err(|e| format!("cannot start fuzz: {e}"))?;
    let done = Arc::new(AtomicBool::new(false));
    let (p2, done2) = (p.clone(), done.clone());
    let waiter = sched::spawn("fuzz_wait", None, move || {
        user::wait(&p2);
        // Release pairs with the Acquire in `wait_flag`.
        done2.store(true, Ordering::Release);
    });
    if !wait_flag(&done, timeout_ns) {
        user::kill_process(&p, 124);
        if !wait_flag(&done, SETTLE_NS) {
            return Err(String::from("child hung, and did not end when killed"));
        }
        return Err(String::from("child hung (killed)"));
    }
    sched::join(&waiter);
    user::reap(&p);
    Ok(p.exit_code.load(Ordering::Relaxed))
}

fn wait_flag(flag: &AtomicBool, timeout_ns: u64) -> bool {
    let deadline = time::uptime_ns() + timeout_ns;
    // Acquire pairs with the waiter's Release store.
    while !flag.load(Ordering::Acquire) {
        if time::uptime_ns() > deadline {
            return false;
        }
        sched::sleep_ns(5_000_000);
    }
    true
}

/// The frames of a finished child come back once its last task is off its
/// CPU and RCU callbacks ran; give that a bounded time.
pub(super) fn frames_settle(before: usize) -> Result<(), String> {
    let deadline = time::uptime_ns() + SETTLE_NS;
    loop {
        rcu::rcu_barrier();
        let after = frames();
        if after == before {
            return Ok(());
        }
        if time::uptime_ns() > deadline {
            return Err(format!(
                "frames not returned: {before} free (plus kernel structures) before, {after} after"
            ));
        }
        sched::sleep_ns(10_000_000);
    }
}

/// One child and every check after it.
fn one_child(c: &Config, mode: &str, seed: u64) -> Result<(), String> {
    rcu::rcu_barrier();
    let before = frames();
    let health = Health::now();
    let code = run_bounded(&child_args(mode, seed), c.child_timeout_ns)?;
    if mode != "code" && code != 0 {
        return Err(format!(
            "exit code {code}, expected 0 (see the FAIL or killed line above)"
        ));
    }
    frames_settle(before)?;
    let after = Health::now();
    if after != health {
        return Err(format!(
            "kernel reported trouble: before {health:?}, after {after:?}"
        ));
    }
    Ok(())
}

fn repro(mode: &str, seed: u64) -> String {
    format!(
        "reproduce: make fuzz SEED={seed} MODES={mode} CHILDREN=1 SMP={} (the program alone: make run PROG=fuzz ARGS=\"{}\")",
        crate::arch::percpu::online_count(),
        child_args(mode, seed)
    )
}

ktest!(
    fn fuzz_short() {
        let c = config()?;
        let start = time::uptime_ns();
        println_raw!(
            "# fuzz: seed={} modes={} {}",
            c.seed,
            c.modes.join(","),
            match c.seconds {
                Some(s) => format!("for {s} s"),
                None => format!("{} children", c.children),
            }
        );
        // Warm the caches a first process fills (VMA cache, heap) so the
        // frame count of the first child compares like the others.
        user::run("hello", "").map_err(|e| format!("cannot run hello: {e}"))?;
        let mut i = 0u64;
        loop {
            let elapsed_s = (time::uptime_ns() - start) / 1_000_000_000;
            let more = match c.seconds {
                Some(s) => elapsed_s < s,
                None => i < c.children,
            };
            if !more {
                break;
            }
            let mode = c.modes[(i % c.modes.len() as u64) as usize].as_str();
            let seed = c.seed.wrapping_add(i);
            println_raw!(
                "# fuzz: child {i} mode={mode} seed={seed} ({elapsed_s} s); {}",
                repro(mode, seed)
            );
            one_child(&c, mode, seed).map_err(|e| {
                format!(
                    "fuzz child {i} mode={mode} seed={seed}: {e}\n{}",
                    repro(mode, seed)
                )
            })?;
            i += 1;
        }
        println_raw!("# fuzz: {i} children passed every check");
        Ok(())
    }
);
