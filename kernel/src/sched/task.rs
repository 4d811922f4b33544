//! A task: a kernel stack, a saved stack pointer, and a state.
//!
//! State machine (an atomic, changed by compare-exchange so a wakeup and the
//! task's own decision to sleep cannot both win):
//!
//! ```text
//!   Runnable --(picked)--> Running --(prepare_to_sleep)--> Blocked
//!      ^                      |  \                            |
//!      +----(preempt/yield)---+   +--(exit)--> Exited         |
//!      +----------------------(wake)--------------------------+
//! ```
//!
//! `on_cpu` is true from the moment a CPU picks the task until the *next*
//! task on that CPU has finished switching away from it. Another CPU that
//! wants to run the task waits for `on_cpu == false`, so a task's stack is
//! never live on two CPUs at once (Linux's `p->on_cpu`).
//!
//! # Who touches the cells
//!
//! The fields that are not atomics are private, and each is reached only
//! through a method whose contract names who may use it:
//!
//! - the saved stack pointer and the x87/SSE image: the *switching CPU*,
//!   which runs the task or has claimed it by setting `on_cpu` (so no other
//!   CPU can be switching it at the same time);
//! - the entry closure: the task itself, once, on its first run;
//! - the held-lock list (lockdep): the task itself, with interrupts off;
//! - the user-thread state: the task itself, through a `RefCell` (a nested
//!   borrow is a kernel bug and panics), reached only as the current task.
//!
//! A task under construction (`&mut Task`, before it is shared) may set
//! anything.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::cell::{RefCell, RefMut, UnsafeCell};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::memory::kstack::KernelStack;
use crate::sync::waitqueue::WaitQueue;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Runnable = 0,
    Running = 1,
    Blocked = 2,
    Exited = 3,
}

pub const NO_CPU: usize = usize::MAX;

pub struct Task {
    pub id: u64,
    pub name: String,
    state: AtomicU8,
    pub on_cpu: AtomicBool,
    /// The CPU whose run queue holds (or last held) this task.
    pub cpu: AtomicUsize,
    /// The CPU whose queue the task was first put on (tests, diagnostics).
    pub placed_on: AtomicUsize,
    /// Pinned to this CPU, or NO_CPU.
    pub affinity: AtomicUsize,
    /// Saved stack pointer while not running (the switching CPU's).
    rsp: UnsafeCell<u64>,
    /// A user thread's x87/SSE registers while it is not running (see
    /// `sched::fpu`); the initial image until it first runs. The switching
    /// CPU's.
    fpu: UnsafeCell<super::fpu::FpuState>,
    /// None for the boot task, which runs on the boot stack.
    pub stack: Option<KernelStack>,
    /// What the task runs; taken by the task itself on its first run.
    entry: UnsafeCell<Option<Box<dyn FnOnce() + Send>>>,
    pub exit_code: AtomicI64,
    pub exited: WaitQueue,
    /// Times this task was switched in, and on which CPUs (bitmask).
    pub switches: AtomicU64,
    pub ran_on: AtomicU64,
    /// Wake deadline (ns since boot) while sleeping in `sleep_ns`.
    pub wake_at: AtomicU64,
    /// Virtual run time (see `sched::fair`): nanoseconds of CPU consumed,
    /// on the timeline of the CPU whose queue holds it or last held it
    /// (`cpu`). Added to by the CPU running the task, as it charges its run
    /// time; set by whoever places it on a queue (`enqueue_as`, `steal`).
    /// Both may happen at once (a waker places a task that is still leaving
    /// its CPU): one of the two is off by the last few microseconds run.
    pub vruntime: AtomicU64,
    /// Statistics (`stats`): when the task was last put back in its CPU's
    /// queue still runnable (preempted or yielding; ns since boot), 0 if it
    /// has been woken since, to tell the steals of the two kinds apart.
    pub requeued_ns: AtomicU64,
    /// When the last wakeup queued this task (ns since boot; 0: not woken
    /// since it last ran), for `stats`.
    pub woken_ns: AtomicU64,
    /// Statistics (`stats`): when the task was last queued (ns since boot),
    /// its total time queued, its total time running, and how often it was
    /// preempted.
    pub queued_ns: AtomicU64,
    pub wait_sum_ns: AtomicU64,
    pub run_sum_ns: AtomicU64,
    pub preempted: AtomicU64,
    /// Statistics (`stats`): what its CPUs did while it waited in a queue.
    pub waits: super::stats::TaskWaits,
    /// Locks held, for lockdep; touched only by the task itself with
    /// interrupts disabled.
    held: UnsafeCell<crate::lockdep::HeldLocks>,
    /// Set by a user thread as it starts to exit: from then on the scheduler
    /// runs it on the kernel's page table, since its process's may be freed.
    pub left_mm: AtomicBool,
    /// The process this task is a thread of (None: a kernel task).
    pub user: Option<Arc<crate::user::Process>>,
    /// User-thread state, touched only by the thread itself
    /// ([`current_uthread`]).
    uthread: RefCell<crate::user::ThreadState>,
}

// SAFETY: the cells are touched only under the rules in the module comment,
// which the methods below carry as their contracts: `rsp` and `fpu` by the
// CPU switching the task (serialized by `on_cpu`), `entry` once by the
// task's first run, `held` and `uthread` by the task itself (a task runs on
// one CPU at a time, and the switch orders one CPU's accesses before the
// next's: `on_cpu` Release/Acquire).
unsafe impl Sync for Task {}
// SAFETY: as above; a task moves between CPUs only through the run queues.
unsafe impl Send for Task {}

