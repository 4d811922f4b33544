//! Lockdep's checks fire when they should, name the caller's lines, and stay
//! quiet on correct code.
//!
//! The dependency graph is global and never forgets, so each test uses locks
//! created on its own lines: those are classes no other code takes, and
//! other tests' edges cannot reach them. A report disables nothing (each
//! problem is reported once), so the tests after these still run checked.
#![cfg(debug_assertions)]

use alloc::sync::Arc;
use core::panic::Location;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use mm::lookup::lock_vma_under_rcu;
use mm::mm::{MapAt, Mm};
use mm::platform::{LockClass, LockOp, Platform};
use mm::vma::Vma;
use mm::vma_cache::VmaCache;

use crate::arch::{cpu, percpu, smp};
use crate::lockdep::{self, Link};
use crate::mm_platform::Kernel;
use crate::sched;
use crate::sync::{Mutex, RwSem, SpinLock};
use crate::{kassert, kassert_eq, ktest};

fn count(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Is `site` the line `line` of this file?
fn at(site: &Location, line: u32) -> bool {
    site.file() == file!() && site.line() == line
}

fn link_is(l: &Link, from_line: u32, to_line: u32) -> bool {
    at(l.from_site, from_line) && at(l.to_site, to_line)
}

/// Read-lock `r`; returns the caller's line, which is also the site lockdep
/// records (`#[track_caller]` passes it through).
#[track_caller]
fn read_lock_here(r: &RwSem) -> u32 {
    r.read_lock();
    Location::caller().line()
}

ktest!(
    fn lockdep_reports_order_inversion() {
        let before = count(&lockdep::ORDER_REPORTS);
        let a = SpinLock::new(());
        let b = SpinLock::new(());

        // A then B, twice: a consistent order is never reported.
        let (ga, a_line) = (a.lock(), line!());
        let (gb, b_line) = (b.lock(), line!());
        drop(gb);
        drop(ga);
        {
            let _ga = a.lock();
            let _gb = b.lock();
        }
        kassert_eq!(
            count(&lockdep::ORDER_REPORTS),
            before,
            "consistent order reported"
        );

        // B then A, on one CPU (no real deadlock): the inversion is reported
        // with both chains, each naming the lines of this test.
        let (gb, b2_line) = (b.lock(), line!());
        let (ga, a2_line) = (a.lock(), line!());
        drop(ga);
        drop(gb);
        kassert_eq!(
            count(&lockdep::ORDER_REPORTS),
            before + 1,
            "B -> A not reported"
        );
        let (new, chain) = lockdep::last_order_report().ok_or("no report recorded")?;
        kassert!(
            link_is(&new, b2_line, a2_line),
            "new dependency sites: {} {}",
            new.from_site,
            new.to_site
        );
        let links: alloc::vec::Vec<_> = chain.links.iter().flatten().collect();
        kassert_eq!(links.len(), 1, "the existing chain is A -> B");
        kassert!(
            link_is(links[0], a_line, b_line),
            "chain sites: {} {}",
            links[0].from_site,
            links[0].to_site
        );

        // The same inversion again: reported once only.
        {
            let _gb = b.lock();
            let _ga = a.lock();
        }
        kassert_eq!(count(&lockdep::ORDER_REPORTS), before + 1, "reported twice");

        // A longer cycle through sleeping locks and a read hold:
        // M -> R(read), R(read) -> T, then T -> M closes M -> R -> T -> M.
        let m = Mutex::new(());
        let r = RwSem::new();
        let t = Mutex::new(());
        let (gm, m_line) = (m.lock(), line!());
        let r_line = read_lock_here(&r);
        r.read_unlock();
        drop(gm);
        r.read_lock();
        let (gt, t_line) = (t.lock(), line!());
        drop(gt);
        r.read_unlock();
        kassert_eq!(
            count(&lockdep::ORDER_REPORTS),
            before + 1,
            "a chain, not a cycle"
        );
        let gt = t.lock();
        let (gm, m2_line) = (m.lock(), line!());
        drop(gm);
        drop(gt);
        kassert_eq!(
            count(&lockdep::ORDER_REPORTS),
            before + 2,
            "T -> M not reported"
        );
        let (new, chain) = lockdep::last_order_report().ok_or("no report recorded")?;
        kassert!(
            at(new.to_site, m2_line),
            "new dependency site {}",
            new.to_site
        );
        let links: alloc::vec::Vec<_> = chain.links.iter().flatten().collect();
        kassert_eq!(links.len(), 2, "the existing chain is M -> R -> T");
        kassert!(at(links[0].from_site, m_line) && at(links[0].to_site, r_line));
        kassert!(
            at(links[1].to_site, t_line),
            "chain site {}",
            links[1].to_site
        );

        // Read on both sides: Q(read) -> N, then N -> Q(read). With a writer
        // queued on Q between the two readers, each waits for the other, so
        // read holds are not exempt.
        let q = RwSem::new();
        let n = Mutex::new(());
        q.read_lock();
        drop(n.lock());
        q.read_unlock();
        let gn = n.lock();
        q.read_lock();
        q.read_unlock();
        drop(gn);
        kassert_eq!(
            count(&lockdep::ORDER_REPORTS),
            before + 3,
            "read-read inversion not reported"
        );

        // Orders taken inside interrupt handlers count too: X -> Y in a
        // handler, then Y -> X with interrupts off in a task.
        let x = SpinLock::new(());
        let y = SpinLock::new(());
        in_interrupt(&|| {
            let _gx = x.lock();
            let _gy = y.lock();
        });
        {
            let _gy = y.lock_irqsave();
            let _gx = x.lock_irqsave();
        }
        kassert_eq!(
            count(&lockdep::ORDER_REPORTS),
            before + 4,
            "an order from an interrupt handler was not seen"
        );

        // The checker keeps working after reports: new consistent classes
        // add no report.
        let c = SpinLock::new(());
        let d = SpinLock::new(());
        for _ in 0..2 {
            let _gc = c.lock();
            let _gd = d.lock();
        }
        kassert_eq!(count(&lockdep::ORDER_REPORTS), before + 4);
        kassert!(lockdep::order_checker_on(), "the checker turned itself off");
        Ok(())
    }
);

/// A test address space with one mapped page.
fn test_mm() -> Result<(mm::mm::MmRef<Kernel>, u64), alloc::string::String> {
    let mm = Mm::<Kernel>::new(Arc::new(VmaCache::new())).map_err(|_| "no memory for an mm")?;
    let addr = mm
        .map(MapAt::Any, 4096, abi::mman::PROT_READ as u32)
        .map_err(|_| "map failed")?;
    Ok((mm, addr))
}

ktest!(
    fn lockdep_reports_unbalanced_vma_read() {
        let (mm, addr) = test_mm()?;
        let base = lockdep::held_count();

        // Held across a return to user mode: reported once, naming the lock.
        let before = count(&lockdep::USER_RETURN_REPORTS);
        let vma = lock_vma_under_rcu(&mm, addr).ok_or("no VMA read lock")?;
        let held = lockdep::held_count();
        lockdep::check_user_return();
        let first = count(&lockdep::USER_RETURN_REPORTS);
        lockdep::check_user_return();
        let second = count(&lockdep::USER_RETURN_REPORTS);
        // Released (the guard drops on an early return too): balanced.
        drop(vma);
        kassert_eq!(held, base + 1, "the read annotation is recorded");
        kassert_eq!(first, before + 1, "not reported");
        kassert_eq!(second, before + 1, "reported per return");
        kassert_eq!(lockdep::held_count(), base);
        lockdep::check_user_return();
        kassert_eq!(
            count(&lockdep::USER_RETURN_REPORTS),
            before + 1,
            "balanced, yet reported"
        );

        // Held at task exit (a kernel task that forgets its read lock).
        let before = count(&lockdep::EXIT_REPORTS);
        let leaked = Arc::new(AtomicUsize::new(0));
        let mm2 = mm.clone();
        let t = {
            let leaked = leaked.clone();
            sched::spawn("leak-vma-read", None, move || {
                if let Some(v) = lock_vma_under_rcu(&mm2, addr) {
                    leaked.store(&*v as *const Vma<Kernel> as usize, Ordering::Relaxed);
                    core::mem::forget(v);
                }
                drop(mm2);
            })
        };
        sched::join(&t);
        let reports = count(&lockdep::EXIT_REPORTS);
        let v = leaked.load(Ordering::Relaxed);
        kassert!(v != 0, "the task got no read lock");
        // Put the reference back first (an early return would leave the
        // address space's teardown waiting for it forever): this task adopts
        // the read hold, then releases it as a read unlock does.
        Kernel::lock_event(LockClass::VmaLock, v, LockOp::AcquireRead);
        // SAFETY: the leaked reference keeps the VMA attached and alive.
        mm::vma_lock::vma_refcount_put(unsafe { &*(v as *const Vma<Kernel>) });
        kassert_eq!(lockdep::held_count(), base);
        mm.unmap(addr, 4096).map_err(|_| "unmap failed")?;
        kassert_eq!(reports, before + 1, "exit holding it not reported");
        Ok(())
    }
);

/// Run `f` in interrupt context: a cross-CPU call (an IPI handler) when
/// there is another CPU; with one CPU, the same state an interrupt handler
/// runs in (interrupts off, this CPU's interrupt depth raised), which is
/// everything lockdep looks at.
fn in_interrupt(f: &(dyn Fn() + Sync)) {
    let me = percpu::cpu_id();
    let others = smp::online_mask() & !(1 << me);
    if others != 0 {
        smp::call_on_cpus(1 << others.trailing_zeros(), f);
        return;
    }
    let irq = cpu::irq_save();
    let depth = &percpu::this().irq_depth;
    depth.fetch_add(1, Ordering::Relaxed);
    f();
    depth.fetch_sub(1, Ordering::Relaxed);
    cpu::irq_restore(irq);
}

/// Take each lock in an interrupt handler until lockdep has seen it there.
/// (A CPU answering calls while it waits for its own runs them outside
/// interrupt context, so one call may not be enough.)
fn take_in_interrupt(locks: &[&SpinLock<()>]) -> bool {
    let used = |l: &SpinLock<()>| lockdep::class_usage(l.lockdep_map()).is_some_and(|u| u.0);
    for _ in 0..100 {
        in_interrupt(&|| {
            for l in locks {
                drop(l.lock());
            }
        });
        if locks.iter().all(|l| used(l)) {
            return true;
        }
    }
    false
}

ktest!(
    fn lockdep_reports_irq_unsafe_lock() {
        let before = count(&lockdep::IRQ_UNSAFE_REPORTS);
        let safe = SpinLock::new(());
        let unsafe_ = SpinLock::new(());
        kassert!(
            take_in_interrupt(&[&safe, &unsafe_]),
            "never ran in interrupt context"
        );

        // Elsewhere with interrupts off while held: correct, not reported.
        drop(safe.lock_irqsave());
        kassert_eq!(
            count(&lockdep::IRQ_UNSAFE_REPORTS),
            before,
            "irqsave use reported"
        );

        // With interrupts on: the handler could interrupt the holder.
        kassert!(cpu::interrupts_enabled());
        drop(unsafe_.lock());
        kassert_eq!(
            count(&lockdep::IRQ_UNSAFE_REPORTS),
            before + 1,
            "irq-unsafe use not reported"
        );
        kassert_eq!(
            lockdep::class_usage(unsafe_.lockdep_map()),
            Some((true, true))
        );
        // Once per class.
        drop(unsafe_.lock());
        kassert_eq!(
            count(&lockdep::IRQ_UNSAFE_REPORTS),
            before + 1,
            "reported twice"
        );

        // Indirect: P is taken in a handler, Q only with interrupts on, and
        // P is held (interrupts off) while Q is taken. A CPU holding Q is
        // interrupted by a handler that waits for P, held by a CPU that
        // waits for Q.
        let before = count(&lockdep::IRQ_ORDER_REPORTS);
        let p = SpinLock::new(());
        let q = SpinLock::new(());
        drop(q.lock());
        kassert!(take_in_interrupt(&[&p]), "never ran in interrupt context");
        {
            // P before a lock that is never taken with interrupts on: fine.
            let _gp = p.lock_irqsave();
            drop(safe.lock_irqsave());
        }
        kassert_eq!(
            count(&lockdep::IRQ_ORDER_REPORTS),
            before,
            "safe -> safe reported"
        );
        {
            let _gp = p.lock_irqsave();
            drop(q.lock_irqsave());
        }
        kassert_eq!(
            count(&lockdep::IRQ_ORDER_REPORTS),
            before + 1,
            "safe -> unsafe not reported"
        );

        // The same found from the other end: the order exists first, and the
        // second lock becomes interrupt-unsafe later.
        let p2 = SpinLock::new(());
        let t2 = SpinLock::new(());
        kassert!(take_in_interrupt(&[&p2]), "never ran in interrupt context");
        {
            let _gp = p2.lock_irqsave();
            drop(t2.lock_irqsave());
        }
        kassert_eq!(count(&lockdep::IRQ_ORDER_REPORTS), before + 1);
        drop(t2.lock());
        kassert_eq!(
            count(&lockdep::IRQ_ORDER_REPORTS),
            before + 2,
            "unsafe after the order not reported"
        );
        Ok(())
    }
);
