//! In-kernel benchmarks, run when the command line says `mode=bench`
//! (`make bench` boots the release kernel with it at SMP=1 and SMP=4).
//!
//! Every figure is one line, `bench NAME VALUE UNIT`: the median of `RUNS`
//! runs, each of which repeats the operation for a fixed stretch of time. A
//! `# NAME runs: ...` line before it lists every run, sorted, so the spread
//! is on record too. Figures that need two CPUs are skipped at SMP=1.
//!
//! Time comes from the TSC, converted with the PIT calibration of `time`.
//! Under QEMU's TCG the guest's instructions are translated and emulated, so
//! every figure is an emulator figure: compare them with each other and with
//! runs on the same machine, never with real hardware.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::arch::{cpu, percpu};
use crate::sched::{self, State, preempt};
use crate::sync::waitqueue::WaitQueue;
use crate::sync::{Mutex, RcuWait, RwSem, SpinLock};
use crate::{println_raw, rcu, time};

/// Runs per figure; the median is reported.
const RUNS: usize = 5;
/// Length of one run of a loop benchmark.
const RUN_MS: u64 = 200;
/// Length of one run of the grace-period benchmark (a grace period takes
/// milliseconds, so it needs longer runs to collect enough calls).
const GP_RUN_MS: u64 = 500;
/// Operations between two looks at the clock in the uncontended loops.
const BATCH: u64 = 1000;

pub fn run() {
    let cpus = percpu::online_count();
    println_raw!(
        "# bench: {cpus} CPUs, TSC {} MHz, spinlocks {}, lockdep {}",
        time::tsc_per_us(),
        if crate::sync::spinlock::virt_mode() {
            "test-and-set (hypervisor)"
        } else {
            "ticket"
        },
        if cfg!(debug_assertions) { "on" } else { "off" }
    );
    println_raw!("# median of {RUNS} runs each; under TCG these are emulator figures");
    uncontended();
    context_switch_one_cpu();
    if cpus >= 2 {
        ping_pong::<RcuWait>("rcuwait_handoff_cross_cpu", cpus - 2, cpus - 1);
        ping_pong::<WaitQueue>("waitqueue_handoff_cross_cpu", cpus - 2, cpus - 1);
        mutex_handoff(cpus - 2, cpus - 1);
    } else {
        println_raw!("# cross-CPU figures need SMP >= 2: skipped");
    }
    grace_period(false);
    grace_period(true);
    println_raw!("# bench: done");
}

// ------------------------------------------------------------ reporting --

fn cycles(ms: u64) -> u64 {
    ms * 1000 * time::tsc_per_us()
}

/// Tenths of a nanosecond per operation.
fn tenths_ns(cycles: u64, ops: u64) -> u64 {
    (cycles as u128 * 10_000 / (time::tsc_per_us() as u128 * ops.max(1) as u128)) as u64
}