impl Task {
    pub fn new(
        id: u64,
        name: String,
        stack: Option<KernelStack>,
        entry: Option<Box<dyn FnOnce() + Send>>,
    ) -> Self {
        // A new stack starts out as if it had been switched away from just
        // before `task_trampoline`; the boot task's is saved at its first
        // switch.
        let rsp = stack
            .as_ref()
            .map_or(0, |s| super::switch::initial_stack(s.top()));
        Task {
            id,
            name,
            state: AtomicU8::new(State::Runnable as u8),
            on_cpu: AtomicBool::new(false),
            cpu: AtomicUsize::new(0),
            affinity: AtomicUsize::new(NO_CPU),
            placed_on: AtomicUsize::new(NO_CPU),
            rsp: UnsafeCell::new(rsp),
            fpu: UnsafeCell::new(super::fpu::FpuState::initial()),
            stack,
            entry: UnsafeCell::new(entry),
            exit_code: AtomicI64::new(0),
            exited: WaitQueue::new(),
            switches: AtomicU64::new(0),
            ran_on: AtomicU64::new(0),
            wake_at: AtomicU64::new(0),
            vruntime: AtomicU64::new(0),
            requeued_ns: AtomicU64::new(0),
            woken_ns: AtomicU64::new(0),
            queued_ns: AtomicU64::new(0),
            wait_sum_ns: AtomicU64::new(0),
            run_sum_ns: AtomicU64::new(0),
            preempted: AtomicU64::new(0),
            waits: super::stats::TaskWaits::new(),
            held: UnsafeCell::new(crate::lockdep::HeldLocks::new()),
            left_mm: AtomicBool::new(false),
            user: None,
            uthread: RefCell::new(crate::user::ThreadState::default()),
        }
    }

    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            0 => State::Runnable,
            1 => State::Running,
            2 => State::Blocked,
            _ => State::Exited,
        }
    }

    pub fn set_state(&self, s: State) {
        // SeqCst: a sleeper's store of Blocked must be ordered before its
        // re-check of the wait condition (pairs with the waker's fence after
        // it changes the condition; see `sync::rcuwait`).
        self.state.store(s as u8, Ordering::SeqCst);
    }

    pub fn transition(&self, from: State, to: State) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    pub fn pinned(&self) -> Option<usize> {
        let a = self.affinity.load(Ordering::Relaxed);
        (a != NO_CPU).then_some(a)
    }

    /// Make this (unshared) task a thread of `process` with user state
    /// `uthread`.
    pub fn set_user(
        &mut self,
        process: Arc<crate::user::Process>,
        uthread: crate::user::ThreadState,
    ) {
        self.user = Some(process);
        *self.uthread.get_mut() = uthread;
    }

    /// The stack pointer saved when the task last switched away.
    ///
    /// # Safety
    /// The caller is the switching CPU: it has claimed the task (set
    /// `on_cpu` after seeing it false with Acquire), so nobody writes `rsp`.
    pub(super) unsafe fn saved_rsp(&self) -> u64 {
        // SAFETY: no writer while we own the switch (the caller's contract).
        unsafe { *self.rsp.get() }
    }

    /// Where `switch_stacks` saves the stack pointer as the task leaves.
    /// Only the CPU running the task may write through it (it is then the
    /// switching CPU); others read it only after claiming the task.
    pub(super) fn rsp_slot(&self) -> *mut u64 {
        self.rsp.get()
    }

    /// Store this CPU's x87/SSE registers into the task.
    ///
    /// # Safety
    /// The caller is the switching CPU, switching this task out (it runs it,
    /// with interrupts off).
    pub(super) unsafe fn save_fpu(&self) {
        // SAFETY: only we touch the image now (the caller's contract).
        unsafe { super::fpu::save(self.fpu.get()) }
    }

    /// Load this CPU's x87/SSE registers from the task.
    ///
    /// # Safety
    /// The caller is the switching CPU, switching this task in (it has
    /// claimed it, with interrupts off).
    pub(super) unsafe fn restore_fpu(&self) {
        // SAFETY: only we touch the image now (the caller's contract).
        unsafe { super::fpu::restore(self.fpu.get()) }
    }

    /// The task's entry closure; `None` once taken.
    ///
    /// # Safety
    /// Called by the task itself (it is the current task), on its first
    /// run: nobody else touches `entry`.
    pub(super) unsafe fn take_entry(&self) -> Option<Box<dyn FnOnce() + Send>> {
        // SAFETY: the only access, by the task itself (the caller's contract).
        unsafe { (*self.entry.get()).take() }
    }

    /// Run `f` on the task's held-lock list (lockdep).
    ///
    /// # Safety
    /// The caller is the task itself (the current task), with interrupts
    /// off, and does not call this again inside `f`: then the reference
    /// `f` gets is the only one.
    pub unsafe fn with_held_locks<R>(
        &self,
        f: impl FnOnce(&mut crate::lockdep::HeldLocks) -> R,
    ) -> R {
        // SAFETY: the caller's contract: no other reference exists.
        f(unsafe { &mut *self.held.get() })
    }
}

/// The running user thread's own state, borrowed until the guard drops.
/// Safe because it can only be the caller's own: no other task touches a
/// task's `uthread` (a thread's state is set while its task is unshared,
/// `Task::set_user`), and a second borrow while one is held is a kernel bug
/// that panics here.
pub fn current_uthread() -> RefMut<'static, crate::user::ThreadState> {
    super::current().uthread.borrow_mut()
}
