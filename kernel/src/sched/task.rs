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

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
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
    /// Saved stack pointer while not running.
    pub rsp: UnsafeCell<u64>,
    /// A user thread's x87/SSE registers while it is not running (see
    /// `sched::fpu`); the initial image until it first runs.
    pub fpu: UnsafeCell<super::fpu::FpuState>,
    /// None for the boot task, which runs on the boot stack.
    pub stack: Option<KernelStack>,
    pub entry: UnsafeCell<Option<Box<dyn FnOnce() + Send>>>,
    pub exit_code: AtomicI64,
    pub exited: WaitQueue,
    /// Times this task was switched in, and on which CPUs (bitmask).
    pub switches: AtomicU64,
    pub ran_on: AtomicU64,
    /// Wake deadline (ns since boot) while sleeping in `sleep_ns`.
    pub wake_at: AtomicU64,
    /// Locks held, for lockdep; touched only by the task itself with
    /// interrupts disabled.
    pub held: UnsafeCell<crate::lockdep::HeldLocks>,
    /// Set by a user thread as it starts to exit: from then on the scheduler
    /// runs it on the kernel's page table, since its process's may be freed.
    pub left_mm: AtomicBool,
    /// The process this task is a thread of (None: a kernel task).
    pub user: Option<Arc<crate::user::Process>>,
    /// User-thread state touched only by the thread itself.
    pub uthread: UnsafeCell<crate::user::ThreadState>,
}

// SAFETY: the `UnsafeCell` fields are touched only under the protocol
// documented on each: `rsp` and `fpu` by the CPU switching the task
// (serialized by `on_cpu`), `entry` once by the task's first run, `held` by the task itself.
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
        Task {
            id,
            name,
            state: AtomicU8::new(State::Runnable as u8),
            on_cpu: AtomicBool::new(false),
            cpu: AtomicUsize::new(0),
            affinity: AtomicUsize::new(NO_CPU),
            placed_on: AtomicUsize::new(NO_CPU),
            rsp: UnsafeCell::new(0),
            fpu: UnsafeCell::new(super::fpu::FpuState::initial()),
            stack,
            entry: UnsafeCell::new(entry),
            exit_code: AtomicI64::new(0),
            exited: WaitQueue::new(),
            switches: AtomicU64::new(0),
            ran_on: AtomicU64::new(0),
            wake_at: AtomicU64::new(0),
            held: UnsafeCell::new(crate::lockdep::HeldLocks::new()),
            left_mm: AtomicBool::new(false),
            user: None,
            uthread: UnsafeCell::new(crate::user::ThreadState::default()),
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
}
