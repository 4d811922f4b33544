//! The scheduler: per-CPU run queues, preemption by the timer, pinning, and
//! simple load balancing.
//!
//! Each CPU runs its `current` task; the others wait in its run queue,
//! which hands out the CPU by run time (`fair`): the queued task that has
//! had the least CPU runs next, a woken task preempts the running one if it
//! has had less by a granularity, and the tick preempts the running task
//! for a queued one that has had less by as much. A CPU with nothing to run
//! steals an unpinned task from the busiest queue, and otherwise runs its
//! idle task, which halts. The idle task is never queued.
//!
//! Preemption is disabled while `preempt_count` (per CPU) is non-zero: every
//! spinlock holder, every RCU reader. A timer tick that finds it non-zero
//! only sets `need_resched`; the switch happens when the count drops to zero.
//!
//! The running task is `percpu::current_task` (in the CPU's `PerCpu`, not
//! the run queue), so `current()` is one `gs:` load: a task preempted and
//! moved to another CPU between "which CPU am I on" and "what runs there"
//! would otherwise get the task now running on the CPU it left.
//!
//! FPU/SSE registers belong to user threads and are switched eagerly here
//! (see `fpu`).
//!
//! Quiescent-state hooks: `rcu::note_context_switch` on every switch and
//! `rcu::note_idle` in the idle loop (an idle CPU never holds up RCU).

pub mod diag;
pub mod fair;
pub mod fpu;
pub mod idle_poll;
pub mod preempt;
pub mod stats;
mod switch;
pub mod task;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::arch::percpu::{self, MAX_CPUS};
use crate::arch::{apic, cpu, idt};
use crate::memory::kstack::KernelStack;
use crate::sync::SpinLock;
use crate::sync::spinlock::SpinLockGuard;
use fair::FairQueue;
pub use task::{State, Task, current_uthread};

struct RunQueue {
    queue: SpinLock<FairQueue>,
    /// The floor of this CPU's virtual run times (see `fair`): it only
    /// rises, to the smallest among the running task's and the queued
    /// tasks'. Written by this CPU with `queue` locked; read by other CPUs
    /// (Relaxed) to place a task on this queue, where a stale value only
    /// places it less well.
    min_vruntime: AtomicU64,
    /// The running task's virtual run time as of `charged_ns`; `u64::MAX`
    /// while the idle task runs (any woken task may preempt it). Written
    /// by this CPU; read by wakers elsewhere as a hint (`running_vruntime`).
    curr_vruntime: AtomicU64,
    /// Up to when the running task's run time has been added to its virtual
    /// run time (`time::uptime_ns`). Written by this CPU, interrupts off.
    charged_ns: AtomicU64,
    // The running task is `percpu::current_task`; the CPU holds one strong
    // reference to it (`Arc::into_raw`).
    idle: AtomicPtr<Task>,
    /// The task we just switched away from, for `finish_switch`.
    prev: AtomicPtr<Task>,
    // `need_resched` is in `PerCpu`, so that `preempt::enable` can test it
    // in one `gs:` load.
    /// Tasks sleeping until a deadline, checked on each tick.
    sleepers: SpinLock<Vec<Arc<Task>>>,
    nr_switches: AtomicU64,
    /// When the running task was switched in (`time::uptime_ns`), for the
    /// wakeup placement (see `select_cpu`).
    switched_in_ns: AtomicU64,
    /// The running task's name (first bytes), for diagnostics read by other
    /// CPUs; may be torn while it changes, which a warning can live with.
    label: [AtomicU8; LABEL_LEN],
}

const LABEL_LEN: usize = 24;

static RQ: [RunQueue; MAX_CPUS] = [const {
    RunQueue {
        queue: SpinLock::new(FairQueue::new()),
        min_vruntime: AtomicU64::new(0),
        curr_vruntime: AtomicU64::new(u64::MAX),
        charged_ns: AtomicU64::new(0),
        idle: AtomicPtr::new(core::ptr::null_mut()),
        prev: AtomicPtr::new(core::ptr::null_mut()),
        sleepers: SpinLock::new(Vec::new()),
        nr_switches: AtomicU64::new(0),
        switched_in_ns: AtomicU64::new(0),
        label: [const { AtomicU8::new(0) }; LABEL_LEN],
    }
}; MAX_CPUS];

fn set_label(rq: &RunQueue, name: &str) {
    let b = name.as_bytes();
    for (i, slot) in rq.label.iter().enumerate() {
        slot.store(b.get(i).copied().unwrap_or(0), Ordering::Relaxed);
    }
}

/// Name of the task running on `cpu` (diagnostics).
pub fn current_name_on(cpu: usize) -> String {
    RQ[cpu]
        .label
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .take_while(|&b| b != 0)
        .map(char::from)
        .collect()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static STARTED: AtomicBool = AtomicBool::new(false);
static NEXT_CPU: AtomicUsize = AtomicUsize::new(0);

fn rq() -> &'static RunQueue {
    &RQ[percpu::cpu_id()]
}

/// The running task's pointer, or null before the scheduler starts on this
/// CPU. One `gs:` load: whatever CPU runs it, the answer is the caller.
fn current_ptr() -> *const Task {
    percpu::current_task() as *const Task
}

