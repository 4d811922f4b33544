//! Lockdep: the lock-dependency checker (debug builds; zero cost in release).
//!
//! Every acquire and release of every lock type (spinlocks, mutexes, the
//! reader/writer semaphore, the `mmap_lock`, the VMA lock's annotations)
//! passes through `acquire` / `release` here. From that stream it checks:
//!
//! - **order**: each lock belongs to a *class* (all locks created at one
//!   source line, see [`LockMap`]). Taking class B while holding class A adds
//!   the edge A -> B to a global graph (`graph.rs`); an edge that closes a
//!   cycle is a possible deadlock and is reported with both chains;
//! - **interrupt safety**: a class taken in an interrupt handler and also
//!   taken elsewhere with interrupts enabled (the handler can interrupt the
//!   holder on its own CPU and spin forever), and a class taken in a handler
//!   held while one taken with interrupts enabled is taken (the same, across
//!   two CPUs);
//! - **balance**: releasing a lock the task does not hold, returning to user
//!   mode holding a lock, exiting holding a lock;
//! - **sleeping in atomic context** (`might_sleep`).
//!
//! A report prints a block (`report.rs`), bumps its counter and lets the
//! kernel run on: tests read the counters, and one bug should not hide the
//! next. Each problem is reported once (an order pair once, a class's
//! interrupt conflicts once, a task's user-return imbalance once until it
//! holds nothing again). The checker turns itself off only if its static
//! tables fill up (it says so).

// Release builds compile the checker but never call it (`ENABLED` is false).
#![cfg_attr(not(debug_assertions), allow(dead_code))]

mod graph;
mod report;

use core::cell::UnsafeCell;
use core::panic::Location;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[cfg(debug_assertions)]
use core::sync::atomic::AtomicU32;

use crate::arch::cpu;
use crate::arch::percpu::{self, MAX_CPUS};
use crate::sched::{self, Task, preempt};

use graph::Problem;
pub use graph::{Chain, ClassId, ClassName, Link};

/// Reports made (tests read these to see a check fire).
pub static SLEEP_IN_ATOMIC_REPORTS: AtomicU64 = AtomicU64::new(0);
pub static ORDER_REPORTS: AtomicU64 = AtomicU64::new(0);
pub static IRQ_UNSAFE_REPORTS: AtomicU64 = AtomicU64::new(0);
pub static IRQ_ORDER_REPORTS: AtomicU64 = AtomicU64::new(0);
pub static UNHELD_RELEASE_REPORTS: AtomicU64 = AtomicU64::new(0);
pub static USER_RETURN_REPORTS: AtomicU64 = AtomicU64::new(0);
pub static EXIT_REPORTS: AtomicU64 = AtomicU64::new(0);

const ENABLED: bool = cfg!(debug_assertions);

/// All reports of every kind (a soak or a test run expects 0).
pub fn total_reports() -> u64 {
    [
        &SLEEP_IN_ATOMIC_REPORTS,
        &ORDER_REPORTS,
        &IRQ_UNSAFE_REPORTS,
        &IRQ_ORDER_REPORTS,
        &UNHELD_RELEASE_REPORTS,
        &USER_RETURN_REPORTS,
        &EXIT_REPORTS,
    ]
    .iter()
    .map(|c| c.load(Ordering::Relaxed))
    .sum()
}

/// A lock's class key and cache, embedded in every lock (Linux's
/// `lockdep_map`). Created by a `#[track_caller]` constructor, so the class
/// is the source line that created the lock plus `name`: every lock made
/// there is one class, as Linux keys a class by its init site. Empty in
/// release builds.
pub struct LockMap {
    #[cfg(debug_assertions)]
    name: &'static str,
    #[cfg(debug_assertions)]
    site: &'static Location<'static>,
    /// The class id once looked up (0: not yet).
    #[cfg(debug_assertions)]
    class: AtomicU32,
}

impl LockMap {
    #[track_caller]
    #[cfg_attr(not(debug_assertions), allow(unused_variables))]
    pub const fn new(name: &'static str) -> Self {
        LockMap {
            #[cfg(debug_assertions)]
            name,
            #[cfg(debug_assertions)]
            site: Location::caller(),
            #[cfg(debug_assertions)]
            class: AtomicU32::new(0),
        }
    }

