//! Race injection: make one exact interleaving of the lock protocol happen on
//! real CPUs, every run (feature `race-inject`, which only the test builds
//! enable; `docs/mm.md`, "Race injection", shows how to use it).
//!
//! The `mm` crate marks named points (`mm::inject::Point`) and calls a hook
//! at each; this module is that hook. A test opens a [`Session`] and arms
//! points in it:
//!
//! - [`Session::stop`]`(rule, until)`: the first CPU that reaches a point
//!   matching `rule` waits there (spinning: several points are inside RCU
//!   read sections, where it must not sleep) until some CPU reaches a point
//!   matching `until`;
//! - [`Session::stop_until_released`]: the same, until the test calls
//!   [`Arm::release`];
//! - [`Session::watch`]: nothing waits; the arm counts the hits and records
//!   when the first happened, so a test can assert the order of events.
//!
//! A [`Rule`] names a point and filters what it is about (address space,
//! VMA, address, CPU, task name), so unrelated faults run through. A stop
//! that waits longer than [`TIMEOUT_NS`] gives up, lets its CPU go on, and
//! fails the session with the names of both points: a replay that cannot
//! happen fails, it never hangs. Ending the session (or dropping it on an
//! early return) releases every CPU still waiting.
//!
//! A waiting CPU spins with preemption as its caller left it, so the CPU it
//! waits for must be another one: replays pin their threads to distinct
//! CPUs and need at least two.

// The API is for every replay; not every replay uses every part of it.
#![allow(dead_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

pub use mm::inject::{Point, Site, SiteKey};

use crate::arch::{cpu, percpu};
use crate::sched;
use crate::sync::SpinLock;

/// How long a stop waits for its other point before it fails the session.
pub const TIMEOUT_NS: u64 = 10_000_000_000;

/// Arms one session may hold.
const MAX_ARMS: usize = 16;

/// A point and what it must be about to match; `None` matches anything.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub point: Point,
    pub mm: Option<usize>,
    pub vma: Option<usize>,
    pub addr: Option<u64>,
    pub cpu: Option<usize>,
    pub task: Option<&'static str>,
}

/// A rule for `point`, matching every site until narrowed.
pub fn at(point: Point) -> Rule {
    Rule {
        point,
        mm: None,
        vma: None,
        addr: None,
        cpu: None,
        task: None,
    }
}

impl Rule {
    /// Only this address space (`&Mm`, `*const Mm`).
    pub fn mm(mut self, mm: impl SiteKey) -> Rule {
        self.mm = Some(mm.site_key());
        self
    }
    /// Only this VMA (`&Vma`, `*const Vma`, `VmaPtr::as_raw`).
    pub fn vma(mut self, vma: impl SiteKey) -> Rule {
        self.vma = Some(vma.site_key());
        self
    }
    /// Only this address (the fault address, or the start of an unmap).
    pub fn addr(mut self, addr: u64) -> Rule {
        self.addr = Some(addr);
        self
    }
    /// Only on this CPU.
    pub fn cpu(mut self, cpu: usize) -> Rule {
        self.cpu = Some(cpu);
        self
    }
    /// Only in a task of this name (`sched::spawn`'s first argument).
    pub fn task(mut self, name: &'static str) -> Rule {
        self.task = Some(name);
        self
    }

    fn matches(&self, point: Point, site: &Site, cpu: usize) -> bool {
        self.point == point
            && self.mm.is_none_or(|m| m == site.mm)
            && self.vma.is_none_or(|v| v == site.vma)
            && self.addr.is_none_or(|a| a == site.addr)
            && self.cpu.is_none_or(|c| c == cpu)
            && self
                .task
                .is_none_or(|name| sched::try_current().is_some_and(|t| t.name.as_str() == name))
    }
}