/// The running task. Panics before the scheduler starts on this CPU.
pub fn current() -> &'static Task {
    let p = current_ptr();
    assert!(!p.is_null(), "no current task on cpu{}", percpu::cpu_id());
    // SAFETY: the CPU holds a strong reference to its current task for as
    // long as it is current, which outlives this borrow (we are that task).
    unsafe { &*p }
}

pub fn try_current() -> Option<&'static Task> {
    let p = current_ptr();
    // SAFETY: as in `current`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Make `t` this CPU's running task (interrupts off).
fn set_current(t: *const Task) {
    percpu::set_current_task(t as usize);
}

fn adopt_running_context(name: String) -> *mut Task {
    let cpu = percpu::cpu_id();
    let me = Arc::new(Task::new(next_id(), name, None, None));
    me.set_state(State::Running);
    me.on_cpu.store(true, Ordering::Relaxed);
    me.cpu.store(cpu, Ordering::Relaxed);
    me.affinity.store(cpu, Ordering::Relaxed);
    Arc::into_raw(me) as *mut Task
}

/// The boot CPU: the boot flow becomes task "main"; the idle task gets its
/// own stack.
pub fn init_boot_cpu() {
    let cpu = percpu::cpu_id();
    set_current(adopt_running_context(String::from("main")));
    let idle = new_task(alloc::format!("idle{cpu}"), Box::new(|| idle_loop()));
    idle.set_state(State::Running); // the idle task is always "running": never queued
    idle.affinity.store(cpu, Ordering::Relaxed);
    idle.cpu.store(cpu, Ordering::Relaxed);
    RQ[cpu]
        .idle
        .store(Arc::into_raw(idle) as *mut Task, Ordering::Release);
    STARTED.store(true, Ordering::Release);
}

/// An AP: its bring-up context becomes its idle task.
pub fn init_ap_and_idle() -> ! {
    let cpu = percpu::cpu_id();
    let idle = adopt_running_context(alloc::format!("idle{cpu}"));
    // SAFETY: `idle` came from Arc::into_raw; the second reference is the
    // run queue's `idle` slot (never dropped), the first is `current`'s.
    unsafe { Arc::increment_strong_count(idle) };
    RQ[cpu].idle.store(idle, Ordering::Release);
    set_current(idle);
    idle_loop()
}

fn new_task(name: String, entry: Box<dyn FnOnce() + Send>) -> Arc<Task> {
    let stack = KernelStack::new().expect("out of memory for a kernel stack");
    Arc::new(Task::new(next_id(), name, Some(stack), Some(entry)))
}

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A thread of a user process, not started yet ([`start_user`]): a task
/// whose kernel entry `f` ends by entering user mode, with its user state
/// set to `uthread` from the start.
///
/// `None` if out of memory. A process can call this in a loop, so nothing
/// here panics when memory runs out: every allocation is fallible, and none
/// is made once user memory is low (the kernel stack and the task would
/// otherwise come out of the frame reserve, through the heap's growth).
///
/// `f` never returns, so whatever it captures would never be dropped: it
/// must capture nothing (checked at compile time; a zero-sized closure is
/// boxed without an allocation) and find what it needs in `uthread`.
pub fn new_user_task<F: FnOnce() + Send + 'static>(
    name: &str,
    process: Arc<crate::user::Process>,
    uthread: crate::user::ThreadState,
    f: F,
) -> Option<Arc<Task>> {
    const {
        assert!(
            core::mem::size_of::<F>() == 0,
            "a user thread's entry captures nothing"
        )
    };
    if <crate::mm_platform::Kernel as mm::platform::Platform>::memory_low() {
        return None;
    }
    let mut owned_name = String::new();
    owned_name.try_reserve_exact(name.len()).ok()?;
    owned_name.push_str(name);
    let stack = KernelStack::new_for_user()?;
    let mut task = Task::new(next_id(), owned_name, Some(stack), Some(Box::new(f)));
    task.set_user(process, uthread);
    Arc::try_new(task).ok()
}

/// Queue a task made by [`new_user_task`] on `cpu` (pinned) or anywhere.
pub fn start_user(t: &Arc<Task>, cpu: Option<usize>) {
    let target = match cpu {
        Some(c) => {
            t.affinity.store(c, Ordering::Relaxed);
            c
        }
        None => pick_cpu(),
    };
    enqueue(t.clone(), target);
}

/// Create a task running `f`, on `cpu` (pinned) or anywhere (None).
pub fn spawn(name: &str, cpu: Option<usize>, f: impl FnOnce() + Send + 'static) -> Arc<Task> {
    let t = new_task(String::from(name), Box::new(f));
    let target = match cpu {
        Some(c) => {
            assert!(
                c < MAX_CPUS && percpu::get(c).online.load(Ordering::Acquire),
                "spawn on offline cpu{c}"
            );
            t.affinity.store(c, Ordering::Relaxed);
            c
        }
        None => pick_cpu(),
    };
    enqueue(t.clone(), target);
    t
}