    /// This lock's class, registered on first use (None: lockdep is off).
    #[cfg(debug_assertions)]
    fn class(&self) -> Option<ClassId> {
        // Relaxed: the id is all we read; the class's fields are read under
        // the graph lock, which orders them after their registration.
        match self.class.load(Ordering::Relaxed) {
            0 => {
                let id = graph::class_of(self.name, self.site)?;
                self.class.store(u32::from(id), Ordering::Relaxed);
                Some(id)
            }
            id => Some(id as ClassId),
        }
    }

    #[cfg(not(debug_assertions))]
    fn class(&self) -> Option<ClassId> {
        None
    }

    #[cfg(debug_assertions)]
    fn class_name(&self) -> ClassName {
        ClassName {
            name: self.name,
            site: self.site,
        }
    }

    #[cfg(not(debug_assertions))]
    fn class_name(&self) -> ClassName {
        unreachable!("lockdep is off in release builds")
    }
}

/// One entry of a task's held-lock list.
#[derive(Clone, Copy)]
pub struct HeldLock {
    /// The lock instance (its address).
    pub lock: usize,
    pub class: ClassId,
    pub name: ClassName,
    /// Where it was acquired.
    pub site: &'static Location<'static>,
    /// Read (shared) or write hold. Reads order like writes (see docs).
    pub read: bool,
}

pub const MAX_HELD_LOCKS: usize = 24;

/// A task's held locks, in acquisition order.
pub struct HeldLocks {
    list: [Option<HeldLock>; MAX_HELD_LOCKS],
    n: usize,
    /// A return to user mode with locks held was reported (reset once the
    /// task holds nothing), so a leaked lock is reported once, not per trap.
    user_return_reported: bool,
}

impl Default for HeldLocks {
    fn default() -> Self {
        Self::new()
    }
}

impl HeldLocks {
    pub const fn new() -> Self {
        HeldLocks {
            list: [None; MAX_HELD_LOCKS],
            n: 0,
            user_return_reported: false,
        }
    }

    pub fn held(&self) -> impl Iterator<Item = &HeldLock> {
        self.list[..self.n].iter().flatten()
    }

    fn top(&self) -> Option<&HeldLock> {
        self.n.checked_sub(1).and_then(|i| self.list[i].as_ref())
    }
}

/// Per CPU: lockdep is running here. A lock taken meanwhile (by the report
/// printer, an NMI) is not tracked, so lockdep never recurses into itself.
static BUSY: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Run `f` with interrupts off and this CPU marked busy; skip it if lockdep
/// is already running on this CPU. `f` gets "were interrupts enabled".
fn enter(f: impl FnOnce(bool)) {
    let irq = cpu::irq_save();
    let busy = &BUSY[percpu::cpu_id()];
    // Relaxed: only this CPU touches its flag, with interrupts off.
    if !busy.load(Ordering::Relaxed) {
        busy.store(true, Ordering::Relaxed);
        f(irq);
        busy.store(false, Ordering::Relaxed);
    }
    cpu::irq_restore(irq);
}

fn in_irq() -> bool {
    percpu::irq_depth() != 0
}

/// Per CPU: the locks held by interrupt handlers running on it (nested
/// handlers push on top of the one they interrupted and pop before it
/// resumes, so one list per CPU is a stack of them).
struct IrqHeld(UnsafeCell<HeldLocks>);

// SAFETY: each CPU touches only its own entry, with interrupts off.
unsafe impl Sync for IrqHeld {}

static IRQ_HELD: [IrqHeld; MAX_CPUS] =
    [const { IrqHeld(UnsafeCell::new(HeldLocks::new())) }; MAX_CPUS];

/// The held-lock list of this context: the running task's, or this CPU's
/// interrupt-handler list. None before the first task exists.
/// Call with interrupts off.
fn with_held<R>(f: impl FnOnce(&mut HeldLocks) -> R) -> Option<R> {
    if in_irq() {
        // SAFETY: only this CPU touches its entry, with interrupts off, so
        // there is no concurrent access.
        return Some(f(unsafe { &mut *IRQ_HELD[percpu::cpu_id()].0.get() }));
    }
    let task = sched::try_current()?;
    // SAFETY: `task` is the current task, interrupts are off (interrupt
    // handlers use their CPU's list), and `f` does not come back here.
    Some(unsafe { task.with_held_locks(f) })
}

