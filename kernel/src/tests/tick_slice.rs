//! The tick does not take the CPU from a task that has only just got it: a
//! woken task that replaced a hog runs through the next tick if that tick
//! comes early in its run, instead of going to the back of the queue for a
//! whole slice of the hog. Counted over rounds woken at spread-out moments
//! between two ticks, never timed.
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::arch::percpu;
use crate::sched;
use crate::sync::waitqueue::WaitQueue;
use crate::{kassert, ktest, time};

const ROUNDS: u64 = 20;
/// A round's result slot holds this until the sleeper reports.
const PENDING: u64 = u64::MAX;

struct Shared {
    cpu: usize,
    /// The round the sleeper should run next (0: none yet).
    round: AtomicU64,
    wq: WaitQueue,
    /// Ticks the sleeper's CPU took between its first look and the first
    /// time it saw the count move: 1 if it kept the CPU through the tick.
    ticks_seen: AtomicU64,
    stop: AtomicBool,
}

fn ticks(cpu: usize) -> u64 {
    percpu::get(cpu).ticks.load(Ordering::Relaxed)
}

/// Each round: sleep until woken, then spin until this CPU's tick count
/// moves and report by how much.
fn sleeper(s: &Shared) {
    let mut done = 0;
    loop {
        // Acquire: pairs with the test's Release store of `round`.
        s.wq.wait_until(|| {
            s.round.load(Ordering::Acquire) > done || s.stop.load(Ordering::Acquire)
        });
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        done = s.round.load(Ordering::Acquire);
        let k0 = ticks(s.cpu);
        let mut k = k0;
        while k == k0 {
            core::hint::spin_loop();
            k = ticks(s.cpu);
        }
        // Release: pairs with the test's Acquire load.
        s.ticks_seen.store(k - k0, Ordering::Release);
    }
}

fn run_rounds(s: &Arc<Shared>) -> Result<usize, String> {
    let mut kept = 0;
    for round in 1..=ROUNDS {
        // Wake it at a different moment between two ticks each round.
        time::delay_us(300 + (round * 3_700) % 10_000);
        s.ticks_seen.store(PENDING, Ordering::Relaxed);
        // Release: pairs with the sleeper's Acquire load.
        s.round.store(round, Ordering::Release);
        s.wq.wake_all();
        let deadline = time::uptime_ns() + 30_000_000_000;
        let seen = loop {
            // Acquire: pairs with the sleeper's Release store.
            let v = s.ticks_seen.load(Ordering::Acquire);
            if v != PENDING {
                break v;
            }
            if time::uptime_ns() > deadline {
                return Err(String::from("the sleeper never reported"));
            }
            sched::yield_now();
        };
        kept += usize::from(seen == 1);
    }
    Ok(kept)
}

ktest!(
    fn tick_spares_task_just_switched_in() {
        if percpu::online_count() < 2 {
            return Ok(());
        }
        let me = sched::current();
        let here = percpu::cpu_id();
        let was = me.affinity.swap(here, Ordering::Relaxed);
        let cpu = percpu::online_cpus()
            .map(|c| c.cpu_id as usize)
            .find(|&c| c != here)
            .expect("two CPUs online");
        let s = Arc::new(Shared {
            cpu,
            round: AtomicU64::new(0),
            wq: WaitQueue::new(),
            ticks_seen: AtomicU64::new(PENDING),
            stop: AtomicBool::new(false),
        });
        let hog_stop = Arc::new(AtomicBool::new(false));
        let hog_started = Arc::new(AtomicUsize::new(0));
        let hog = {
            let (stop, started) = (hog_stop.clone(), hog_started.clone());
            sched::spawn("hog", Some(cpu), move || {
                started.store(1, Ordering::Release);
                // Acquire: pairs with the test's Release store.
                while !stop.load(Ordering::Acquire) {
                    core::hint::spin_loop();
                }
            })
        };
        let sleeper_task = {
            let s = s.clone();
            sched::spawn("sleeper", Some(cpu), move || sleeper(&s))
        };
        // Acquire: pairs with the hog's Release store.
        while hog_started.load(Ordering::Acquire) == 0 {
            sched::yield_now();
        }
        let result = run_rounds(&s);
        // Release: pairs with the Acquire loads of the hog and the sleeper.
        s.stop.store(true, Ordering::Release);
        s.wq.wake_all();
        hog_stop.store(true, Ordering::Release);
        sched::join(&sleeper_task);
        sched::join(&hog);
        me.affinity.store(was, Ordering::Relaxed);
        let kept = result?;
        kassert!(
            kept >= 2,
            "a woken task was preempted by the first tick after it replaced a hog \
             in {} of {} rounds, however early in its run that tick came",
            ROUNDS as usize - kept,
            ROUNDS
        );
        Ok(())
    }
);

/// Queued tasks, front to back: fresh, fresh, then one that has waited
/// `waited_ns`.
fn queue_with_waiter(waited_ns: u64) -> VecDeque<Arc<sched::Task>> {
    let now = time::uptime_ns();
    let mut q = VecDeque::new();
    for (i, age) in [0, 0, waited_ns].into_iter().enumerate() {
        let t = Arc::new(sched::Task::new(
            1_000_000 + i as u64,
            alloc::format!("queued{i}"),
            None,
            None,
        ));
        t.enqueued_ns.store(now - age, Ordering::Relaxed);
        q.push_back(t);
    }
    q
}

ktest!(
    fn starving_queued_task_is_picked_first() {
        // A woken task may go to the head of the queue, so the back of the
        // queue could wait forever behind tasks that keep waking each
        // other; the pick takes a task that has waited too long first.
        let mut q = queue_with_waiter(sched::STARVE_NS + 1_000_000);
        let picked = sched::take_ready(&mut q, percpu::cpu_id(), core::ptr::null_mut());
        kassert!(
            picked.as_ref().is_some_and(|t| t.name == "queued2"),
            "picked {:?} over the task queued for longer than the bound",
            picked.map(|t| t.name.clone())
        );
        let mut q = queue_with_waiter(0);
        let picked = sched::take_ready(&mut q, percpu::cpu_id(), core::ptr::null_mut());
        kassert!(
            picked.as_ref().is_some_and(|t| t.name == "queued0"),
            "with nobody starving the head was not picked: {:?}",
            picked.map(|t| t.name.clone())
        );
        Ok(())
    }
);
