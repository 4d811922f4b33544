//! Read-copy-update: classic, non-preemptible RCU.
//!
//! Readers: `read_lock()` disables preemption (nesting counted per CPU) and
//! costs about that. A reader therefore never context-switches, so once a CPU
//! has switched tasks, idled, returned to user mode, or taken a timer tick in
//! preemptible code, every reader it had before has finished: a *quiescent
//! state*.
//!
//! Grace periods are numbered. `GP_STARTED` is the newest one begun,
//! `GP_COMPLETED` the newest one finished; at most one is in progress. A CPU
//! reports a quiescent state by storing the current `GP_STARTED` into its
//! `qs_seq`. Grace period `g` is complete when every online CPU has
//! `qs_seq >= g` or is idle right now (an idle CPU holds no reader, so it
//! never holds up a grace period: Linux's dynticks-idle).
//!
//! Work that needs a grace period (`call_rcu`, `synchronize_rcu`) names the
//! one it needs, `target = GP_STARTED + 1`: the next grace period to *begin*,
//! which begins after the caller's removal of the old data. The `rcu_gp` task
//! starts grace periods while any target is outstanding and polls for their
//! end. A timer tick may also start one (so a request made by a reader that
//! then hogs its CPU still gets a grace period started).
//!
//! Callbacks stay on the CPU that queued them, as in Linux: `call_rcu`
//! appends to this CPU's list, and that CPU's own callback task (`rcu_cb/N`,
//! pinned there) runs them once their grace period is over, in the order
//! they were queued. So a CPU that retires a lot of memory also pays for
//! freeing it, rather than whichever CPU the grace-period task ran on. A
//! pinned task, not the tick or the return to user mode, because callbacks
//! take locks and free memory: they need process context, and a CPU that
//! never returns to user mode (a kernel test, an idle CPU) must still run
//! its callbacks. The grace-period task, when it completes a grace period,
//! runs the ready callbacks of the CPU it is on itself and wakes the
//! callback tasks of the other CPUs whose oldest callbacks waited for it.
//! Callbacks run in batches with preemption off (see `run_ready_batch`).
//!
//! Memory ordering: the QS stores and the loads that check them are SeqCst;
//! a reader's accesses precede its CPU's next QS store in program order, so
//! they happen-before the grace period's end, and so before any callback.
//! Readers meet publishers through `RcuPtr` (Release store / Acquire load).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::arch::percpu::{self, MAX_CPUS};
use crate::sched::{self, preempt};
use crate::sync::SpinLock;
use crate::sync::waitqueue::WaitQueue;
use mm::phases::Phase;

type PhaseTimer = mm::phases::Timer<crate::mm_platform::Kernel>;

type Callback = Box<dyn FnOnce() + Send>;

/// Callbacks that wait for the same grace period, in the order queued.
struct Segment {
    target: u64,
    callbacks: Vec<Callback>,
}

/// One CPU's callbacks, oldest first, in segments by the grace period they
/// wait for (Linux's `rcu_segcblist`). Targets grow along the list: each is
/// taken under the list's lock with interrupts off (see `call_rcu`), and
/// `GP_STARTED` never goes back. So the ready callbacks are a prefix of
/// whole segments.
struct CallbackList {
    segments: VecDeque<Segment>,
}

impl CallbackList {
    const fn new() -> Self {
        CallbackList {
            segments: VecDeque::new(),
        }
    }

    fn push(&mut self, target: u64, callback: Callback) {
        match self.segments.back_mut() {
            Some(last) if last.target == target => last.callbacks.push(callback),
            last => {
                assert!(
                    last.is_none_or(|l| l.target < target),
                    "rcu: callback targets went backwards"
                );
                self.segments.push_back(Segment {
                    target,
                    callbacks: alloc::vec![callback],
                });
            }
        }
    }

    /// The oldest callbacks' grace period is over.
    fn has_ready(&self, completed: u64) -> bool {
        self.segments.front().is_some_and(|s| s.target <= completed)
    }