/// `lock` (of `map`'s class) is being acquired at `site`. Called *before*
/// the lock is taken, so a real deadlock is reported before it hangs.
pub fn acquire(map: &LockMap, lock: usize, site: &'static Location<'static>, read: bool) {
    if !ENABLED {
        return;
    }
    enter(|irqs_were_on| {
        let Some(class) = map.class() else { return };
        let usage = irq_usage(class, in_irq(), irqs_were_on, site);
        let tracked = with_held(|h| {
            if let Some(p) = &usage {
                report_problem(p, site, Some(h), None);
            }
            check_order(h, class, map.class_name(), lock, site);
            if h.n < MAX_HELD_LOCKS {
                h.list[h.n] = Some(HeldLock {
                    lock,
                    class,
                    name: map.class_name(),
                    site,
                    read,
                });
                h.n += 1;
            }
        });
        if let (None, Some(p)) = (tracked, &usage) {
            report_problem(p, site, None, None);
        }
    });
}

/// Record how `class` is being taken: in an interrupt handler, or in task
/// context with interrupts enabled (with them off, neither).
fn irq_usage(
    class: ClassId,
    irq: bool,
    irqs_were_on: bool,
    site: &'static Location,
) -> Option<Problem> {
    let bit = if irq {
        graph::USED_IN_IRQ
    } else if irqs_were_on {
        graph::ENABLED_IRQ
    } else {
        return None;
    };
    graph::mark_usage(class, bit, site)
}

/// Count and print what the graph found. `held`: this context's held locks
/// (None before the first task); `order`: the held lock and the lock being
/// taken, when a new dependency found it.
fn report_problem(
    problem: &Problem,
    site: &'static Location,
    held: Option<&HeldLocks>,
    order: Option<(&HeldLock, ClassName, usize)>,
) {
    match problem {
        Problem::Cycle(chain) => {
            ORDER_REPORTS.fetch_add(1, Ordering::Relaxed);
            if let (Some(h), Some((top, name, lock))) = (held, order) {
                report::order(h, top, name, lock, site, chain);
            }
        }
        Problem::IrqUnsafe(conflict) => {
            IRQ_UNSAFE_REPORTS.fetch_add(1, Ordering::Relaxed);
            report::irq_unsafe(conflict, site, held);
        }
        Problem::IrqOrder(o) => {
            IRQ_ORDER_REPORTS.fetch_add(1, Ordering::Relaxed);
            report::irq_order(o, site, held);
        }
    }
}

/// Linux adds the edge only from the most recently taken lock: edges from
/// the ones below it already lead here through it.
fn check_order(
    h: &HeldLocks,
    class: ClassId,
    name: ClassName,
    lock: usize,
    site: &'static Location,
) {
    let Some(top) = h.top().copied() else { return };
    if graph::edge_known(top.class, class) {
        return;
    }
    if let Some(problem) = graph::add_edge(top.class, top.site, class, site) {
        report_problem(&problem, site, Some(h), Some((&top, name, lock)));
    }
}

pub fn release(lock: usize, site: &'static Location<'static>) {
    if !ENABLED {
        return;
    }
    enter(|_| {
        let found = with_held(|h| {
            // Locks are usually released in reverse order; search from the top.
            match h.list[..h.n]
                .iter()
                .rposition(|e| e.is_some_and(|e| e.lock == lock))
            {
                Some(i) => {
                    h.list.copy_within(i + 1..h.n, i);
                    h.n -= 1;
                    h.list[h.n] = None;
                    if h.n == 0 {
                        h.user_return_reported = false;
                    }
                    true
                }
                None => h.n == MAX_HELD_LOCKS, // the list overflowed: cannot tell
            }
        });
        if found == Some(false) {
            UNHELD_RELEASE_REPORTS.fetch_add(1, Ordering::Relaxed);
            with_held(|h| report::unheld_release(h, lock, site));
        }
    });
}