/// Least-loaded online CPU, round-robin among equals. Allocates nothing:
/// a process spawning threads in a loop comes here each time.
fn pick_cpu() -> usize {
    let n = percpu::online_cpus().count().max(1);
    let start = NEXT_CPU.fetch_add(1, Ordering::Relaxed) % n;
    percpu::online_cpus()
        .enumerate()
        .min_by_key(|&(i, c)| {
            let queued = RQ[c.cpu_id as usize].queue.lock_irqsave().len();
            // Among equals, the first at or after `start`.
            (queued, (i + n - start) % n)
        })
        .map_or(0, |(_, c)| c.cpu_id as usize)
}

fn enqueue(t: Arc<Task>, cpu: usize) {
    enqueue_as(t, cpu, false);
}

/// A task that has run this long on a CPU is one a woken task would rather
/// go to (see `select_cpu`): a task that just got the CPU, typically the
/// waker itself, is likely to block again soon.
const WAKEUP_GRAN_NS: u64 = fair::WAKEUP_GRAN_NS;

/// Queue `t` on `cpu`, placed there by virtual run time (`place_on`). It
/// takes over the CPU, this one or another, only if it is idle or its task
/// has had more CPU by a granularity (`fair::wakeup_preempts`); else it
/// waits for that task to block or for the tick. `wakeup`: `t` was woken
/// (for the statistics).
fn enqueue_as(t: Arc<Task>, cpu: usize, wakeup: bool) {
    place_on(&t, cpu);
    let preempt = fair::wakeup_preempts(running_vruntime(cpu), t.vruntime.load(Ordering::Relaxed));
    let idle = stats::enabled() && wakeup && cpu_idle(cpu);
    let behind = stats::enabled() && wakeup && !preempt && !idle;
    if stats::enabled() {
        let now = crate::time::uptime_ns().max(1);
        stats::note_queued(&t, cpu);
        t.requeued_ns.store(0, Ordering::Relaxed);
        if wakeup {
            // (A wakeup on an idle CPU "preempts" its idle task too.)
            let how = match (idle, preempt) {
                (true, _) => stats::Placed::Idle,
                (false, true) => stats::Placed::Preempting,
                (false, false) => stats::Placed::Behind,
            };
            t.woken_ns
                .store(stats::woken_stamp(now, how), Ordering::Relaxed);
        }
    }
    t.cpu.store(cpu, Ordering::Relaxed);
    let _ = t
        .placed_on
        .compare_exchange(task::NO_CPU, cpu, Ordering::Relaxed, Ordering::Relaxed);
    RQ[cpu].queue.lock_irqsave().push(t);
    if behind {
        stats::add(stats::Stat::WakeQueuedBehind, 1);
    }
    // Interrupts off: "is it this CPU" must stay true until we act on it.
    let irq = cpu::irq_save();
    if cpu != percpu::cpu_id() {
        // Wake a halted CPU. A busy one switches when the IPI returns if
        // asked to (Relaxed: the IPI orders it before the handler's check),
        // and else picks the task up at its next tick.
        if preempt {
            percpu::get(cpu).need_resched.store(true, Ordering::Relaxed);
        }
        apic::send_ipi(
            percpu::get(cpu).apic_id.load(Ordering::Relaxed),
            idt::VECTOR_WAKEUP,
        );
    } else if preempt || cpu_idle(cpu) {
        percpu::get(cpu).need_resched.store(true, Ordering::Relaxed);
    }
    cpu::irq_restore(irq);
}

/// Set `t`'s virtual run time for `cpu`'s queue, before `t.cpu` says so:
/// a new task starts just above the floor (`fair::NEW_TASK_DEBIT_NS`); any
/// other keeps its distance from the floor of the queue it left (`t.cpu`),
/// within `fair::place`'s bounds.
fn place_on(t: &Task, cpu: usize) {
    let dst_min = RQ[cpu].min_vruntime.load(Ordering::Relaxed);
    let v = if t.placed_on.load(Ordering::Relaxed) == task::NO_CPU {
        dst_min.saturating_add(fair::NEW_TASK_DEBIT_NS)
    } else {
        let src_min = RQ[t.cpu.load(Ordering::Relaxed)]
            .min_vruntime
            .load(Ordering::Relaxed);
        fair::place(t.vruntime.load(Ordering::Relaxed), src_min, dst_min)
    };
    t.vruntime.store(v, Ordering::Relaxed);
}

/// The virtual run time of `cpu`'s running task now (a hint, as racy as
/// `cpu_idle`; `u64::MAX` for the idle task).
fn running_vruntime(cpu: usize) -> u64 {
    let rq = &RQ[cpu];
    let since = rq.charged_ns.load(Ordering::Relaxed);
    let ran = crate::time::uptime_ns().saturating_sub(since);
    rq.curr_vruntime.load(Ordering::Relaxed).saturating_add(ran)
}

/// Add the running task's run time since `charged_ns` to its virtual run
/// time (CPU `me`, interrupts off).
fn charge_current(me: usize) {
    let rq = &RQ[me];
    let now = crate::time::uptime_ns();
    let ran = now.saturating_sub(rq.charged_ns.swap(now, Ordering::Relaxed));
    let cur = current_ptr();
    if cur.is_null() || core::ptr::eq(cur, rq.idle.load(Ordering::Relaxed)) {
        return;
    }
    // SAFETY: the CPU's reference keeps its current task alive.
    let v = unsafe { &*cur }.vruntime.fetch_add(ran, Ordering::Relaxed) + ran;
    rq.curr_vruntime.store(v, Ordering::Relaxed);
}

