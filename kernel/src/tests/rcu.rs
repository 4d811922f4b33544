//! RCU: grace periods, callbacks, stalls, and a torture test.
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::arch::{percpu, smp};
use crate::rcu::{self, RcuPtr};
use crate::sched::{self, preempt};
use crate::sync::SpinLock;
use crate::{kassert, kassert_eq, ktest, time};

const ALIVE: u64 = 0xA11C_E0FF_A11C_E0FF;
const POISON: u64 = 0xDEAD_DEAD_DEAD_DEAD;

struct Obj {
    magic: AtomicU64,
}

ktest!(
    fn rcu_torture() {
        // Readers on every CPU keep dereferencing the current object and check
        // it is not poisoned; a writer keeps replacing it and retires the old one
        // through call_rcu, whose callback poisons it. A grace period that ended
        // while a reader still held the object shows up as that reader seeing
        // poison. (Poisoned objects are parked, not freed at once, so the heap
        // cannot hand the memory out again and hide the poison.)
        const GRACE_PERIODS: u64 = 200;
        let ptr = Arc::new(RcuPtr::<Obj>::null());
        ptr.replace(Box::new(Obj {
            magic: AtomicU64::new(ALIVE),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (bad, reads) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let graveyard: Arc<SpinLock<Vec<Box<Obj>>>> = Arc::new(SpinLock::new(Vec::new()));
        let mut tasks = Vec::new();
        for cpu in percpu::online_cpus().map(|c| c.cpu_id as usize) {
            let (ptr, stop, bad, reads) = (ptr.clone(), stop.clone(), bad.clone(), reads.clone());
            tasks.push(sched::spawn("torture-reader", Some(cpu), move || {
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let g = rcu::read_lock();
                    if let Some(o) = ptr.read(&g) {
                        // Hold the object a while: long sections make overlap
                        // with the writer likely.
                        for _ in 0..(200 + n % 800) {
                            if o.magic.load(Ordering::Relaxed) != ALIVE {
                                bad.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            core::hint::spin_loop();
                        }
                    }
                    drop(g);
                    n += 1;
                    reads.fetch_add(1, Ordering::Relaxed);
                    if n.is_multiple_of(16) {
                        sched::yield_now();
                    }
                }
            }));
        }
        let start_gp = rcu::completed();
        let writer = {
            let (ptr, graveyard) = (ptr.clone(), graveyard.clone());
            sched::spawn("torture-writer", None, move || {
                while rcu::completed() < start_gp + GRACE_PERIODS {
                    if let Some(old) = ptr.replace(Box::new(Obj {
                        magic: AtomicU64::new(ALIVE),
                    })) {
                        let graveyard = graveyard.clone();
                        rcu::call_rcu(Box::new(move || {
                            old.magic.store(POISON, Ordering::Relaxed);
                            graveyard.lock().push(old);
                        }));
                    }
                    sched::yield_now();
                }
            })
        };
        sched::join(&writer);
        stop.store(true, Ordering::Relaxed);
        for t in &tasks {
            sched::join(t);
        }
        rcu::rcu_barrier();
        let retired = graveyard.lock().len();
        graveyard.lock().clear();
        crate::println_raw!(
            "# rcu_torture: {} grace periods, {} objects retired, {} reads, {} bad reads",
            rcu::completed() - start_gp,
            retired,
            reads.load(Ordering::Relaxed),
            bad.load(Ordering::Relaxed)
        );
        kassert_eq!(
            bad.load(Ordering::Relaxed),
            0,
            "reads of a retired (poisoned) object"
        );
        kassert!(retired > 0, "nothing was retired");
        drop(ptr.replace(Box::new(Obj {
            magic: AtomicU64::new(ALIVE),
        })));
        Ok(())
    }
);

ktest!(
    fn rcu_synchronize_waits_for_reader() {
        // A reader on the last CPU holds its section; synchronize_rcu from a task
        // elsewhere must not return before the reader leaves.
        let cpu = percpu::online_count() - 1;
        let (entered, left) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let reader = {
            let (entered, left) = (entered.clone(), left.clone());
            sched::spawn("reader", Some(cpu), move || {
                let g = rcu::read_lock();
                entered.store(true, Ordering::SeqCst);
                let t0 = percpu::this().ticks.load(Ordering::Relaxed);
                while percpu::this().ticks.load(Ordering::Relaxed) < t0 + 20 {
                    core::hint::spin_loop();
                }
                left.store(true, Ordering::SeqCst);
                drop(g);
            })
        };
        while !entered.load(Ordering::SeqCst) {
            sched::yield_now();
        }
        rcu::synchronize_rcu();
        let ok = left.load(Ordering::SeqCst);
        sched::join(&reader);
        kassert!(
            ok,
            "synchronize_rcu returned while a reader that began before it was still inside"
        );
        Ok(())
    }
);

ktest!(
    fn rcu_idle_cpus_do_not_block() {
        // With the other CPUs idle, grace periods complete, and idle CPUs are
        // let off as idle rather than waited for. Any CPU counts, this one
        // too: the grace-period task is woken onto an idle CPU, so at SMP=2
        // it may run all ten periods on the other CPU while this one is
        // the one that sleeps in `synchronize_rcu`.
        let before: Vec<u64> = (0..percpu::online_count()).map(rcu::idle_passes).collect();
        sched::sleep_ns(20_000_000); // let the others go idle
        let g0 = rcu::completed();
        for _ in 0..10 {
            rcu::synchronize_rcu();
        }
        kassert!(
            rcu::completed() >= g0 + 10,
            "10 synchronize_rcu calls completed fewer grace periods"
        );
        if percpu::online_count() > 1 {
            let passed = percpu::online_cpus()
                .map(|c| c.cpu_id as usize)
                .filter(|&c| rcu::idle_passes(c) > before[c])
                .count();
            kassert!(passed > 0, "no idle CPU was let off as idle");
        }
        Ok(())
    }
);

ktest!(
    fn rcu_barrier_runs_all_callbacks() {
        const PER_CPU: usize = 250;
        let count = Arc::new(AtomicUsize::new(0));
        let c2 = count.clone();
        sched::run_on_cpus(smp::online_mask(), &move |_| {
            for _ in 0..PER_CPU {
                let c = c2.clone();
                rcu::call_rcu(Box::new(move || {
                    c.fetch_add(1, Ordering::Relaxed);
                }));
            }
        });
        rcu::rcu_barrier();
        kassert_eq!(
            count.load(Ordering::Relaxed),
            PER_CPU * percpu::online_count()
        );
        Ok(())
    }
);

ktest!(
    fn rcu_nested_read_sections() {
        let base_preempt = preempt::count();
        let outer = rcu::read_lock();
        let inner = rcu::read_lock();
        kassert_eq!(rcu::nesting(), 2);
        drop(inner);
        // Still inside: preemption stays off until the outer section ends.
        kassert_eq!(rcu::nesting(), 1);
        kassert_eq!(preempt::count(), base_preempt + 1);
        // A grace period that starts now cannot end while we are inside: no
        // quiescent state can be reported from this CPU.
        let g = rcu::completed();
        let syncer = if percpu::online_count() > 1 {
            Some(sched::spawn(
                "syncer",
                Some(percpu::online_count() - 1),
                rcu::synchronize_rcu,
            ))
        } else {
            None
        };
        let t0 = time::uptime_ns();
        while time::uptime_ns() < t0 + 50_000_000 {
            core::hint::spin_loop();
        }
        let during = rcu::completed();
        drop(outer);
        kassert_eq!(rcu::nesting(), 0);
        kassert_eq!(preempt::count(), base_preempt);
        if let Some(s) = syncer {
            sched::join(&s);
            kassert!(
                during <= g + 1,
                "grace periods completed under our outer section: {} -> {}",
                g,
                during
            );
        }
        Ok(())
    }
);

ktest!(
    fn rcu_stall_warning_fires() {
        // A reader hogs the last CPU for longer than the (shortened) stall
        // timeout, after asking for a grace period from inside its section: the
        // timer tick starts that grace period and warns, naming the CPU.
        let old = rcu::set_stall_timeout_ms(100);
        let before = rcu::STALL_WARNINGS.load(Ordering::Relaxed);
        let cpu = percpu::online_count() - 1;
        let reader = sched::spawn("stall-reader", Some(cpu), move || {
            let g = rcu::read_lock();
            rcu::call_rcu(Box::new(|| {}));
            let t0 = percpu::this().ticks.load(Ordering::Relaxed);
            while rcu::STALL_WARNINGS.load(Ordering::Relaxed) == before
                && percpu::this().ticks.load(Ordering::Relaxed) < t0 + 500
            {
                core::hint::spin_loop();
            }
            drop(g);
        });
        sched::join(&reader);
        rcu::set_stall_timeout_ms(old);
        rcu::rcu_barrier();
        kassert!(
            rcu::STALL_WARNINGS.load(Ordering::Relaxed) > before,
            "no stall warning within 5 s of a 100 ms timeout"
        );
        let named = rcu::LAST_STALL_CPUS.load(Ordering::Relaxed);
        kassert!(
            named & (1 << cpu) != 0,
            "the warning named CPUs {:#x}, not cpu{}",
            named,
            cpu
        );
        Ok(())
    }
);
