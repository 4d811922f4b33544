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
        // The last CPU queues callbacks, then keeps its callback task from
        // running: a hog with preemption off that passes through quiescent
        // states (as a CPU returning to user mode over and over does), so
        // grace periods still end. A barrier on CPU 0 must wait for those
        // callbacks. One that put its marker on its own CPU's list only
        // would return as soon as that marker's grace period ended, with
        // every one of them still queued behind the hog. The hog is let go
        // once three more grace periods have ended after the barrier began:
        // by then a barrier that waits for CPU 0 alone has returned.
        const PER_CPU: usize = 20;
        const HOG_LIMIT_NS: u64 = 5_000_000_000;
        if percpu::online_count() < 2 {
            return Ok(());
        }
        let last = percpu::online_count() - 1;
        let ran = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let hog_timed_out = Arc::new(AtomicBool::new(false));
        let hog = {
            let (ran, queued, stop, timed_out) = (
                ran.clone(),
                queued.clone(),
                stop.clone(),
                hog_timed_out.clone(),
            );
            sched::spawn("barrier-hog", Some(last), move || {
                for _ in 0..PER_CPU {
                    let r = ran.clone();
                    rcu::call_rcu(Box::new(move || {
                        r.fetch_add(1, Ordering::SeqCst);
                    }));
                }
                let _stay = sched::preempt::guard();
                queued.store(true, Ordering::SeqCst);
                let t0 = time::uptime_ns();
                while !stop.load(Ordering::SeqCst) {
                    if time::uptime_ns() > t0 + HOG_LIMIT_NS {
                        timed_out.store(true, Ordering::SeqCst);
                        break;
                    }
                    // Not inside a read-side section: a quiescent state.
                    rcu::note_user_return();
                    core::hint::spin_loop();
                }
            })
        };
        while !queued.load(Ordering::SeqCst) {
            sched::sleep_ns(100_000);
        }
        // What the callbacks had done when the barrier returned.
        let seen = Arc::new(AtomicUsize::new(usize::MAX));
        let barrier = {
            let (ran, seen) = (ran.clone(), seen.clone());
            sched::spawn("barrier", Some(0), move || {
                rcu::rcu_barrier();
                seen.store(ran.load(Ordering::SeqCst), Ordering::SeqCst);
            })
        };
        for _ in 0..3 {
            rcu::synchronize_rcu();
        }
        sched::sleep_ns(10_000_000);
        let early = seen.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        sched::join(&hog);
        sched::join(&barrier);
        kassert!(
            !hog_timed_out.load(Ordering::SeqCst),
            "grace periods stopped while the hog passed through quiescent states"
        );
        kassert!(
            early == usize::MAX,
            "rcu_barrier returned with {} of the last CPU's {} callbacks run",
            early,
            PER_CPU
        );
        kassert_eq!(
            seen.load(Ordering::SeqCst),
            PER_CPU,
            "rcu_barrier returned before the last CPU's callbacks had run"
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
