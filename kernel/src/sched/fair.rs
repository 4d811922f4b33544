//! Which queued task runs next: the one that has had the least CPU time.
//!
//! Every task carries a virtual run time (`Task::vruntime`): the
//! nanoseconds of CPU it has consumed, counted on the timeline of the CPU
//! whose queue holds it. Each CPU keeps `min_vruntime`, a floor that only
//! rises: the smallest virtual run time among its running and queued
//! tasks. As under Linux's CFS:
//!
//! - the pick takes the queued task with the smallest virtual run time
//!   (`FairQueue::take_min`), so a task that sleeps a lot runs promptly
//!   when it wakes, and tasks that never sleep share what is left;
//! - a woken task keeps its distance from the CPU's floor, but may be at
//!   most `SLEEPER_CREDIT_NS` below it (`place`): however long it slept,
//!   it then runs at most about that much before the others' turn comes;
//! - a new task starts a little above the floor (`NEW_TASK_DEBIT_NS`);
//! - a woken (or new) task preempts the running one only if it has had
//!   less CPU by more than `WAKEUP_GRAN_NS` (`wakeup_preempts`), and the
//!   tick preempts the running task only for a queued one that has had
//!   less by as much (`tick_preempts`): so two busy tasks on one CPU take
//!   turns a tick at a time, not at every wakeup.
//!
//! Nothing can starve: a queued task's virtual run time stands still (but
//! for the last run time charged as it leaves its CPU, see `FairQueue`),
//! every task that runs gains virtual run time as fast as it runs, and a
//! wakeup places a task at most `SLEEPER_CREDIT_NS` below a floor that
//! never rises past a queued task. So the others pass a queued task after
//! a bounded amount of CPU time, and then it is the smallest.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::task::Task;

/// A woken task preempts the running one, and the tick preempts the running
/// task for a queued one, only if that one has had this much less CPU
/// (Linux's wakeup granularity is 1 ms too).
pub const WAKEUP_GRAN_NS: u64 = 1_000_000;

/// The most a woken task may be placed below its CPU's floor: half of
/// Linux's scheduling latency at 2 CPUs (12 ms).
pub const SLEEPER_CREDIT_NS: u64 = 6_000_000;

/// Where a new task starts: this far above its CPU's floor (Linux's
/// `START_DEBIT`: a new task waits one slice, 3 ms at most in Linux 6.12).
/// So a task that starts others, one after another, is not preempted by
/// each as it starts it: they all start running soon after it, on other
/// CPUs or when it blocks, rather than the first ones running long before
/// it gets back to start the rest.
pub const NEW_TASK_DEBIT_NS: u64 = 3_000_000;

/// The most a task placed on a queue may be above the floor. On its own
/// CPU a task is never much further ahead than a tick and a granularity
/// (the tick preempts it for anyone queued behind it); the bound matters
/// when a task moves between CPUs whose floors are far apart or stale.
pub const MAX_LEAD_NS: u64 = 20_000_000;

/// Where a task goes on a new (or the same) queue: it keeps its distance
/// from the floor of the queue it left (`src_min`), clamped to
/// `-SLEEPER_CREDIT_NS ..= MAX_LEAD_NS`, measured from the new queue's
/// floor (`dst_min`). On its own CPU this is CFS's
/// `max(vruntime, min_vruntime - credit)`.
pub fn place(vruntime: u64, src_min: u64, dst_min: u64) -> u64 {
    if vruntime >= src_min {
        dst_min.saturating_add((vruntime - src_min).min(MAX_LEAD_NS))
    } else {
        dst_min.saturating_sub((src_min - vruntime).min(SLEEPER_CREDIT_NS))
    }
}

/// A task woken with `woken` virtual run time preempts a running one that
/// has `running`.
pub fn wakeup_preempts(running: u64, woken: u64) -> bool {
    running > woken.saturating_add(WAKEUP_GRAN_NS)
}

/// The tick makes the running task (`running`) give way to the queued task
/// with the least virtual run time (`queued_min`).
pub fn tick_preempts(running: u64, queued_min: u64) -> bool {
    running > queued_min.saturating_add(WAKEUP_GRAN_NS)
}

/// A CPU's queue of runnable tasks, not running. Unsorted, and searched at
/// each pick: the running task may be queued again by a waker before it
/// has left its CPU and has had its last run time charged (which changes
/// its key while queued), and the queues are a few tasks long, so a scan
/// costs what a sorted insert would. Among equal keys the earliest queued
/// comes first.
pub struct FairQueue {
    tasks: VecDeque<Arc<Task>>,
}

impl FairQueue {
    pub const fn new() -> Self {
        FairQueue {
            tasks: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Task>> {
        self.tasks.iter()
    }

    pub fn push(&mut self, t: Arc<Task>) {
        self.tasks.push_back(t);
    }

    /// The smallest virtual run time queued.
    pub fn min_vruntime(&self) -> Option<u64> {
        self.tasks.iter().map(|t| vruntime(t)).min()
    }

    /// Remove and return the task with the smallest virtual run time among
    /// those `eligible` says may run now.
    pub fn take_min(&mut self, eligible: impl Fn(&Task) -> bool) -> Option<Arc<Task>> {
        let i = self
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| eligible(t))
            // `min_by_key` keeps the first of equals: the earliest queued.
            .min_by_key(|(_, t)| vruntime(t))
            .map(|(i, _)| i)?;
        self.tasks.remove(i)
    }
}

/// Relaxed: the key is only compared here, under the queue's lock; a value
/// being charged concurrently (see `FairQueue`) orders the pick a little
/// differently, which is harmless.
fn vruntime(t: &Task) -> u64 {
    t.vruntime.load(Ordering::Relaxed)
}
