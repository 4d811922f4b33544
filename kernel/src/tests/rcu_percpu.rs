//! RCU callbacks kept per CPU: run on the CPU that queued them, after a
//! grace period that began after they were queued, and `rcu_barrier` waits
//! for every CPU's.
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::arch::{percpu, smp};
use crate::rcu;
use crate::sched;
use crate::{kassert, kassert_eq, ktest, time};

fn spin_ns(ns: u64) {
    let t0 = time::uptime_ns();
    while time::uptime_ns() < t0 + ns {
        core::hint::spin_loop();
    }
}

/// A task on CPU 0 that waits until `inside` (a reader on another CPU is in
/// its read-side section), then queues a callback that sets `ran`.
fn spawn_queuer(inside: &Arc<AtomicBool>, ran: &Arc<AtomicBool>) -> Arc<sched::Task> {
    let (inside, ran) = (inside.clone(), ran.clone());
    sched::spawn("queuer", Some(0), move || {
        while !inside.load(Ordering::SeqCst) {
            sched::sleep_ns(100_000);
        }
        rcu::call_rcu(Box::new(move || ran.store(true, Ordering::SeqCst)));
    })
}

ktest!(
    fn rcu_callbacks_run_on_queuing_cpu() {
        // Every CPU queues callbacks, yielding now and then so that they
        // span several grace periods; each callback notes the CPU it runs
        // on (callback tasks are pinned, so the CPU cannot change while it
        // looks).
        const PER_CPU: usize = 200;
        let (ran, elsewhere) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (r, e) = (ran.clone(), elsewhere.clone());
        sched::run_on_cpus(smp::online_mask(), &move |cpu| {
            for i in 0..PER_CPU {
                let (r, e) = (r.clone(), e.clone());
                rcu::call_rcu(Box::new(move || {
                    if percpu::cpu_id() != cpu {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                    r.fetch_add(1, Ordering::Relaxed);
                }));
                if i % 16 == 0 {
                    sched::yield_now();
                }
            }
        });
        rcu::rcu_barrier();
        kassert_eq!(
            ran.load(Ordering::Relaxed),
            PER_CPU * percpu::online_count()
        );
        kassert_eq!(
            elsewhere.load(Ordering::Relaxed),
            0,
            "callbacks ran on a CPU other than the one that queued them"
        );
        Ok(())
    }
);

ktest!(
    fn rcu_barrier_waits_for_every_cpu() {
        // Every CPU queues callbacks; those queued away from CPU 0 are slow
        // (1 ms each), so a barrier on CPU 0 that waited for its own list
        // only would return while the other CPUs are still running theirs.
        // (Only when its marker waits for the same grace period as they do:
        // callbacks run with preemption off, so a CPU running a slow batch
        // also holds up any later grace period, and so the marker.)
        const PER_CPU: usize = 20;
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        sched::run_on_cpus(smp::online_mask(), &move |cpu| {
            for _ in 0..PER_CPU {
                let r = r.clone();
                rcu::call_rcu(Box::new(move || {
                    if cpu != 0 {
                        spin_ns(1_000_000);
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                }));
            }
        });
        sched::join(&sched::spawn("barrier", Some(0), rcu::rcu_barrier));
        kassert_eq!(
            ran.load(Ordering::SeqCst),
            PER_CPU * percpu::online_count(),
            "rcu_barrier returned before every CPU's callbacks had run"
        );
        Ok(())
    }
);

ktest!(
    fn rcu_callback_waits_for_reader_on_other_cpu() {
        // A reader on the last CPU enters its section; then CPU 0 queues a
        // callback. The callback must not run until the reader has left,
        // even when a grace period was already under way when it was queued
        // (that one may have had the reader's CPU's quiescent state before
        // the reader began). A task on CPU 0 keeps grace periods going so
        // that one usually is; it and the queuer sleep rather than spin, so
        // that CPU 0 idles and the grace-period task, woken, goes there
        // rather than behind the reader. The reader stays inside for 30 ms,
        // three ticks: the grace-period task polls at ticks, so a grace
        // period under way when the callback was queued has time to end.
        const ROUNDS: usize = 30;
        if percpu::online_count() < 2 {
            return Ok(());
        }
        let last = percpu::online_count() - 1;
        let stop = Arc::new(AtomicBool::new(false));
        let pump = {
            let stop = stop.clone();
            sched::spawn("gp-pump", Some(0), move || {
                while !stop.load(Ordering::Relaxed) {
                    rcu::call_rcu(Box::new(|| {}));
                    sched::sleep_ns(1_000_000);
                }
            })
        };
        let mut early = 0;
        for _ in 0..ROUNDS {
            let (inside, ran, seen) = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            );
            let reader = {
                let (inside, ran, seen) = (inside.clone(), ran.clone(), seen.clone());
                sched::spawn("reader", Some(last), move || {
                    let g = rcu::read_lock();
                    inside.store(true, Ordering::SeqCst);
                    let t0 = time::uptime_ns();
                    while time::uptime_ns() < t0 + 30_000_000 {
                        if ran.load(Ordering::SeqCst) {
                            seen.store(true, Ordering::SeqCst);
                            break;
                        }
                        core::hint::spin_loop();
                    }
                    drop(g);
                })
            };
            let queuer = spawn_queuer(&inside, &ran);
            sched::join(&queuer);
            sched::join(&reader);
            if seen.load(Ordering::SeqCst) {
                early += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        sched::join(&pump);
        rcu::rcu_barrier();
        kassert!(
            early == 0,
            "{} of {} callbacks ran while a reader that began before they were queued was inside",
            early,
            ROUNDS
        );
        Ok(())
    }
);

ktest!(
    fn rcu_request_during_grace_period_is_served() {
        // A reader on the last CPU asks for a grace period from inside its
        // section, so one is in progress and cannot end; CPU 0 then queues
        // a callback, which needs the grace period after that one. Nothing
        // else asks for a grace period until we have looked (no barrier, no
        // synchronize_rcu), so a request that nobody acts on (the first
        // grace period never ended, or the second never started) shows as a
        // callback that has not run 3 s later.
        if percpu::online_count() < 2 {
            return Ok(());
        }
        let last = percpu::online_count() - 1;
        let (inside, release, ran) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let reader = {
            let (inside, release) = (inside.clone(), release.clone());
            sched::spawn("reader", Some(last), move || {
                let g = rcu::read_lock();
                rcu::call_rcu(Box::new(|| {}));
                // Our request's grace period has started (it cannot end
                // while we are inside), so the queuer's request is for the
                // one after it.
                let t0 = time::uptime_ns();
                while rcu::started() == rcu::completed() && time::uptime_ns() < t0 + 2_000_000_000 {
                    core::hint::spin_loop();
                }
                inside.store(true, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) && time::uptime_ns() < t0 + 2_000_000_000 {
                    core::hint::spin_loop();
                }
                drop(g);
            })
        };
        let queuer = spawn_queuer(&inside, &ran);
        sched::join(&queuer);
        release.store(true, Ordering::SeqCst);
        sched::join(&reader);
        let t0 = time::uptime_ns();
        while !ran.load(Ordering::SeqCst) && time::uptime_ns() < t0 + 3_000_000_000 {
            sched::sleep_ns(10_000_000);
        }
        let served = ran.load(Ordering::SeqCst);
        rcu::rcu_barrier();
        kassert!(
            served,
            "a callback queued while a grace period was in progress did not run within 3 s"
        );
        Ok(())
    }
);