/// Raise CPU `rq`'s floor to the smallest virtual run time among its
/// running task (`running`, None for the idle task or one that is leaving)
/// and its queue `q`, which the caller holds.
fn raise_floor(rq: &RunQueue, q: &FairQueue, running: Option<u64>) {
    let smallest = match (running, q.min_vruntime()) {
        (Some(r), Some(m)) => Some(r.min(m)),
        (r, m) => r.or(m),
    };
    if let Some(v) = smallest {
        let old = rq.min_vruntime.load(Ordering::Relaxed);
        rq.min_vruntime.store(old.max(v), Ordering::Relaxed);
    }
}

/// Make a blocked task runnable. False if it was not blocked.
pub fn wake(t: &Arc<Task>) -> bool {
    if !t.transition(State::Blocked, State::Runnable) {
        return false;
    }
    let cpu = t
        .pinned()
        .unwrap_or_else(|| select_cpu(t.cpu.load(Ordering::Relaxed)));
    // A waker that releases a lock and wakes the next holder onto its own
    // CPU, having just got the CPU, keeps running (see `enqueue_as`).
    // Preempting it there (as this used to) queued it behind a task that
    // may run for a whole tick, while its next step is often to take the
    // same lock again.
    enqueue_as(t.clone(), cpu, true);
    true
}

/// Where an unpinned woken task runs: the CPU it last ran on (its caches are
/// warm there), unless that CPU is busy and another is idle; then the idle
/// one, so that the task neither waits behind a running task nor preempts it
/// (Linux's `select_idle_sibling`).
///
/// With every CPU busy, a CPU whose task has run for `WAKEUP_GRAN_NS`
/// since it was switched in beats one whose task has just got it (and
/// which, typically a woken task itself, may have had little CPU, so that
/// the woken task would wait behind it: `enqueue_as`): the last CPU if it
/// qualifies, else another, but not the waker's own (a waker that releases
/// a lock often takes it again next). A woken task often
/// holds a lock just handed to it (a semaphore grants before it wakes), so
/// every tick it waits behind a task that just got its CPU, the lock's
/// other waiters wait too, and their CPUs go idle.
///
/// The answer is a racy snapshot: a CPU may become busy, or its task may
/// change, right after we look, which only places the task less well.
fn select_cpu(last: usize) -> usize {
    if cpu_idle(last) {
        return last;
    }
    let online = || percpu::online_cpus().map(|c| c.cpu_id as usize);
    if let Some(idle) = online().find(|&c| cpu_idle(c)) {
        return idle;
    }
    if ran_long(last) {
        return last;
    }
    let me = percpu::cpu_id();
    online().find(|&c| c != me && ran_long(c)).unwrap_or(last)
}

/// `cpu`'s running task has had it for `WAKEUP_GRAN_NS` (Relaxed: a hint,
/// like `cpu_idle`).
fn ran_long(cpu: usize) -> bool {
    let since = RQ[cpu].switched_in_ns.load(Ordering::Relaxed);
    crate::time::uptime_ns().saturating_sub(since) >= WAKEUP_GRAN_NS
}

/// `cpu` runs its idle task and has nothing queued. Relaxed loads: a hint
/// for placement, ordered with nothing (see `select_cpu`).
pub fn cpu_idle(cpu: usize) -> bool {
    let rq = &RQ[cpu];
    let idle = rq.idle.load(Ordering::Relaxed) as usize;
    idle != 0
        && percpu::get(cpu).current_task.load(Ordering::Relaxed) == idle
        && rq.queue.lock_irqsave().is_empty()
}

/// Undo `set_state(Blocked)` when the condition turned true before we slept.
/// If a waker already made us runnable (and queued us), we must not simply
/// run on: the queue entry would let another CPU pick us while we run. Going
/// through `schedule()` consumes that entry.
pub fn cancel_sleep(t: &Task) {
    if !t.transition(State::Blocked, State::Running) {
        schedule();
    }
}

/// Give the CPU away. The current task must have set its state first:
/// Running (stays runnable, and runs on if it has had the least CPU; see
/// `yield_now`), Blocked (sleeps until woken) or Exited.
pub fn schedule() {
    switch_away(false, false);
}

/// Involuntary preemption (timer tick, end of a no-preempt section).
///
/// A task may be preempted after it marked itself Blocked but before it
/// re-tested its wait condition. It must not be put to sleep here: the wakeup
/// it is waiting for may already have happened (the waker found it still
/// running, or woke it before it marked itself), and it has not yet looked.
/// So preemption treats it as runnable (a spurious wakeup, which every wait
/// loop tolerates), as Linux's `__schedule(SM_PREEMPT)` does.
fn preempt_schedule() {
    switch_away(true, false);
}

