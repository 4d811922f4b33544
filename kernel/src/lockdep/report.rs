//! Printing lockdep reports. Each report is one block of ERROR lines that
//! starts with `lockdep: ` and a title, names the CPU and task, and ends with
//! the task's held locks. Every lock is named by its class (kind and the line
//! that created it) and every acquisition by its call site (the lock API is
//! `#[track_caller]`), so no backtrace is printed. Called with lockdep
//! marked busy on this CPU, so nothing printed here is tracked.

use core::panic::Location;

use super::graph::{Chain, ClassName, IrqConflict, IrqOrder};
use super::{HeldLock, HeldLocks, with_held};
use crate::arch::percpu;
use crate::sched::{self, preempt};

type Site = &'static Location<'static>;

fn header(title: &str) {
    crate::error!("======================================================");
    crate::error!("lockdep: {title}");
    let cpu = percpu::cpu_id();
    let irq = if super::in_irq() {
        " (in an interrupt handler)"
    } else {
        ""
    };
    match sched::try_current() {
        Some(t) => crate::error!("  cpu{cpu}, task {} '{}'{irq}", t.id, t.name),
        None => crate::error!("  cpu{cpu}, no task yet (early boot)"),
    }
}

fn held_list(h: Option<&HeldLocks>) {
    let Some(h) = h else {
        crate::error!("  (no task yet: held locks are not tracked)");
        return;
    };
    let whose = if super::in_irq() {
        "interrupt handlers on this CPU"
    } else {
        "this task"
    };
    crate::error!("  locks held by {whose}: {}", h.n);
    for (i, l) in h.held().enumerate() {
        print_held(i, l);
    }
}

fn print_held(i: usize, l: &HeldLock) {
    crate::error!(
        "    #{i}: {} {:#x} ({}) taken at {}",
        l.name,
        l.lock,
        if l.read { "read" } else { "write" },
        l.site
    );
}

fn footer() {
    crate::error!("======================================================");
}

/// Taking `name` at `site` while holding `top` closes a cycle.
pub fn order(
    h: &HeldLocks,
    top: &HeldLock,
    name: ClassName,
    lock: usize,
    site: Site,
    chain: &Chain,
) {
    let recursive = chain.links[0].is_none();
    header(if recursive {
        "possible recursive locking (a class nested in itself)"
    } else {
        "possible circular locking dependency (lock order inversion)"
    });
    crate::error!("  new dependency: {} -> {}", top.name, name);
    crate::error!("    {} was taken at {}", top.name, top.site);
    crate::error!("    then {name} {lock:#x} is being taken at {site}");
    if recursive {
        crate::error!("  both locks are of class {name}; nesting two of one class");
        crate::error!("  needs an order between them (or separate classes)");
    } else {
        crate::error!("  existing chain, {name} ->* {}:", top.name);
        chain_lines(chain);
        crate::error!("  two tasks taking these in the two orders can deadlock");
    }
    held_list(Some(h));
    footer();
}

pub fn irq_unsafe(c: &IrqConflict, site: Site, held: Option<&HeldLocks>) {
    header("irq-unsafe lock: taken in an interrupt handler and with interrupts on");
    crate::error!("  class {}", c.class);
    crate::error!("    taken in interrupt context at {}", c.irq_site);
    crate::error!("    taken with interrupts enabled at {}", c.enabled_site);
    crate::error!("  an interrupt on the holder's CPU would spin on it forever:");
    crate::error!("  take it with lock_irqsave outside the handler");
    crate::error!("  (this acquisition: {site})");
    held_list(held);
    footer();
}

pub fn irq_order(o: &IrqOrder, site: Site, held: Option<&HeldLocks>) {
    header("irq-safe -> irq-unsafe lock order");
    crate::error!("  {} is taken in an interrupt handler", o.safe);
    crate::error!("    (at {})", o.safe_site);
    crate::error!("  {} is taken with interrupts enabled", o.unsafe_);
    crate::error!("    (at {})", o.unsafe_site);
    crate::error!("  and the first is held while the second is taken:");
    chain_lines(&o.chain);
    crate::error!(
        "  one CPU holds {} with interrupts on; another holds",
        o.unsafe_
    );
    crate::error!(
        "  {} and waits for it; an interrupt on the first CPU",
        o.safe
    );
    crate::error!("  waits for {}: deadlock", o.safe);
    crate::error!("  (this acquisition: {site})");
    held_list(held);
    footer();
}

fn chain_lines(chain: &Chain) {
    for l in chain.links.iter().flatten() {
        crate::error!("    {} -> {}", l.from, l.to);
        crate::error!("      {} held, taken at {}", l.from, l.from_site);
        crate::error!("      then {} taken at {}", l.to, l.to_site);
    }
    if chain.truncated {
        crate::error!("    ...");
    }
}

pub fn unheld_release(h: &HeldLocks, lock: usize, site: Site) {
    header("releasing a lock this task does not hold");
    crate::error!("  lock {lock:#x}, released at {site}");
    held_list(Some(h));
    footer();
}

pub fn held_locks(h: &HeldLocks, title: &str) {
    header(title);
    held_list(Some(h));
    footer();
}

pub fn sleep_in_atomic(in_irq: bool, site: Site) {
    header(if in_irq {
        "sleeping function called from an interrupt handler"
    } else {
        "sleeping function called from atomic context"
    });
    crate::error!("  at {site} (preempt count {})", preempt::count());
    let mut printed = false;
    with_held(|h| {
        held_list(Some(h));
        printed = true;
    });
    if !printed {
        held_list(None);
    }
    // How we got here matters for this one: which caller slept.
    crate::backtrace::print_here();
    footer();
}