    /// Remove up to `max` of the callbacks whose grace period is over,
    /// oldest first.
    fn take_ready(&mut self, completed: u64, max: usize) -> Vec<Callback> {
        let mut ready = Vec::new();
        while ready.len() < max && self.has_ready(completed) {
            let seg = self.segments.front_mut().expect("has_ready saw it");
            let n = seg.callbacks.len().min(max - ready.len());
            ready.extend(seg.callbacks.drain(..n));
            if seg.callbacks.is_empty() {
                self.segments.pop_front();
            }
        }
        ready
    }
}

struct CpuState {
    /// Newest grace period this CPU has passed a quiescent state in.
    qs_seq: AtomicU64,
    /// In the idle loop, halted or about to halt (no readers possible).
    idle: AtomicBool,
    /// Read-side nesting (for lockdep and tests).
    nesting: AtomicUsize,
    /// Callbacks queued on this CPU, by the grace period they wait for.
    callbacks: SpinLock<CallbackList>,
    /// This CPU's callback task sleeps here until its oldest callbacks are
    /// ready.
    callbacks_ready: WaitQueue,
    /// Grace periods in which this CPU was let off because it was idle.
    idle_passes: AtomicU64,
    /// uptime_ns at this CPU's latest timer tick (stall reports: a CPU whose
    /// ticks stopped is stuck with interrupts off).
    last_tick_ns: AtomicU64,
}

static CPUS: [CpuState; MAX_CPUS] = [const {
    CpuState {
        qs_seq: AtomicU64::new(0),
        idle: AtomicBool::new(false),
        nesting: AtomicUsize::new(0),
        callbacks: SpinLock::new(CallbackList::new()),
        callbacks_ready: WaitQueue::new(),
        idle_passes: AtomicU64::new(0),
        last_tick_ns: AtomicU64::new(0),
    }
}; MAX_CPUS];

static GP_STARTED: AtomicU64 = AtomicU64::new(0);
static GP_COMPLETED: AtomicU64 = AtomicU64::new(0);
/// Highest grace period anyone is waiting for.
static GP_REQUESTED: AtomicU64 = AtomicU64::new(0);
/// uptime_ns when the current grace period started.
static GP_START_NS: AtomicU64 = AtomicU64::new(0);
/// Grace period for which a stall was last reported (one report each).
static STALL_REPORTED: AtomicU64 = AtomicU64::new(0);
static STALL_TIMEOUT_MS: AtomicU64 = AtomicU64::new(10_000);
pub static STALL_WARNINGS: AtomicU64 = AtomicU64::new(0);
/// CPUs named by the latest stall warning (bitmask).
pub static LAST_STALL_CPUS: AtomicU64 = AtomicU64::new(0);
static RUNNING: AtomicBool = AtomicBool::new(false);
/// The grace-period task, for stall reports (one reference, never dropped:
/// the task never exits).
static GP_TASK: AtomicPtr<sched::Task> = AtomicPtr::new(core::ptr::null_mut());

/// The grace-period task sleeps here; requests wake it.
static GP_WORK: WaitQueue = WaitQueue::new();
/// `synchronize_rcu` callers sleep here until their grace period completes.
static GP_DONE: WaitQueue = WaitQueue::new();
/// `rcu_barrier` callers sleep here until every CPU has run their markers.
static BARRIER_DONE: WaitQueue = WaitQueue::new();

fn this() -> &'static CpuState {
    &CPUS[percpu::cpu_id()]
}

// ---------------------------------------------------------------- readers --

/// Proof of being inside a read-side critical section. Not `Send`: the
/// section belongs to this CPU.
pub struct RcuReadGuard {
    _not_send: PhantomData<*const ()>,
}

#[inline]
pub fn read_lock() -> RcuReadGuard {
    preempt::disable();
    this().nesting.fetch_add(1, Ordering::Relaxed);
    RcuReadGuard {
        _not_send: PhantomData,
    }
}

impl Drop for RcuReadGuard {
    #[inline]
    fn drop(&mut self) {
        this().nesting.fetch_sub(1, Ordering::Relaxed);
        preempt::enable();
    }
}