/// Switch to the next task, in three steps: mark the switch point, pick who
/// runs next (maybe nobody else: then `prev` keeps the CPU), and switch.
/// `yielding`: a running `prev` goes after every other ready task (see
/// `take_ready`).
fn switch_away(preempted: bool, yielding: bool) {
    let irq = cpu::irq_save();
    let me = percpu::cpu_id();
    note_switch_point(me);
    charge_current(me);
    let prev_ptr = current_ptr() as *mut Task;
    if let Some(next) = pick_next(me, prev_ptr, preempted, yielding) {
        let why = if preempted {
            stats::Stat::SwitchPreempt
        } else {
            stats::Stat::SwitchVoluntary
        };
        stats::add(why, 1);
        if stats::enabled() && preempted && prev_is_user(prev_ptr) {
            stats::add(
                match class_of(me, &next) {
                    stats::Class::User => stats::Stat::UserPreemptedForUser,
                    _ => stats::Stat::UserPreemptedForKernel,
                },
                1,
            );
        }
        charge_runtime(me, prev_ptr);
        switch_to(me, prev_ptr, next);
    }
    cpu::irq_restore(irq);
}

/// The resched request is being answered, and the caller is outside any RCU
/// reader (readers cannot sleep or be preempted), so this is a quiescent
/// state even if we end up not switching (Linux's cond_resched() reports one
/// too).
fn note_switch_point(me: usize) {
    percpu::get(me).need_resched.store(false, Ordering::Relaxed);
    crate::rcu::note_context_switch();
}

/// Who runs next on CPU `me`, or `None` if `prev` keeps running.
fn pick_next(me: usize, prev_ptr: *mut Task, preempted: bool, yielding: bool) -> Option<Arc<Task>> {
    // SAFETY: we are the current task; the CPU's reference keeps it alive.
    let prev = unsafe { &*prev_ptr };
    let yielding = yielding
        && prev.state() == State::Running
        && !core::ptr::eq(prev_ptr, RQ[me].idle.load(Ordering::Relaxed));
    let mut q = requeue_prev(me, prev_ptr, preempted)?;
    let ready = take_ready(&mut q, me, prev_ptr, yielding);
    drop(q);
    let next = match ready {
        Some(t) => t,
        None => steal_or_idle(me, prev)?,
    };
    if core::ptr::eq(Arc::as_ptr(&next), prev_ptr) {
        // Re-picked ourselves (we were queued and nothing else was).
        prev.set_state(State::Running);
        return None;
    }
    Some(next)
}

/// Put `prev` where it belongs now, and return this CPU's queue, locked.
/// `None`: `prev` is still running and nobody else wants the CPU.
fn requeue_prev(
    me: usize,
    prev_ptr: *mut Task,
    preempted: bool,
) -> Option<SpinLockGuard<'static, FairQueue>> {
    let rq = &RQ[me];
    // SAFETY: as in `pick_next`.
    let prev = unsafe { &*prev_ptr };
    let idle_ptr = rq.idle.load(Ordering::Relaxed);
    let mut q = rq.queue.lock();
    let still_running = prev.state() == State::Running && !core::ptr::eq(prev_ptr, idle_ptr);
    raise_floor(
        rq,
        &q,
        still_running.then(|| prev.vruntime.load(Ordering::Relaxed)),
    );
    // One read of the affinity: another task may change it meanwhile.
    if let Some(target) = prev.pinned().filter(|&c| c != me && still_running) {
        // Pinned elsewhere since it last ran: hand it to that CPU.
        prev.set_state(State::Runnable);
        drop(q);
        // SAFETY: as below.
        enqueue(unsafe { clone_raw(prev_ptr) }, target);
        q = rq.queue.lock();
    } else if prev.state() == State::Running && !core::ptr::eq(prev_ptr, idle_ptr) {
        if q.is_empty() {
            // Nobody else wants this CPU: keep running.
            return None;
        }
        prev.set_state(State::Runnable);
        stats::note_requeued(prev, preempted);
        // SAFETY: `prev_ptr` came from Arc::into_raw; this adds the queue's
        // own strong reference (the CPU keeps its one until finish_switch).
        q.push(unsafe { clone_raw(prev_ptr) });
    } else if preempted && prev.transition(State::Blocked, State::Runnable) {
        // (If the transition fails, a waker already made it runnable and
        // queued it.)
        // SAFETY: as above.
        q.push(unsafe { clone_raw(prev_ptr) });
    }
    Some(q)
}

/// Take the queued task with the least virtual run time that is not still
/// being switched out elsewhere (`prev` itself qualifies). A `yielding`
/// `prev` goes after every other such task, whatever its run time: a yield
/// lets the others run (Linux's CFS skips a yielding task likewise).
fn take_ready(
    q: &mut FairQueue,
    me: usize,
    prev_ptr: *mut Task,
    yielding: bool,
) -> Option<Arc<Task>> {
    // Never wait for a task still being switched out elsewhere: two CPUs
    // each waiting for the other's outgoing task would deadlock. Skip
    // such a task (it stays queued; `need_resched` brings us back).
    let is_prev = |t: &Task| core::ptr::eq(t, prev_ptr);
    let ready = |t: &Task| is_prev(t) || !t.on_cpu.load(Ordering::Acquire);
    let next = yielding
        .then(|| q.take_min(|t| !is_prev(t) && ready(t)))
        .flatten()
        .or_else(|| q.take_min(ready));
    if next.is_none() && !q.is_empty() {
        percpu::get(me).need_resched.store(true, Ordering::Relaxed);
    }
    next
}