impl core::fmt::Display for Rule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.point)?;
        if let Some(m) = self.mm {
            write!(f, " mm={m:#x}")?;
        }
        if let Some(v) = self.vma {
            write!(f, " vma={v:#x}")?;
        }
        if let Some(a) = self.addr {
            write!(f, " addr={a:#x}")?;
        }
        if let Some(c) = self.cpu {
            write!(f, " cpu={c}")?;
        }
        if let Some(t) = self.task {
            write!(f, " task={t}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Wait at `rule` until a point matching this is reached.
    Until(Rule),
    /// Wait at `rule` until the test releases the arm.
    Released,
    /// Count only.
    Watch,
}

/// An armed rule (under `ARMS`).
#[derive(Clone, Copy, Debug)]
struct ArmRule {
    rule: Rule,
    kind: Kind,
}

// A stop's life: armed, then a CPU parks at it, then it ends one way.
const ARMED: u8 = 0;
const PARKED: u8 = 1;
const DONE: u8 = 2;
const TIMED_OUT: u8 = 3;

/// The state of one arm that CPUs touch without `ARMS`.
struct ArmState {
    state: AtomicU8,
    /// Its `until` point was reached (or the test released it).
    released: AtomicBool,
    hits: AtomicUsize,
    /// `SEQUENCE` at its first hit; 0: not hit yet.
    first: AtomicU64,
    /// `SEQUENCE` when its `until` point was reached; 0: not yet.
    released_at: AtomicU64,
}

impl ArmState {
    const fn new() -> Self {
        ArmState {
            state: AtomicU8::new(ARMED),
            released: AtomicBool::new(false),
            hits: AtomicUsize::new(0),
            first: AtomicU64::new(0),
            released_at: AtomicU64::new(0),
        }
    }

    fn reset(&self) {
        self.state.store(ARMED, Ordering::Relaxed);
        self.released.store(false, Ordering::Relaxed);
        self.hits.store(0, Ordering::Relaxed);
        self.first.store(0, Ordering::Relaxed);
        self.released_at.store(0, Ordering::Relaxed);
    }
}

static ARMS: SpinLock<[Option<ArmRule>; MAX_ARMS]> = SpinLock::new([None; MAX_ARMS]);
static STATES: [ArmState; MAX_ARMS] = [const { ArmState::new() }; MAX_ARMS];
/// Whether a session is open: the hook's fast path when none is.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Orders the events a session sees (1, 2, ...), for `Arm::first_hit`.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The hook `mm` calls at every point (installed by [`Session::begin`]).
fn hook(point: Point, site: &Site) {
    // Relaxed: a stale "inactive" only misses a point reached while the
    // session is being opened, before any replay thread has started.
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    if let Some(slot) = record(point, site) {
        park(slot);
    }
}

/// Count the hit in every arm it matches and release the stops waiting for
/// it; returns the stop this CPU must now wait at, if any.
fn record(point: Point, site: &Site) -> Option<usize> {
    let cpu = percpu::cpu_id();
    let arms = ARMS.lock_irqsave();
    let mut park_at = None;
    for (i, arm) in arms.iter().enumerate() {
        let Some(arm) = arm else { continue };
        let st = &STATES[i];
        if let Kind::Until(until) = arm.kind
            && until.matches(point, site, cpu)
            && !st.released.load(Ordering::Relaxed)
        {
            let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1;
            st.released_at.store(seq, Ordering::Relaxed);
            // Release pairs with the Acquire load in `park`: what this CPU
            // did before reaching the point happens before the parked CPU
            // goes on (that is the interleaving being forced).
            st.released.store(true, Ordering::Release);
        }
        if !arm.rule.matches(point, site, cpu) {
            continue;
        }
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1;
        if st.hits.fetch_add(1, Ordering::Relaxed) == 0 {
            st.first.store(seq, Ordering::Relaxed);
        }
        let stops = !matches!(arm.kind, Kind::Watch);
        if stops && park_at.is_none() && st.state.load(Ordering::Relaxed) == ARMED {
            st.state.store(PARKED, Ordering::Relaxed);
            park_at = Some(i);
        }
    }
    park_at
}

/// Wait at stop `slot` until it is released, the session ends, or the
/// timeout.
fn park(slot: usize) {
    let st = &STATES[slot];
    let deadline = crate::time::uptime_ns() + TIMEOUT_NS;
    // Acquire pairs with the Release store in `record` (or `Arm::release`).
    while !st.released.load(Ordering::Acquire) {
        if !ACTIVE.load(Ordering::Relaxed) {
            break;
        }
        if crate::time::uptime_ns() > deadline {
            st.state.store(TIMED_OUT, Ordering::Relaxed);
            return;
        }
        cpu::pause();
    }
    st.state.store(DONE, Ordering::Relaxed);
}

/// One replay's arms. Only one session is open at a time; ending it
/// (`finish`, or dropping it) disarms everything and lets every waiting CPU
/// go on.
pub struct Session {
    _private: (),
}

/// One armed rule of a session.
#[derive(Clone, Copy)]
pub struct Arm {
    slot: usize,
}

impl Session {
    /// Open the session (installs the hook on first use).
    pub fn begin() -> Result<Session, String> {
        mm::inject::set_hook(hook);
        let mut arms = ARMS.lock_irqsave();
        if ACTIVE.load(Ordering::Relaxed) {
            return Err("a race-injection session is already open".into());
        }
        *arms = [None; MAX_ARMS];
        for st in &STATES {
            st.reset();
        }
        SEQUENCE.store(0, Ordering::Relaxed);
        ACTIVE.store(true, Ordering::Relaxed);
        Ok(Session { _private: () })
    }

    fn arm(&self, rule: Rule, kind: Kind) -> Arm {
        let mut arms = ARMS.lock_irqsave();
        let slot = arms
            .iter()
            .position(|a| a.is_none())
            .expect("race injection: more than MAX_ARMS arms in one session");
        STATES[slot].reset();
        arms[slot] = Some(ArmRule { rule, kind });
        Arm { slot }
    }

    /// The first CPU to reach `rule` waits there until a CPU reaches `until`.
    pub fn stop(&self, rule: Rule, until: Rule) -> Arm {
        self.arm(rule, Kind::Until(until))
    }

    /// The first CPU to reach `rule` waits there until [`Arm::release`].
    pub fn stop_until_released(&self, rule: Rule) -> Arm {
        self.arm(rule, Kind::Released)
    }

    /// Count the hits of `rule` without stopping anyone.
    pub fn watch(&self, rule: Rule) -> Arm {
        self.arm(rule, Kind::Watch)
    }

    /// End the session. Fails, naming the arms, if a stop timed out or was
    /// never reached (the interleaving did not happen as written).
    pub fn finish(self) -> Result<(), String> {
        let problems = self.problems();
        drop(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    fn problems(&self) -> Vec<String> {
        let arms = ARMS.lock_irqsave();
        let mut out = Vec::new();
        for (i, arm) in arms.iter().enumerate() {
            let Some(arm) = arm else { continue };
            if matches!(arm.kind, Kind::Watch) {
                continue;
            }
            let what = describe(arm);
            match STATES[i].state.load(Ordering::Relaxed) {
                ARMED => out.push(format!("race injection: {what}: never reached")),
                TIMED_OUT => out.push(format!(
                    "race injection: {what}: timed out after {} ms",
                    TIMEOUT_NS / 1_000_000
                )),
                _ => {}
            }
        }
        out
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut arms = ARMS.lock_irqsave();
        // Parked CPUs see this and go on.
        ACTIVE.store(false, Ordering::Relaxed);
        *arms = [None; MAX_ARMS];
    }
}

fn describe(arm: &ArmRule) -> String {
    match arm.kind {
        Kind::Until(until) => format!("stop at [{}] until [{until}]", arm.rule),
        Kind::Released => format!("stop at [{}] until released", arm.rule),
        Kind::Watch => format!("watch [{}]", arm.rule),
    }
}

impl Arm {
    fn state(&self) -> &'static ArmState {
        &STATES[self.slot]
    }

    /// How often its rule was matched.
    pub fn hits(&self) -> usize {
        self.state().hits.load(Ordering::Relaxed)
    }

    /// When its rule was first matched, in the session's order of events
    /// (compare with other arms' values); None if never.
    pub fn first_hit(&self) -> Option<u64> {
        Some(self.state().first.load(Ordering::Relaxed)).filter(|&s| s != 0)
    }

    /// When its `until` point was reached; None if not (yet).
    pub fn released_at(&self) -> Option<u64> {
        Some(self.state().released_at.load(Ordering::Relaxed)).filter(|&s| s != 0)
    }

    /// Whether a CPU is waiting at this stop now.
    pub fn is_parked(&self) -> bool {
        self.state().state.load(Ordering::Relaxed) == PARKED
    }

    /// Sleep until a CPU waits at this stop (or it timed out: an error).
    pub fn wait_parked(&self) -> Result<(), String> {
        let deadline = crate::time::uptime_ns() + TIMEOUT_NS;
        while !self.is_parked() {
            if crate::time::uptime_ns() > deadline {
                let what = ARMS.lock_irqsave()[self.slot].map(|a| describe(&a));
                return Err(format!(
                    "race injection: {}: no CPU got there within {} ms",
                    what.unwrap_or_default(),
                    TIMEOUT_NS / 1_000_000
                ));
            }
            sched::sleep_ns(100_000);
        }
        Ok(())
    }

    /// Let the CPU waiting at this stop (or the next one to reach it) go on.
    pub fn release(&self) {
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1;
        self.state().released_at.store(seq, Ordering::Relaxed);
        // Release pairs with the Acquire load in `park`.
        self.state().released.store(true, Ordering::Release);
    }
}

/// Whether there are enough CPUs for a replay: one to wait and one to go on.
pub fn enough_cpus() -> bool {
    percpu::online_count() >= 2
}
