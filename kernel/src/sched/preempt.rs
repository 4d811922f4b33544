//! Preemption control: a per-CPU nesting count.
//!
//! While the count is non-zero the timer never switches tasks on this CPU.
//! Spinlock holders and RCU readers raise it. When it drops back to zero and
//! a switch was requested meanwhile, the switch happens right there.
//!
//! The count belongs to the CPU, but the task that raises it may be preempted
//! just before (and, when it drops to zero, just after) and resume on another
//! CPU. So each change is one `gs:`-relative instruction (`percpu::
//! preempt_count_inc/dec`): it changes the count of the CPU that executes it,
//! never the count of a CPU the task has left. Once the count is raised the
//! task cannot move until it lowers it again.

use crate::arch::percpu;

#[inline]
pub fn count() -> usize {
    percpu::preempt_count()
}

#[inline]
pub fn disable() {
    // Also a compiler barrier: the section's accesses stay after it.
    percpu::preempt_count_inc();
}

#[inline]
pub fn enable() {
    // Also a compiler barrier: the section's accesses stay before it.
    let old = percpu::preempt_count_dec();
    assert!(
        old > 0 && old < usize::MAX / 2,
        "preempt_enable without preempt_disable (count was {old})"
    );
    if old == 1 {
        super::preempt_point();
    }
}

/// Preemption disabled for the guard's lifetime.
pub struct Guard(());

pub fn guard() -> Guard {
    disable();
    Guard(())
}

impl Drop for Guard {
    fn drop(&mut self) {
        enable();
    }
}