/// Nothing ready here: another CPU's task, else the idle task; `None` if
/// `prev` is the idle task and may as well keep running.
fn steal_or_idle(me: usize, prev: &Task) -> Option<Arc<Task>> {
    match steal(me) {
        Some(t) => Some(t),
        // Idle task with nothing to do.
        None if prev.state() == State::Running => None,
        // SAFETY: the idle task is never freed; its pointer came from
        // Arc::into_raw in init_this_cpu.
        None => Some(unsafe { clone_raw(RQ[me].idle.load(Ordering::Relaxed)) }),
    }
}

/// Make `next` this CPU's task and run it. Returns when `prev` runs again,
/// possibly on another CPU.
fn switch_to(me: usize, prev_ptr: *mut Task, next: Arc<Task>) {
    let rq = &RQ[me];
    // SAFETY: as in `pick_next`.
    let prev = unsafe { &*prev_ptr };
    claim(me, &next);
    crate::user::switch_address_space(&next, me);
    // SAFETY: we claimed `next` (on_cpu), so we are its switching CPU.
    let next_rsp = unsafe { next.saved_rsp() };
    // SAFETY: we run `prev` (interrupts off) and claimed `next`.
    unsafe { fpu::switch(prev, &next) };
    rq.prev.store(prev_ptr, Ordering::Relaxed);
    set_current(Arc::into_raw(next));
    // SAFETY: prev's `rsp` is written only here, by the CPU running prev (the
    // rule on `rsp_slot`); the next stack was prepared by `initial_stack` or
    // saved by this function.
    unsafe { switch::switch_stacks(prev.rsp_slot(), next_rsp) };
    // Back in `prev`, possibly on another CPU, switched to by someone else.
    finish_switch();
}

/// Statistics: what kind of task `t` is on CPU `me`.
fn class_of(me: usize, t: &Task) -> stats::Class {
    if core::ptr::eq(t, RQ[me].idle.load(Ordering::Relaxed)) {
        stats::Class::Idle
    } else if t.user.is_some() {
        stats::Class::User
    } else {
        stats::Class::Kernel
    }
}

fn prev_is_user(prev_ptr: *mut Task) -> bool {
    // SAFETY: as in `pick_next`.
    unsafe { &*prev_ptr }.user.is_some()
}

/// Statistics: the time `prev` (leaving CPU `me`) ran since it was switched in.
fn charge_runtime(me: usize, prev_ptr: *mut Task) {
    if !stats::enabled() {
        return;
    }
    let ran =
        crate::time::uptime_ns().saturating_sub(RQ[me].switched_in_ns.load(Ordering::Relaxed));
    // SAFETY: as in `pick_next`.
    let prev = unsafe { &*prev_ptr };
    prev.run_sum_ns.fetch_add(ran, Ordering::Relaxed);
    let stat = if core::ptr::eq(prev_ptr, RQ[me].idle.load(Ordering::Relaxed)) {
        stats::Stat::IdleNs
    } else if prev.user.is_some() {
        stats::Stat::UserTaskNs
    } else {
        stats::Stat::KernelTaskNs
    };
    stats::add(stat, ran);
}

/// Take `next` for CPU `me` and count the switch.
fn claim(me: usize, next: &Task) {
    let rq = &RQ[me];
    // We only pick tasks whose on_cpu we saw false (Acquire: their saved
    // context is visible), and only we can set it again now.
    debug_assert!(!next.on_cpu.load(Ordering::Acquire));
    next.on_cpu.store(true, Ordering::Relaxed);
    if !core::ptr::eq(next, rq.idle.load(Ordering::Relaxed)) {
        next.set_state(State::Running);
    }
    next.cpu.store(me, Ordering::Relaxed);
    next.switches.fetch_add(1, Ordering::Relaxed);
    next.ran_on.fetch_or(1 << me, Ordering::Relaxed);
    rq.nr_switches.fetch_add(1, Ordering::Relaxed);
    let now = crate::time::uptime_ns();
    rq.switched_in_ns.store(now, Ordering::Relaxed);
    rq.charged_ns.store(now, Ordering::Relaxed);
    let v = if core::ptr::eq(next, rq.idle.load(Ordering::Relaxed)) {
        u64::MAX
    } else {
        next.vruntime.load(Ordering::Relaxed)
    };
    rq.curr_vruntime.store(v, Ordering::Relaxed);
    if stats::enabled() {
        stats::woken_ran(next, next.woken_ns.swap(0, Ordering::Relaxed));
        stats::note_claimed(next, me);
        stats::class_switch(me, class_of(me, next), now);
    }
    set_label(rq, &next.name);
}

/// Runs on the new task right after a switch: release the previous task.
fn finish_switch() {
    let rq = rq();
    let prev = rq.prev.swap(core::ptr::null_mut(), Ordering::Relaxed);
    if prev.is_null() {
        return;
    }
    // SAFETY: `prev` is the CPU's reference to the task it just left.
    let prev = unsafe { Arc::from_raw(prev) };
    // Release: every write of prev's context (its saved rsp, its stack) is
    // visible to the CPU that next waits for on_cpu == false (Acquire).
    prev.on_cpu.store(false, Ordering::Release);
    // Dropping the CPU's reference may free an exited task's stack: we are
    // no longer on it.
    drop(prev);
}

