//! The soak: `soak` processes (user/src/bin/soak.rs), several at a time,
//! each started again with a new seed when one exits, until the work is
//! done. Every page they read is checked byte for byte by the program (it
//! exits non-zero on a wrong byte). At the end: every child exited 0 (no
//! wrong byte, all its work done), every frame is back (the fuzzer's count:
//! free frames plus the kernel's own growing structures), and no kernel
//! warning, lockdep report or RCU stall happened. The faults (the kernel's
//! own counters), map/protect/unmap cycles and processes are printed.
//!
//! Command line (`make soak` sets these): `soak.faults=N` and
//! `soak.cycles=N` (run until both are reached; without them, the short
//! round of `soak.children=N` processes), `soak.seconds=T` (a cap: reaching
//! it before the targets fails), `soak.procs=N` (processes at a time),
//! `soak.seed=S`, `soak.rounds=N` and `soak.mapper_cycles=N` (each child's
//! work: every worker's rounds, the mapper's cycles).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::fuzz::{Health, frames, frames_settle, parse_u64};
use crate::user::{self, Process};
use crate::{ktest, mm_platform, println_raw, rcu, time};

/// A child not done by then is a hang.
const CHILD_TIMEOUT_NS: u64 = 300_000_000_000;

struct Config {
    seed: u64,
    faults: u64,
    cycles: u64,
    children: u64,
    seconds: u64,
    procs: u64,
    workers: u64,
    rounds: u64,
    mapper_cycles: u64,
}

fn config() -> Result<Config, String> {
    let cmdline = &crate::BOOT.get().ok_or("no boot information")?.cmdline;
    let num = |key: &str, default: u64| -> Result<u64, String> {
        match cmdline.get(key) {
            Some(v) => parse_u64(v).ok_or_else(|| format!("{key}={v}: not a number")),
            None => Ok(default),
        }
    };
    let cpus = crate::arch::percpu::online_count() as u64;
    Ok(Config {
        seed: num("soak.seed", 0x50a6)?,
        faults: num("soak.faults", 0)?,
        cycles: num("soak.cycles", 0)?,
        children: num("soak.children", 6)?,
        seconds: num("soak.seconds", 45)?,
        procs: num("soak.procs", 3)?.max(1),
        workers: num("soak.workers", cpus.div_ceil(2))?.max(1),
        rounds: num("soak.rounds", 8)?,
        mapper_cycles: num("soak.mapper_cycles", 20)?,
    })
}

fn faults() -> u64 {
    mm_platform::fault_counters_total().total()
}

/// What the soak did so far.
#[derive(Default)]
struct Totals {
    started: u64,
    passed: u64,
    cycles: u64,
}

impl Config {
    fn child_args(&self, seed: u64) -> String {
        format!(
            "seed={seed} workers={} rounds={} cycles={}",
            self.workers, self.rounds, self.mapper_cycles
        )
    }

    fn child_cycles(&self) -> u64 {
        self.workers * self.rounds + self.mapper_cycles
    }

    /// Whether to start another child.
    fn more(&self, t: &Totals, faults: u64, elapsed_s: u64) -> bool {
        if elapsed_s >= self.seconds {
            return false;
        }
        if self.faults == 0 && self.cycles == 0 {
            return t.started < self.children;
        }
        faults < self.faults || t.cycles + self.running_cycles(t) < self.cycles
    }

    /// Cycles the running children will add when they pass.
    fn running_cycles(&self, t: &Totals) -> u64 {
        (t.started - t.passed) * self.child_cycles()
    }
}

struct Child {
    p: Arc<Process>,
    seed: u64,
    started_ns: u64,
}

/// Checks a child that may have ended: `Ok(true)` when it ended well.
fn poll(c: &Config, child: &Child, t: &mut Totals) -> Result<bool, String> {
    let Some(code) = user::wait_timeout(&child.p, 2_000_000) else {
        if time::uptime_ns() - child.started_ns > CHILD_TIMEOUT_NS {
            user::kill_process(&child.p, 124);
            return Err(format!("child seed={} hung (killed)", child.seed));
        }
        return Ok(false);
    };
    user::reap(&child.p);
    if code != 0 {
        return Err(format!(
            "child seed={} exit code {code} (see its WRONG or FAIL line above); reproduce: make run PROG=soak ARGS=\"{}\"",
            child.seed,
            c.child_args(child.seed)
        ));
    }
    t.passed += 1;
    t.cycles += c.child_cycles();
    Ok(true)
}

/// Runs children until the targets (or the child count) are reached.
fn run_children(c: &Config, t: &mut Totals, faults0: u64) -> Result<(), String> {
    let start = time::uptime_ns();
    let mut running: Vec<Child> = Vec::new();
    loop {
        let elapsed_s = (time::uptime_ns() - start) / 1_000_000_000;
        while running.len() < c.procs as usize && c.more(t, faults() - faults0, elapsed_s) {
            let seed = c.seed.wrapping_add(t.started);
            let p = user::spawn("soak", &c.child_args(seed))
                .map_err(|e| format!("cannot start soak: {e}"))?;
            running.push(Child {
                p,
                seed,
                started_ns: time::uptime_ns(),
            });
            t.started += 1;
        }
        if running.is_empty() {
            return Ok(());
        }
        let mut i = 0;
        while i < running.len() {
            if poll(c, &running[i], t)? {
                running.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
}

ktest!(
    fn soak_short() {
        let c = config()?;
        // Warm the caches a first process fills, so the baseline compares.
        let code = user::run("soak", "workers=1 rounds=1 cycles=1")
            .map_err(|e| format!("cannot run soak: {e}"))?;
        if code != 0 {
            return Err(format!("the first soak process exited {code}"));
        }
        rcu::rcu_barrier();
        let before = frames();
        let health = Health::now();
        let faults0 = faults();
        let start = time::uptime_ns();
        let mut t = Totals::default();
        run_children(&c, &mut t, faults0)?;
        frames_settle(before)?;
        let after = Health::now();
        let faults = faults() - faults0;
        let secs = (time::uptime_ns() - start) / 1_000_000_000;
        println_raw!(
            "# soak: {} processes, {faults} faults, {} map/protect/unmap cycles, 0 wrong bytes, 0 frames leaked, in {secs} s ({} faults/s)",
            t.passed,
            t.cycles,
            faults / secs.max(1)
        );
        if after != health {
            return Err(format!(
                "kernel reported trouble: before {health:?}, after {after:?}"
            ));
        }
        if faults < c.faults || t.cycles < c.cycles {
            return Err(format!(
                "soak.seconds={} reached before the targets ({} faults, {} cycles)",
                c.seconds, c.faults, c.cycles
            ));
        }
        Ok(())
    }
);