/// A write hold of `lock` becomes a read hold (a reader/writer lock's
/// downgrade): the lock stays in the list, in its place, as a read. Order
/// is unchanged (reads order like writes); an unheld lock is reported as an
/// unheld release would be.
pub fn downgrade(lock: usize, site: &'static Location<'static>) {
    if !ENABLED {
        return;
    }
    enter(|_| {
        let found = with_held(|h| {
            match h.list[..h.n]
                .iter_mut()
                .rev()
                .flatten()
                .find(|e| e.lock == lock)
            {
                Some(e) => {
                    e.read = true;
                    true
                }
                None => h.n == MAX_HELD_LOCKS, // the list overflowed: cannot tell
            }
        });
        if found == Some(false) {
            UNHELD_RELEASE_REPORTS.fetch_add(1, Ordering::Relaxed);
            with_held(|h| report::unheld_release(h, lock, site));
        }
    });
}

/// Called on every return to user mode: the task must hold no lock.
pub fn check_user_return() {
    if !ENABLED {
        return;
    }
    enter(|_| {
        with_held(|h| {
            if h.n != 0 && !h.user_return_reported {
                h.user_return_reported = true;
                USER_RETURN_REPORTS.fetch_add(1, Ordering::Relaxed);
                report::held_locks(h, "returning to user mode holding locks");
            }
        });
    });
}

/// A task about to exit must hold nothing. `_task` is the running task (the
/// list checked is the running task's own).
pub fn check_task_exit(_task: &Task) {
    if !ENABLED {
        return;
    }
    enter(|_| {
        with_held(|h| {
            if h.n != 0 {
                EXIT_REPORTS.fetch_add(1, Ordering::Relaxed);
                report::held_locks(h, "task exits holding locks");
            }
        });
    });
}

/// Number of locks the current task holds (tests use it).
pub fn held_count() -> usize {
    let mut n = 0;
    enter(|_| n = with_held(|h| h.n).unwrap_or(0));
    n
}

/// The class of a lock, registering it (tests: to read its usage bits).
pub fn class_usage(map: &LockMap) -> Option<(bool, bool)> {
    let mut r = None;
    enter(|_| {
        r = map.class().map(|c| {
            let u = graph::usage(c);
            (u & graph::USED_IN_IRQ != 0, u & graph::ENABLED_IRQ != 0)
        })
    });
    r
}

/// Whether the order checker is still on (it stops when a table is full).
pub fn order_checker_on() -> bool {
    ENABLED && !graph::FULL.load(Ordering::Relaxed)
}

/// The last order problem reported: the new dependency and the existing
/// chain it closed (empty for a class nested in itself).
pub fn last_order_report() -> Option<(Link, Chain)> {
    graph::last_cycle()
}

/// One log line: reports of each kind and the graph's size (printed at the
/// end of a test run; the tests that provoke reports account for theirs).
pub fn print_summary() {
    if !ENABLED {
        return;
    }
    let (classes, edges) = graph::sizes();
    let c = |c: &AtomicU64| c.load(Ordering::Relaxed);
    crate::info!(
        "lockdep: {} reports (order {}, irq-unsafe {}, irq order {}, unheld release {}, user return {}, exit {}, sleep in atomic {}); {classes} classes, {edges} dependencies{}",
        total_reports(),
        c(&ORDER_REPORTS),
        c(&IRQ_UNSAFE_REPORTS),
        c(&IRQ_ORDER_REPORTS),
        c(&UNHELD_RELEASE_REPORTS),
        c(&USER_RETURN_REPORTS),
        c(&EXIT_REPORTS),
        c(&SLEEP_IN_ATOMIC_REPORTS),
        if order_checker_on() {
            ""
        } else {
            " (order checker off: table full)"
        }
    );
}

/// Called at the top of every function that may sleep (Linux's might_sleep).
#[track_caller]
pub fn might_sleep() {
    if !ENABLED {
        return;
    }
    let in_irq = in_irq();
    if preempt::count() == 0 && !in_irq {
        return;
    }
    let site = Location::caller();
    SLEEP_IN_ATOMIC_REPORTS.fetch_add(1, Ordering::Relaxed);
    enter(|_| report::sleep_in_atomic(in_irq, site));
}