/// # Safety
/// `p` must come from `Arc::into_raw` and still be alive.
unsafe fn clone_raw(p: *const Task) -> Arc<Task> {
    // SAFETY: the caller's contract.
    unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    }
}

/// Take an unpinned task from the busiest other queue: the one there with
/// the least virtual run time, which keeps its distance from that queue's
/// floor on ours (`fair::place`).
fn steal(me: usize) -> Option<Arc<Task>> {
    let victim = percpu::online_cpus()
        .map(|c| c.cpu_id as usize)
        .filter(|&c| c != me)
        .max_by_key(|&c| RQ[c].queue.lock().len())?;
    let mut q = RQ[victim].queue.lock();
    // Only a task no CPU is still switching out (see `switch_away`).
    let t = q.take_min(|t| t.pinned().is_none() && !t.on_cpu.load(Ordering::Acquire))?;
    let v = fair::place(
        t.vruntime.load(Ordering::Relaxed),
        RQ[victim].min_vruntime.load(Ordering::Relaxed),
        RQ[me].min_vruntime.load(Ordering::Relaxed),
    );
    t.vruntime.store(v, Ordering::Relaxed);
    stats::add(stats::Stat::Steals, 1);
    if stats::enabled() && t.user.is_some() {
        stats::add(stats::Stat::StealsUser, 1);
        let queued = t.queued_ns.load(Ordering::Relaxed);
        if queued != 0 && crate::time::uptime_ns().saturating_sub(queued) < 500_000 {
            stats::add(stats::Stat::StealsUserRecent, 1);
        }
        if t.requeued_ns.load(Ordering::Relaxed) != 0 {
            stats::add(stats::Stat::StealsUserPreempted, 1);
        }
    }
    Some(t)
}

#[unsafe(no_mangle)]
extern "C" fn task_first_run() -> ! {
    finish_switch();
    cpu::enable_interrupts();
    let t = current();
    // SAFETY: the task itself, on its first run.
    let entry = unsafe { t.take_entry() }.expect("task started twice");
    entry();
    exit(0)
}

/// End the current task.
pub fn exit(code: i64) -> ! {
    let t = current();
    crate::lockdep::check_task_exit(t);
    stats::task_exit(t);
    t.exit_code.store(code, Ordering::Relaxed);
    cpu::disable_interrupts();
    t.set_state(State::Exited);
    t.exited.wake_all();
    schedule();
    unreachable!("an exited task was scheduled again");
}

/// Wait for a task to exit; returns its exit code.
pub fn join(t: &Arc<Task>) -> i64 {
    join_unless(t, || false).expect("a join that cannot be stopped")
}

/// `join`, giving up (None) once `stop()` is true. Whoever makes `stop()`
/// true must then `wake` the joiner; a wakeup for any other reason is
/// harmless (the wait re-tests both conditions).
pub fn join_unless(t: &Arc<Task>, stop: impl Fn() -> bool) -> Option<i64> {
    t.exited.wait_until(|| t.state() == State::Exited || stop());
    (t.state() == State::Exited).then(|| t.exit_code.load(Ordering::Relaxed))
}

/// Let the other tasks ready on this CPU run first, whatever their run
/// time (a `schedule()` with the task still running instead lets it run on
/// if it has had the least CPU: that is how a task preempted while it went
/// to sleep comes back, see `preempt_schedule`).
pub fn yield_now() {
    switch_away(false, true);
}

/// Sleep for at least `ns` nanoseconds.
#[track_caller]
pub fn sleep_ns(ns: u64) {
    sleep_ns_unless(ns, || false);
}

/// Sleep for at least `ns` nanoseconds (true), or until `stop()` is true
/// (false). A deadline beyond the clock's range saturates at `u64::MAX`,
/// which the clock never reaches: such a sleep ends only by `stop()`.
/// Whoever makes `stop()` true must then `wake` the sleeper.
#[track_caller]
pub fn sleep_ns_unless(ns: u64, stop: impl Fn() -> bool) -> bool {
    crate::lockdep::might_sleep();
    let t = current();
    let deadline = crate::time::uptime_ns().saturating_add(ns);
    t.wake_at.store(deadline, Ordering::Relaxed);
    loop {
        if crate::time::uptime_ns() >= deadline {
            return true;
        }
        // Interrupts off: the sleeper list is the one of the CPU we are on,
        // and the tick (which takes that lock) cannot interrupt us holding it.
        let irq = cpu::irq_save();
        let cpu = percpu::cpu_id();
        t.set_state(State::Blocked);
        RQ[cpu].sleepers.lock().push(clone_current());
        // Tested after marking ourselves Blocked (SeqCst), this pairs with
        // the waker's change of the condition before its `wake` (SeqCst
        // compare-exchange of our state): either we see the change here, or
        // the waker sees us Blocked and wakes us.
        if stop() {
            remove_sleeper(cpu, t);
            cpu::irq_restore(irq);
            cancel_sleep(t);
            return false;
        }
        cpu::irq_restore(irq);
        schedule();
        // The tick removes the sleepers it wakes; any other wakeup leaves
        // our entry behind, which must not outlive the sleep.
        remove_sleeper(cpu, t);
        if stop() {
            return false;
        }
    }
}

fn remove_sleeper(cpu: usize, t: &Task) {
    RQ[cpu]
        .sleepers
        .lock_irqsave()
        .retain(|s| !core::ptr::eq(Arc::as_ptr(s), t));
}