/// Read-side nesting depth on this CPU.
pub fn nesting() -> usize {
    // Preemption off: outside a reader we could otherwise read the count of
    // a CPU we have just left, in the middle of someone else's reader.
    let _stay = preempt::guard();
    this().nesting.load(Ordering::Relaxed)
}

/// A pointer published under RCU: writers swap it (Release), readers load it
/// (Acquire) inside a read-side section and may use the target until the
/// section ends.
pub struct RcuPtr<T> {
    ptr: AtomicPtr<T>,
}

impl<T> RcuPtr<T> {
    pub const fn null() -> Self {
        RcuPtr {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Read inside a read-side section; the reference lives as long as it.
    pub fn read<'g>(&self, _guard: &'g RcuReadGuard) -> Option<&'g T> {
        // Acquire pairs with the Release in `replace`: the object's contents
        // as the writer initialised them are visible.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: a published object is freed only after a grace period that
        // starts after it is unpublished, and `_guard` holds off that grace
        // period for as long as the reference lives.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// Publish `new`; returns the old object, which readers may still hold:
    /// free it with `call_rcu` (or after `synchronize_rcu`).
    pub fn replace(&self, new: Box<T>) -> Option<Box<T>> {
        let old = self.ptr.swap(Box::into_raw(new), Ordering::AcqRel);
        // SAFETY: `old` came from Box::into_raw in an earlier `replace`.
        (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
    }
}

// -------------------------------------------------------- quiescent states --

fn report_qs() {
    // SeqCst: this CPU's earlier read-side accesses come first in program
    // order; the grace-period task's SeqCst load of qs_seq then orders them
    // before the grace period ends (and before its callbacks run).
    this()
        .qs_seq
        .store(GP_STARTED.load(Ordering::SeqCst), Ordering::SeqCst);
}

/// Called by the scheduler on every context switch. The task switched to
/// may be about to run readers, so the CPU stops counting as idle.
pub fn note_context_switch() {
    this().idle.store(false, Ordering::SeqCst);
    report_qs();
}

/// Called by the idle loop before it halts.
pub fn note_idle() {
    report_qs();
}

/// The idle loop brackets its halt with these: while `idle` is set, this CPU
/// holds no reader. Interrupts taken while idle clear it (see `irq_enter`).
pub fn enter_idle() {
    this().idle.store(true, Ordering::SeqCst);
}

pub fn exit_idle() {
    this().idle.store(false, Ordering::SeqCst);
}

/// An interrupt may run readers: it must not count as idle meanwhile.
/// Returns whether the CPU was idle, for `irq_exit`.
pub fn irq_enter() -> bool {
    let s = this();
    let was = s.idle.load(Ordering::Relaxed);
    if was {
        s.idle.store(false, Ordering::SeqCst);
    }
    was
}

pub fn irq_exit(was_idle: bool) {
    if was_idle {
        this().idle.store(true, Ordering::SeqCst);
    }
}

/// Timer tick. A tick that interrupted user mode, or kernel code with
/// preemption enabled (so not inside a reader), is a quiescent state.
pub fn note_tick(from_user: bool) {
    if !RUNNING.load(Ordering::Relaxed) {
        return;
    }
    this()
        .last_tick_ns
        .store(crate::time::uptime_ns(), Ordering::Relaxed);
    if from_user || preempt::count() == 0 {
        report_qs();
    }
    maybe_start_gp();
    check_stall();
}

/// Returning to user mode: no kernel reader can be open.
pub fn note_user_return() {
    report_qs();
}

// ---------------------------------------------------------- grace periods --

fn gp_in_progress() -> bool {
    GP_STARTED.load(Ordering::SeqCst) != GP_COMPLETED.load(Ordering::SeqCst)
}

/// Start a grace period if one is wanted and none is running.
fn maybe_start_gp() {
    let done = GP_COMPLETED.load(Ordering::SeqCst);
    if GP_REQUESTED.load(Ordering::SeqCst) > done
        && GP_STARTED
            .compare_exchange(done, done + 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        GP_START_NS.store(crate::time::uptime_ns(), Ordering::Relaxed);
    }
}

/// CPUs still holding up grace period `g` (bitmask).
fn holdouts(g: u64) -> u64 {
    let mut mask = 0;
    for c in percpu::online_cpus() {
        let s = &CPUS[c.cpu_id as usize];
        if s.qs_seq.load(Ordering::SeqCst) >= g {
            continue;
        }
        if s.idle.load(Ordering::SeqCst) {
            s.idle_passes.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        mask |= 1 << c.cpu_id;
    }
    mask
}

fn check_stall() {
    let g = GP_STARTED.load(Ordering::SeqCst);
    if !gp_in_progress() || STALL_REPORTED.load(Ordering::Relaxed) == g {
        return;
    }
    let age_ms =
        crate::time::uptime_ns().saturating_sub(GP_START_NS.load(Ordering::Relaxed)) / 1_000_000;
    if age_ms < STALL_TIMEOUT_MS.load(Ordering::Relaxed) {
        return;
    }
    if STALL_REPORTED.swap(g, Ordering::Relaxed) == g {
        return; // another CPU's tick reported it
    }
    let cpus = holdouts(g);
    let mut who = String::new();
    for c in (0..MAX_CPUS).filter(|c| cpus & (1 << c) != 0) {
        let running = sched::current_name_on(c);
        who.push_str(&alloc::format!(" cpu{c} (running '{running}')"));
    }
    if cpus == 0 {
        who.push_str(" no CPU (so the grace-period task is not polling)");
    }
    LAST_STALL_CPUS.store(cpus, Ordering::Relaxed);
    STALL_WARNINGS.fetch_add(1, Ordering::Relaxed);
    crate::warn!(
        "rcu: INFO: grace period {g} stalled for {age_ms} ms, held up by:{who}\n{}",
        stall_details()
    );
}

/// Why a grace period may not be ending: the counters, every CPU's
/// quiescent-state record, the grace-period task and the run queues. Runs
/// in the tick, so it only loads atomics and tries locks.
fn stall_details() -> String {
    let mut s = alloc::format!(
        "rcu: requested {} started {} completed {}",
        GP_REQUESTED.load(Ordering::SeqCst),
        GP_STARTED.load(Ordering::SeqCst),
        GP_COMPLETED.load(Ordering::SeqCst),
    );
    let now = crate::time::uptime_ns();
    for pc in percpu::online_cpus() {
        let st = &CPUS[pc.cpu_id as usize];
        s.push_str(&alloc::format!(
            "\n  cpu{}: qs_seq {} idle {} nesting {} preempt_count {} irq_depth {} last tick {} ms ago",
            pc.cpu_id,
            st.qs_seq.load(Ordering::SeqCst),
            st.idle.load(Ordering::SeqCst),
            st.nesting.load(Ordering::Relaxed),
            pc.preempt_count.load(Ordering::Relaxed),
            pc.irq_depth.load(Ordering::Relaxed),
            now.saturating_sub(st.last_tick_ns.load(Ordering::Relaxed)) / 1_000_000,
        ));
    }
    let gp = GP_TASK.load(Ordering::Acquire);
    if !gp.is_null() {
        // SAFETY: `init` leaked one reference to the task, which never exits.
        let t = unsafe { &*gp };
        s.push_str("\nrcu: grace-period ");
        s.push_str(&sched::diag::describe_task(t));
    }
    s.push_str("\nsched:");
    s.push_str(&sched::diag::describe_cpus());
    s
}

/// Callers that need a grace period: the target, and whether this call is
/// the first to ask for it (then the caller must wake the grace-period task;
/// otherwise whoever asked first has woken it, or will).
fn request_gp() -> (u64, bool) {
    let target = GP_STARTED.load(Ordering::SeqCst) + 1;
    let before = GP_REQUESTED.fetch_max(target, Ordering::SeqCst);
    (target, before < target)
}

/// Run `callback` after a grace period, on this CPU. Never sleeps; may be
/// called inside a read-side section or with locks held.
pub fn call_rcu(callback: Callback) {
    let _t = PhaseTimer::start(Phase::CallRcu);
    let first = {
        let _p = preempt::guard(); // this CPU's list, whichever that is
        enqueue(this(), callback)
    };
    // Only the first request for a grace period wakes the task: a later one
    // finds `GP_REQUESTED` already at its target, and the task re-tests that
    // (SeqCst, after the first requester's `fetch_max`) before it sleeps, so
    // it cannot sleep through it. Waking on every call cost a wait-queue
    // lock per `call_rcu`, three per `mmap` + `mprotect` + `munmap`.
    if first && RUNNING.load(Ordering::Relaxed) {
        GP_WORK.wake_one();
    }
}

/// Append `callback` to `cpu`'s list, waiting for the next grace period to
/// begin; returns whether this was the first request for it (`request_gp`).
///
/// The target is taken under the list's lock, with interrupts off: the
/// targets on one list cannot go backwards (an interrupt's `call_rcu`
/// cannot slip in between), and the grace period named cannot end before
/// the callback is on the list, since it needs a quiescent state from the
/// CPU running this (not idle, interrupts off), which cannot report one
/// until the lock is let go. So the
/// grace-period task, which looks at the list after the grace period
/// ends, always sees the callback and wakes the list's callback task.
fn enqueue(cpu: &CpuState, callback: Callback) -> bool {
    let mut list = cpu.callbacks.lock_irqsave();
    let (target, first) = request_gp();
    list.push(target, callback);
    first
}

/// Sleep until a full grace period has elapsed.
#[track_caller]
pub fn synchronize_rcu() {
    crate::lockdep::might_sleep();
    let (target, _) = request_gp();
    GP_WORK.wake_one();
    GP_DONE.wait_until(|| GP_COMPLETED.load(Ordering::SeqCst) >= target);
}

/// Wait until every callback queued before this call, on any CPU, has run.
pub fn rcu_barrier() {
    crate::lockdep::might_sleep();
    let cpus: Vec<usize> = percpu::online_cpus().map(|c| c.cpu_id as usize).collect();
    let left = alloc::sync::Arc::new(AtomicUsize::new(cpus.len()));
    for &c in &cpus {
        // Each CPU runs its list in order, so a marker at the end of every
        // list runs after everything queued there before it.
        let left = left.clone();
        enqueue(
            &CPUS[c],
            Box::new(move || {
                // SeqCst pairs with the load in the wait below (and the
                // callbacks before this marker happen-before it: same task).
                if left.fetch_sub(1, Ordering::SeqCst) == 1 {
                    BARRIER_DONE.wake_all();
                }
            }),
        );
    }
    GP_WORK.wake_one();
    BARRIER_DONE.wait_until(|| left.load(Ordering::SeqCst) == 0);
}

/// Run the callbacks on `cpu`'s list whose grace period is over.
/// Most callbacks one runner takes at a time, with preemption off.
const BATCH: usize = 32;

/// Run up to `BATCH` of this CPU's ready callbacks; returns how many ran.
/// Preemption is off throughout, so they run on this CPU (whose list it
/// is), and no other runner on this CPU (its callback task, or the
/// grace-period task passing through) can start a later batch before this
/// one ends: callbacks run strictly in the order queued (`rcu_barrier`
/// relies on it). So callbacks must not sleep, as in Linux (where they run
/// in softirq); lockdep reports one that does.
fn run_ready_batch() -> usize {
    let _stay = preempt::guard();
    let ready = this()
        .callbacks
        .lock_irqsave()
        .take_ready(GP_COMPLETED.load(Ordering::SeqCst), BATCH);
    if ready.is_empty() {
        return 0;
    }
    let _t = PhaseTimer::start(Phase::RcuCallbacks);
    let n = ready.len();
    for cb in ready {
        cb();
    }
    n
}

fn has_ready_callbacks(cpu: &CpuState) -> bool {
    cpu.callbacks
        .lock_irqsave()
        .has_ready(GP_COMPLETED.load(Ordering::SeqCst))
}

/// CPU `cpu`'s callback task (pinned there). Preemptible, in process
/// context, like the grace-period task that used to run every CPU's
/// callbacks.
fn callback_task(cpu: usize) {
    let s = &CPUS[cpu];
    loop {
        s.callbacks_ready.wait_until(|| has_ready_callbacks(s));
        while run_ready_batch() != 0 {}
    }
}

/// A grace period has just completed: wake the callback tasks of the CPUs
/// (but `except`) whose oldest callbacks waited for it (or an earlier one).
/// The task tests its list again under its wait queue's lock after
/// `GP_COMPLETED` was stored, so a task that has not gone to sleep yet sees
/// the change itself.
fn wake_callback_tasks(except: Option<usize>) {
    for c in percpu::online_cpus().filter(|c| Some(c.cpu_id as usize) != except) {
        let s = &CPUS[c.cpu_id as usize];
        if has_ready_callbacks(s) {
            s.callbacks_ready.wake_one();
        }
    }
}

/// The grace-period task.
fn gp_task() {
    loop {
        GP_WORK.wait_until(|| {
            GP_REQUESTED.load(Ordering::SeqCst) > GP_COMPLETED.load(Ordering::SeqCst)
        });
        maybe_start_gp();
        let g = GP_STARTED.load(Ordering::SeqCst);
        // This task holds no reader (it runs with preemption enabled), so its
        // CPU is quiescent right now: with the other CPUs idle the grace
        // period ends without waiting for a tick. Each sleep below is a
        // quiescent state too. (Unpinned: preemption off so the state we
        // report is that of the CPU we are on, not one we just left.)
        {
            let _stay = preempt::guard();
            report_qs();
        }
        while holdouts(g) != 0 {
            sched::sleep_ns(1_000_000);
        }
        GP_COMPLETED.store(g, Ordering::SeqCst);
        // The other CPUs' callback tasks first, so that they run in
        // parallel with us. The callbacks queued on the CPU we are on run
        // here and now, as they did when this task ran every CPU's: waking
        // this CPU's callback task instead queued them behind whoever runs
        // here, a tick or more, while a program freeing and allocating
        // memory kept both (`vma_spam_cannot_spend_the_kernel_reserve` ran
        // out of frames).
        let me = {
            let _stay = preempt::guard();
            percpu::cpu_id()
        };
        wake_callback_tasks(Some(me));
        while run_ready_batch() != 0 {}
        // Moved off `me` before we ran its callbacks: its task runs them.
        if has_ready_callbacks(&CPUS[me]) {
            CPUS[me].callbacks_ready.wake_one();
        }
        GP_DONE.wake_all();
    }
}

pub fn init() {
    if let Some(ms) = crate::BOOT
        .get()
        .and_then(|b| b.cmdline.get("rcu.stall_ms"))
        .and_then(|v| v.parse().ok())
    {
        STALL_TIMEOUT_MS.store(ms, Ordering::Relaxed);
    }
    // The callback tasks first: the grace-period task wakes them.
    for c in percpu::online_cpus().map(|c| c.cpu_id as usize) {
        // Never joined and never exit: the scheduler's reference keeps
        // them.
        drop(sched::spawn(
            &alloc::format!("rcu_cb/{c}"),
            Some(c),
            move || callback_task(c),
        ));
    }
    let t = sched::spawn("rcu_gp", None, gp_task);
    // Release pairs with the Acquire in `stall_details`.
    GP_TASK.store(
        alloc::sync::Arc::into_raw(t) as *mut sched::Task,
        Ordering::Release,
    );
    RUNNING.store(true, Ordering::Release);
}

pub fn set_stall_timeout_ms(ms: u64) -> u64 {
    STALL_TIMEOUT_MS.swap(ms, Ordering::Relaxed)
}

pub fn completed() -> u64 {
    GP_COMPLETED.load(Ordering::SeqCst)
}

pub fn started() -> u64 {
    GP_STARTED.load(Ordering::SeqCst)
}

pub fn idle_passes(cpu: usize) -> u64 {
    CPUS[cpu].idle_passes.load(Ordering::Relaxed)
}
