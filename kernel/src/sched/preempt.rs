//! Preemption control: a per-CPU nesting count.
//!
//! While the count is non-zero the timer never switches tasks on this CPU.
//! Spinlock holders and RCU readers raise it. When it drops back to zero and
//! a switch was requested meanwhile, the switch happens right there.

use core::sync::atomic::Ordering;

use crate::arch::percpu;

#[inline]
pub fn count() -> usize {
    percpu::this().preempt_count.load(Ordering::Relaxed)
}

#[inline]
pub fn disable() {
    // Relaxed: only this CPU reads or writes its own count (interrupts that
    // nest inside see and restore it symmetrically).
    percpu::this().preempt_count.fetch_add(1, Ordering::Relaxed);
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
}

#[inline]
pub fn enable() {
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    let old = percpu::this().preempt_count.fetch_sub(1, Ordering::Relaxed);
    assert!(old > 0, "preempt_enable without preempt_disable");
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