/// A strong reference to the current task.
pub fn clone_current() -> Arc<Task> {
    let p = current_ptr();
    assert!(!p.is_null(), "no current task on cpu{}", percpu::cpu_id());
    // SAFETY: `current` came from Arc::into_raw and is alive while current.
    unsafe { clone_raw(p) }
}

/// Timer tick (interrupt context): wake sleepers, charge the running task,
/// and ask for a switch if a queued task has had less CPU by a granularity
/// (any queued task, if the idle task runs).
pub fn tick() {
    let rq = rq();
    if !STARTED.load(Ordering::Acquire) {
        return;
    }
    {
        let now = crate::time::uptime_ns();
        let mut s = rq.sleepers.lock();
        let mut i = 0;
        while i < s.len() {
            if s[i].wake_at.load(Ordering::Relaxed) <= now {
                let t = s.swap_remove(i);
                wake(&t);
            } else {
                i += 1;
            }
        }
    }
    let me = percpu::cpu_id();
    charge_current(me);
    let cur = current_ptr();
    let running = (!cur.is_null() && !core::ptr::eq(cur, rq.idle.load(Ordering::Relaxed)))
        // SAFETY: the CPU's reference keeps its current task alive.
        .then(|| unsafe { &*cur }.vruntime.load(Ordering::Relaxed));
    let resched = {
        let q = rq.queue.lock();
        raise_floor(rq, &q, running);
        match (running, q.min_vruntime()) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(r), Some(m)) => fair::tick_preempts(r, m),
        }
    };
    if resched {
        percpu::this().need_resched.store(true, Ordering::Relaxed);
    }
}

/// Called at the end of an interrupt (interrupts off): switch if asked and
/// allowed.
pub fn preempt_on_irq_exit() {
    if percpu::need_resched()
        && preempt::count() == 0
        && percpu::irq_depth() == 0
        && !current_ptr().is_null()
    {
        preempt_schedule();
    }
}

/// Called when the preempt count drops to zero outside interrupts.
pub fn preempt_point() {
    // The common case, nothing to do, costs one `gs:` load. If the flag is
    // stale (we moved right after reading it), a tick or the next preemption
    // point catches up.
    if !percpu::need_resched() || !cpu::interrupts_enabled() {
        return;
    }
    // Interrupts off while we look again, so we cannot move meanwhile
    // (`switch_away` turns them off anyway).
    cpu::disable_interrupts();
    if percpu::need_resched()
        && preempt::count() == 0
        && percpu::irq_depth() == 0
        && STARTED.load(Ordering::Acquire)
        && !current_ptr().is_null()
    {
        preempt_schedule();
    }
    cpu::enable_interrupts();
}

fn idle_loop() -> ! {
    let rq = rq();
    loop {
        crate::rcu::note_idle();
        cpu::disable_interrupts();
        if nothing_to_run(rq) {
            crate::rcu::enter_idle();
            let since = crate::time::uptime_ns();
            let switches = || rq.nr_switches.load(Ordering::Relaxed);
            if !idle_poll::poll(switches) && nothing_to_run(rq) {
                // `sti; hlt`: a wakeup IPI after our check still ends the halt.
                cpu::enable_interrupts_and_halt();
                idle_poll::halt_ended(crate::time::uptime_ns().saturating_sub(since));
            }
            crate::rcu::exit_idle();
        }
        cpu::enable_interrupts();
        schedule();
    }
}

/// With interrupts off: our queue is empty and no other CPU has a task we
/// may steal. Our queue's lock is let go before we look at the others'
/// (two idle CPUs each holding their own while taking the other's would
/// deadlock).
fn nothing_to_run(rq: &RunQueue) -> bool {
    let empty = rq.queue.lock().is_empty();
    empty && !any_stealable()
}

fn any_stealable() -> bool {
    let me = percpu::cpu_id();
    percpu::online_cpus()
        .filter(|c| c.cpu_id as usize != me)
        .any(|c| {
            RQ[c.cpu_id as usize]
                .queue
                .lock()
                .iter()
                .any(|t| t.pinned().is_none())
        })
}

/// Move the current task to `cpu` (its affinity must already say so).
pub fn migrate_current(cpu: usize) {
    debug_assert_eq!(current().pinned(), Some(cpu));
    schedule();
}

/// Total context switches on a CPU (tests, benchmarks).
pub fn nr_switches(cpu: usize) -> u64 {
    RQ[cpu].nr_switches.load(Ordering::Relaxed)
}

/// Run `f(cpu)` on every CPU in `mask`, one pinned task each, and wait.
pub fn run_on_cpus(mask: u64, f: &(dyn Fn(usize) + Sync)) {
    // SAFETY: we join every task before returning, so `f` outlives them;
    // only the lifetime is erased to satisfy `spawn`'s 'static bound.
    let f: &'static (dyn Fn(usize) + Sync) = unsafe { core::mem::transmute(f) };
    let tasks: Vec<_> = (0..MAX_CPUS)
        .filter(|c| mask & (1 << c) != 0)
        .map(|c| spawn("run_on_cpus", Some(c), move || f(c)))
        .collect();
    for t in &tasks {
        join(t);
    }
}
