//! Tasks and scheduling.
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::arch::percpu;
use crate::sched::{self, State, preempt};
use crate::{kassert, kassert_eq, ktest, time};

/// Spin until `cond` or a generous deadline (a hang guard, not a timing check).
fn wait_for(what: &str, cond: impl Fn() -> bool) -> Result<(), alloc::string::String> {
    let deadline = time::uptime_ns() + 30_000_000_000;
    while !cond() {
        if time::uptime_ns() > deadline {
            return Err(alloc::format!("gave up waiting for {what}"));
        }
        sched::yield_now();
    }
    Ok(())
}

ktest!(
    fn sched_many_tasks_all_cpus() {
        const N: usize = 300;
        let done = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let done = done.clone();
                sched::spawn("many", None, move || {
                    // A little work and a yield, so tasks interleave and move.
                    let mut x = i as u64;
                    for _ in 0..1000 {
                        x = core::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                    sched::yield_now();
                    done.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        let placed: Vec<usize> = tasks
            .iter()
            .map(|t| t.placed_on.load(Ordering::Relaxed))
            .collect();
        // Placement spread them over every CPU; where each finally ran
        // depends on stealing (under single-threaded TCG a slow virtual CPU
        // may have all its tasks stolen), so only the placement is asserted.
        let placed = placed.iter().fold(0u64, |m, c| m | (1 << c));
        for t in &tasks {
            kassert_eq!(sched::join(t), 0);
        }
        kassert_eq!(done.load(Ordering::Relaxed), N);
        let online = crate::arch::smp::online_mask();
        kassert_eq!(
            placed & online,
            online,
            "tasks were placed on CPUs {:#x} of {:#x}",
            placed,
            online
        );
        Ok(())
    }
);

ktest!(
    fn sched_preemption() {
        // A task spinning forever on a CPU must not keep another task on the
        // same CPU from running: only the timer can take the CPU from it.
        let cpu = percpu::online_count() - 1;
        let stop = Arc::new(AtomicBool::new(false));
        let ran = Arc::new(AtomicBool::new(false));
        let spinner = {
            let stop = stop.clone();
            sched::spawn("spinner", Some(cpu), move || {
                while !stop.load(Ordering::Relaxed) {
                    core::hint::spin_loop();
                }
            })
        };
        // Let the spinner get the CPU first.
        wait_for("the spinner to start", || {
            spinner.switches.load(Ordering::Relaxed) > 0
        })?;
        let other = {
            let ran = ran.clone();
            sched::spawn("other", Some(cpu), move || {
                ran.store(true, Ordering::Relaxed)
            })
        };
        let result = wait_for("the second task on the spinner's CPU", || {
            ran.load(Ordering::Relaxed)
        });
        stop.store(true, Ordering::Relaxed);
        sched::join(&other);
        sched::join(&spinner);
        result
    }
);

ktest!(
    fn sched_pinning() {
        let n = percpu::online_count();
        let bad = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..n)
            .flat_map(|cpu| (0..3).map(move |k| (cpu, k)))
            .map(|(cpu, _)| {
                let bad = bad.clone();
                sched::spawn("pinned", Some(cpu), move || {
                    for i in 0..200 {
                        if percpu::cpu_id() != cpu {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                        if i % 50 == 0 {
                            sched::sleep_ns(1_000_000);
                        } else {
                            sched::yield_now();
                        }
                    }
                })
            })
            .collect();
        for (i, t) in tasks.iter().enumerate() {
            sched::join(t);
            kassert_eq!(
                t.ran_on.load(Ordering::Relaxed),
                1 << (i / 3),
                "task pinned to cpu{} ran on mask",
                i / 3
            );
        }
        kassert_eq!(
            bad.load(Ordering::Relaxed),
            0,
            "observations of a pinned task on another CPU"
        );
        Ok(())
    }
);

ktest!(
    fn preempt_disable_blocks_switch() {
        let cpu = percpu::online_count() - 1;
        let other_ran = Arc::new(AtomicBool::new(false));
        let result = Arc::new(AtomicU64::new(0)); // 1 = ok, 2 = switched while disabled, 3 = other ran
        let t = {
            let other_ran = other_ran.clone();
            let result = result.clone();
            sched::spawn("no-preempt", Some(cpu), move || {
                let me = sched::current();
                let _g = preempt::guard();
                let other_ran2 = other_ran.clone();
                // A runnable competitor on this CPU: the tick wants to switch.
                let other = sched::spawn("competitor", Some(cpu), move || {
                    other_ran2.store(true, Ordering::Relaxed)
                });
                let switches = me.switches.load(Ordering::Relaxed);
                let ticks = percpu::this().ticks.load(Ordering::Relaxed);
                while percpu::this().ticks.load(Ordering::Relaxed) < ticks + 5 {
                    core::hint::spin_loop();
                }
                let r = if me.switches.load(Ordering::Relaxed) != switches {
                    2
                } else if other_ran.load(Ordering::Relaxed) {
                    3
                } else {
                    1
                };
                result.store(r, Ordering::Relaxed);
                drop(_g);
                sched::join(&other);
            })
        };
        sched::join(&t);
        kassert!(
            other_ran.load(Ordering::Relaxed),
            "the competitor never ran after preempt_enable"
        );
        kassert_eq!(
            result.load(Ordering::Relaxed),
            1,
            "1 = held the CPU, 2 = switched out, 3 = competitor ran"
        );
        Ok(())
    }
);

ktest!(
    fn task_exit_code_and_join() {
        let t = sched::spawn("exit-code", None, || sched::exit(42));
        kassert_eq!(sched::join(&t), 42);
        kassert_eq!(t.state(), State::Exited);
        Ok(())
    }
);