/// Print the runs (tenths of `unit`) and their median.
fn report(name: &str, mut runs: Vec<u64>, unit: &str) {
    runs.sort_unstable();
    let mut all = alloc::string::String::new();
    for r in &runs {
        all.push_str(&alloc::format!(" {}.{}", r / 10, r % 10));
    }
    println_raw!("# {name} runs:{all} {unit}");
    let m = runs[runs.len() / 2];
    println_raw!("bench {name} {}.{} {unit}", m / 10, m % 10);
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

// ----------------------------------------------------------- uncontended --

/// Repeat `op` for `RUN_MS`, `RUNS` times; report nanoseconds per call.
fn per_op(name: &str, mut op: impl FnMut()) {
    let budget = cycles(RUN_MS);
    let runs = (0..RUNS)
        .map(|_| {
            let (mut ops, t0) = (0, cpu::rdtsc());
            loop {
                for _ in 0..BATCH {
                    op();
                }
                ops += BATCH;
                let dt = cpu::rdtsc() - t0;
                if dt >= budget {
                    break tenths_ns(dt, ops);
                }
            }
        })
        .collect();
    report(name, runs, "ns");
}

/// One CPU, nobody else touching the lock: the fast paths.
fn uncontended() {
    // The baseline the RCU read side is compared with (its goal: "close to
    // a counter increment"). Relaxed: nothing is published through it.
    let counter = AtomicU64::new(0);
    per_op("atomic_increment", || {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    per_op("preempt_disable_enable", || {
        preempt::disable();
        preempt::enable();
    });
    per_op("rcu_read_lock_unlock", || drop(rcu::read_lock()));
    let spin = SpinLock::new(());
    per_op("spinlock_lock_unlock", || drop(spin.lock()));
    per_op("spinlock_irqsave_lock_unlock", || drop(spin.lock_irqsave()));
    let mutex = Mutex::new(());
    per_op("mutex_lock_unlock", || drop(mutex.lock()));
    let sem = RwSem::new();
    per_op("rwsem_read_lock_unlock", || {
        sem.read_lock();
        sem.read_unlock();
    });
    per_op("rwsem_write_lock_unlock", || {
        sem.write_lock();
        sem.write_unlock();
    });
}

// -------------------------------------------------------- context switch --

/// Two tasks pinned to one CPU yield to each other. The figure is the time
/// per switch on that CPU, counted by the scheduler itself (so a switch to
/// any third task that happens to run there is counted, not hidden).
fn context_switch_one_cpu() {
    // Away from the boot CPU when there is another, so only the two run there.
    let on = percpu::online_count() - 1;
    let budget = cycles(RUN_MS);
    let runs = (0..RUNS)
        .map(|_| {
            let ready = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let result = Arc::new(AtomicU64::new(0));
            let tasks: Vec<_> = (0..2)
                .map(|side| {
                    let (ready, stop, result) = (ready.clone(), stop.clone(), result.clone());
                    sched::spawn("bench-yield", Some(on), move || {
                        // Relaxed: only counts and a stop flag, no data behind them.
                        ready.fetch_add(1, Ordering::Relaxed);
                        while ready.load(Ordering::Relaxed) < 2 {
                            sched::yield_now();
                        }
                        if side == 1 {
                            while !stop.load(Ordering::Relaxed) {
                                sched::yield_now();
                            }
                            return;
                        }
                        let (t0, s0) = (cpu::rdtsc(), sched::nr_switches(on));
                        let dt = loop {
                            sched::yield_now();
                            let dt = cpu::rdtsc() - t0;
                            if dt >= budget {
                                break dt;
                            }
                        };
                        let switches = sched::nr_switches(on) - s0;
                        stop.store(true, Ordering::Relaxed);
                        result.store(tenths_ns(dt, switches), Ordering::Relaxed);
                    })
                })
                .collect();
            for t in &tasks {
                sched::join(t); // join orders the tasks' stores before our load
            }
            result.load(Ordering::Relaxed)
        })
        .collect();
    report("context_switch_same_cpu", runs, "ns");
}

/// What a ping-pong side sleeps on.
trait Sleeper: Send + Sync + 'static {
    fn new() -> Self;
    fn sleep_until(&self, cond: impl Fn() -> bool);
    fn wake(&self);
}

impl Sleeper for RcuWait {
    fn new() -> Self {
        RcuWait::new()
    }
    fn sleep_until(&self, cond: impl Fn() -> bool) {
        self.wait_until(cond);
    }
    fn wake(&self) {
        self.wake_up();
    }
}

impl Sleeper for WaitQueue {
    fn new() -> Self {
        WaitQueue::new()
    }
    fn sleep_until(&self, cond: impl Fn() -> bool) {
        self.wait_until(cond);
    }
    fn wake(&self) {
        self.wake_one();
    }
}

/// Two tasks on two CPUs pass a token, each sleeping in its own `S` until
/// the token is its own (the pattern of `rcuwait_no_lost_wakeup`). One
/// handoff = the waker's update and wakeup, an IPI, the other CPU leaving
/// its idle halt and switching to the sleeper.
fn ping_pong<S: Sleeper>(name: &str, a: usize, b: usize) {
    const STOP: u64 = u64::MAX;
    let budget = cycles(RUN_MS);
    let runs = (0..RUNS)
        .map(|_| {
            let token = Arc::new(AtomicU64::new(0));
            let waits = Arc::new([S::new(), S::new()]);
            let result = Arc::new(AtomicU64::new(0));
            let tasks: Vec<_> = [a, b]
                .into_iter()
                .enumerate()
                .map(|(side, on)| {
                    let (token, waits, result) = (token.clone(), waits.clone(), result.clone());
                    sched::spawn("bench-pingpong", Some(on), move || {
                        let mut t0 = 0;
                        loop {
                            // Acquire pairs with the other side's Release store
                            // of the token (the handoff carries its turn).
                            let mine = || {
                                let t = token.load(Ordering::Acquire);
                                t == STOP || t % 2 == side as u64
                            };
                            waits[side].sleep_until(mine);
                            let t = token.load(Ordering::Acquire);
                            if t == STOP {
                                break;
                            }
                            if side == 0 {
                                let now = cpu::rdtsc();
                                if t == 0 {
                                    t0 = now;
                                } else if now - t0 >= budget {
                                    // `t` handoffs so far; join publishes it.
                                    result.store(tenths_ns(now - t0, t), Ordering::Relaxed);
                                    token.store(STOP, Ordering::Release);
                                    waits[1].wake();
                                    break;
                                }
                            }
                            token.store(t + 1, Ordering::Release);
                            waits[1 - side].wake();
                        }
                    })
                })
                .collect();
            for t in &tasks {
                sched::join(t);
            }
            result.load(Ordering::Relaxed)
        })
        .collect();
    report(name, runs, "ns");
}

/// Mutex handoff between two CPUs: the holder on CPU `a` unlocks while the
/// waiter on CPU `b` is asleep in `lock()` (blocked and switched out, its
/// CPU idle); the figure is the time from the unlock to the waiter running
/// with the mutex, read from the TSC on both sides (one clock under QEMU,
/// and synchronized on any CPU with an invariant TSC).
fn mutex_handoff(a: usize, b: usize) {
    const STOP: u64 = u64::MAX;
    let budget = cycles(RUN_MS);
    let runs = (0..RUNS)
        .map(|_| {
            let m = Arc::new(Mutex::new(0u64)); // holds the unlock's TSC
            // Odd 2i+1: round i armed by the holder; even 2i+2: the waiter
            // got the mutex in round i. Release/Acquire pairs between them.
            let phase = Arc::new(AtomicU64::new(0));
            let samples = Arc::new(SpinLock::new(Vec::new()));
            let waiter = {
                let (m, phase, samples) = (m.clone(), phase.clone(), samples.clone());
                sched::spawn("bench-mtx-waiter", Some(b), move || {
                    let mut round = 0;
                    loop {
                        let p = loop {
                            let p = phase.load(Ordering::Acquire);
                            if p == STOP || p == 2 * round + 1 {
                                break p;
                            }
                            cpu::pause();
                        };
                        if p == STOP {
                            break;
                        }
                        let g = m.lock();
                        let t1 = cpu::rdtsc();
                        // The holder wrote its TSC under the mutex just before
                        // unlocking: the lock's Acquire makes it visible.
                        samples.lock().push(t1.saturating_sub(*g));
                        drop(g);
                        phase.store(2 * round + 2, Ordering::Release);
                        round += 1;
                    }
                })
            };
            let holder = {
                let (m, phase, waiter) = (m.clone(), phase.clone(), waiter.clone());
                sched::spawn("bench-mtx-holder", Some(a), move || {
                    let t_start = cpu::rdtsc();
                    let mut round = 0;
                    while cpu::rdtsc() - t_start < budget {
                        let mut g = m.lock();
                        phase.store(2 * round + 1, Ordering::Release);
                        // Asleep for real: blocked, and its CPU has switched
                        // away from it (on_cpu's Acquire pairs with the
                        // Release in finish_switch).
                        while waiter.state() != State::Blocked
                            || waiter.on_cpu.load(Ordering::Acquire)
                        {
                            cpu::pause();
                        }
                        *g = cpu::rdtsc();
                        drop(g);
                        while phase.load(Ordering::Acquire) != 2 * round + 2 {
                            cpu::pause();
                        }
                        round += 1;
                    }
                    phase.store(STOP, Ordering::Release);
                })
            };
            sched::join(&holder);
            sched::join(&waiter);
            let mut s = core::mem::take(&mut *samples.lock());
            tenths_ns(median(&mut s), 1)
        })
        .collect();
    report("mutex_handoff_cross_cpu", runs, "ns");
}

// ----------------------------------------------------------------- RCU --

/// `synchronize_rcu` called back to back; each call timed alone. With
/// `busy`, every CPU also runs a task that spins with preemption enabled,
/// so no CPU is let off as idle: each must pass a quiescent state (here a
/// timer tick or a context switch).
fn grace_period(busy: bool) {
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = if busy {
        (0..percpu::online_count())
            .map(|c| {
                let stop = stop.clone();
                sched::spawn("bench-spin", Some(c), move || {
                    // Relaxed: a flag with no data behind it.
                    while !stop.load(Ordering::Relaxed) {
                        cpu::pause();
                    }
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let budget = cycles(GP_RUN_MS);
    let mut calls = 0;
    let runs = (0..RUNS)
        .map(|_| {
            let mut lat = Vec::new();
            let t_start = cpu::rdtsc();
            while cpu::rdtsc() - t_start < budget {
                let t0 = cpu::rdtsc();
                rcu::synchronize_rcu();
                lat.push(cpu::rdtsc() - t0);
            }
            calls += lat.len();
            // Tenths of a microsecond.
            median(&mut lat) * 10 / time::tsc_per_us()
        })
        .collect();
    stop.store(true, Ordering::Relaxed);
    for t in &spinners {
        sched::join(t);
    }
    let name = if busy {
        "rcu_synchronize_busy_cpus"
    } else {
        "rcu_synchronize_idle_cpus"
    };
    println_raw!("# {name}: {calls} calls in {RUNS} runs of {GP_RUN_MS} ms");
    report(name, runs, "us");
}
