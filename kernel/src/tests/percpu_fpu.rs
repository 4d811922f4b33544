//! Per-CPU state under preemption and migration, and per-thread FPU state.
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use crate::arch::percpu;
use crate::sched::{self, Task, preempt, task::NO_CPU};
use crate::{kassert, kassert_eq, ktest, user};

/// Context switches on all CPUs so far (to report how much the test moved).
fn total_switches() -> u64 {
    percpu::online_cpus()
        .map(|c| sched::nr_switches(c.cpu_id as usize))
        .sum()
}

ktest!(
    fn fpu_state_is_per_thread() {
        let switches = total_switches();
        // Both processes at once, so their threads share (and swap) CPUs:
        // one kernel task starts and reaps each.
        let codes: Vec<Arc<AtomicI64>> = (0..2).map(|_| Arc::new(AtomicI64::new(-1))).collect();
        let runners: Vec<_> = ["1", "2"]
            .iter()
            .zip(&codes)
            .map(|(&arg, code)| {
                let code = code.clone();
                sched::spawn("fpu_runner", None, move || {
                    let c = user::run("fpu_state_is_per_thread", arg).unwrap_or(-2);
                    code.store(i64::from(c), Ordering::Relaxed);
                })
            })
            .collect();
        for r in &runners {
            sched::join(r);
        }
        let codes: Vec<i64> = codes.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        crate::info!(
            "fpu_state_is_per_thread: {} context switches meanwhile",
            total_switches() - switches
        );
        kassert_eq!(
            codes,
            [0, 0],
            "exit codes of the two processes (-2: could not start)"
        );
        Ok(())
    }
);

/// Checks the unpinned tasks make at least, over all tasks: millions.
const CHECKS: u64 = 4_000_000;
/// Rounds of forced moves the checkers live through at least.
const MOVE_ROUNDS: usize = 20;

/// One checker: at least `checks` times, and until `moved` is set,
/// `current()` must be this task, and the CPU's preempt count must be 0
/// outside and 1 inside a no-preempt section. Returns the checks made and
/// how often it saw its CPU change, or the failure.
fn check_current(
    me: *const Task,
    checks: u64,
    moved: &AtomicBool,
) -> Result<(u64, u64), alloc::string::String> {
    let mut moves = 0;
    let mut last_cpu = percpu::cpu_id();
    let mut i = 0;
    while i < checks || !moved.load(Ordering::Relaxed) {
        i += 1;
        let cur = sched::current();
        kassert!(
            core::ptr::eq(cur, me),
            "check {i}: current() on cpu{} is task {} '{}', not this one",
            percpu::cpu_id(),
            cur.id,
            cur.name
        );
        kassert_eq!(
            preempt::count(),
            0,
            "check {i}: preempt count outside a section"
        );
        preempt::disable();
        let inside = preempt::count();
        preempt::enable();
        kassert_eq!(inside, 1, "check {i}: preempt count inside a section");
        let cpu = percpu::cpu_id();
        if cpu != last_cpu {
            moves += 1;
            last_cpu = cpu;
        }
    }
    Ok((i, moves))
}

ktest!(
    fn percpu_current_survives_migration() {
        let cpus = percpu::online_count();
        let n = 2 * cpus;
        let stop = Arc::new(AtomicBool::new(false));
        // CPU hogs, unpinned: half spin, half spin and nap, so CPUs go idle
        // now and then and steal the waiting checkers from busy ones.
        let hogs: Vec<_> = (0..cpus)
            .map(|i| {
                let stop = stop.clone();
                sched::spawn("hog", None, move || {
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..20_000 {
                            core::hint::spin_loop();
                        }
                        if i % 2 == 1 {
                            sched::sleep_ns(1_000_000);
                        }
                    }
                })
            })
            .collect();
        // Each checker learns its own task pointer from us (not from the
        // `current()` under test).
        let me: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
        let moves = Arc::new(AtomicU64::new(0));
        let failure = Arc::new(spin::Mutex::new(None));
        let moved = Arc::new(AtomicBool::new(false));
        let checks = Arc::new(AtomicU64::new(0));
        let checkers: Vec<Arc<Task>> = (0..n)
            .map(|i| {
                let (me, moves, failure) = (me.clone(), moves.clone(), failure.clone());
                let (moved, checks) = (moved.clone(), checks.clone());
                sched::spawn("checker", None, move || {
                    let mine = loop {
                        match me[i].load(Ordering::Acquire) {
                            0 => sched::yield_now(),
                            p => break p as *const Task,
                        }
                    };
                    match check_current(mine, CHECKS / n as u64, &moved) {
                        Ok((c, m)) => {
                            checks.fetch_add(c, Ordering::Relaxed);
                            moves.fetch_add(m, Ordering::Relaxed);
                        }
                        Err(e) => *failure.lock() = Some(e),
                    }
                })
            })
            .collect();
        for (slot, t) in me.iter().zip(&checkers) {
            // Release pairs with the checker's Acquire load.
            slot.store(Arc::as_ptr(t) as usize, Ordering::Release);
        }
        // Move the checkers around as well: pin each to another CPU (the
        // scheduler moves it at its next switch), then let them go again
        // (stealing moves them too).
        let mut k = 0;
        while checkers.iter().any(|t| t.state() != sched::State::Exited) {
            for (i, t) in checkers.iter().enumerate() {
                t.affinity.store((i + k) % cpus, Ordering::Relaxed);
            }
            sched::sleep_ns(20_000_000);
            for t in &checkers {
                t.affinity.store(NO_CPU, Ordering::Relaxed);
            }
            sched::sleep_ns(10_000_000);
            k += 1;
            moved.store(k >= MOVE_ROUNDS, Ordering::Relaxed);
        }
        for t in &checkers {
            kassert_eq!(sched::join(t), 0);
        }
        stop.store(true, Ordering::Relaxed);
        for t in &hogs {
            sched::join(t);
        }
        if let Some(e) = failure.lock().take() {
            return Err(e);
        }
        let moves = moves.load(Ordering::Relaxed);
        crate::info!(
            "percpu_current_survives_migration: {} checks in {n} tasks, {moves} CPU changes seen",
            checks.load(Ordering::Relaxed)
        );
        kassert!(
            cpus == 1 || moves > 0,
            "no checker ever changed CPU: the test did not test migration"
        );
        Ok(())
    }
);
