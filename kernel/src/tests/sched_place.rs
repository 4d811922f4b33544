//! The scheduler's statistics (`phases=sched`) say where a task waited:
//! how its wakeups were placed (on an idle CPU, preempting a running task,
//! behind one) and what its CPU ran while it sat in the queue (kernel tasks,
//! user threads, idle). The benchmarks read the placement of threads off
//! these, so a wrong bucket misleads a whole measurement. Counted in events
//! and bounded by timer ticks, never timed.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use super::sleeper_rounds::{Pin, ROUNDS, Sleeper, wait_for};
use crate::arch::percpu;
use crate::sched::{self, State, Task, stats};
use crate::{kassert, ktest};

/// Statistics on for the test, back as they were when it ends (however).
struct StatsOn(bool);

impl StatsOn {
    fn new() -> Self {
        let was = stats::enabled();
        stats::set_enabled(true);
        StatsOn(was)
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        stats::set_enabled(self.0);
    }
}

ktest!(
    fn sched_place_wakeup_on_an_idle_cpu_counts_as_on_idle() {
        // A task woken onto an idle CPU "preempts" the idle task, and was
        // counted as preempting: the statistics then showed no wakeup on
        // an idle CPU at all, and slow wakeups on idle CPUs as slow
        // preemptions.
        let n = percpu::online_count();
        if n < 2 {
            return crate::ktest::skip("needs two CPUs");
        }
        let _on = StatsOn::new();
        let (me, cpu) = (n - 2, n - 1);
        let _pin = Pin::to(me);
        let sleeper = Sleeper::spawn("place-sleeper", cpu);
        sleeper.run("the sleeper's CPU to go idle", || sched::cpu_idle(cpu))?;
        let [on_idle, preempting, behind] = stats::woken_counts(sleeper.task());
        // Another task may run on that CPU between our look and the
        // wakeup (a callback task), so not every one; most, by far.
        kassert!(
            2 * on_idle >= ROUNDS,
            "{ROUNDS} wakeups of a task whose CPU we saw idle: {on_idle} counted on idle, {preempting} preempting, {behind} behind"
        );
        Ok(())
    }
);

/// A task pinned to `cpu` that spins (preemptible) until `stop`.
fn spawn_hog(cpu: usize, stop: &Arc<AtomicBool>) -> Arc<Task> {
    let stop = stop.clone();
    sched::spawn("place-hog", Some(cpu), move || {
        // Acquire: pairs with the test's Release store of `stop`.
        while !stop.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    })
}

ktest!(
    fn sched_place_wait_behind_a_kernel_task_counts_as_behind_kernel() {
        // A task that yields to a spinning kernel task on its CPU spends
        // its time in the queue while that task runs (a tick each time):
        // its wait goes to "behind kernel tasks", none to user threads.
        let _on = StatsOn::new();
        let cpu = percpu::online_count() - 1;
        let stop = Arc::new(AtomicBool::new(false));
        let hog = spawn_hog(cpu, &stop);
        let yielder = sched::spawn("place-yielder", Some(cpu), || {
            for _ in 0..ROUNDS {
                sched::yield_now();
            }
        });
        let res = wait_for("the yielder to finish", || yielder.state() == State::Exited);
        // Release: pairs with the hog's Acquire load.
        stop.store(true, Ordering::Release);
        sched::join(&hog);
        sched::join(&yielder);
        res?;
        let [kernel, user, idle, _] = stats::wait_split_ns(&yielder);
        let total = yielder.wait_sum_ns.load(Ordering::Relaxed);
        kassert!(
            user == 0 && kernel > 0 && 4 * kernel >= 3 * total,
            "a task that yielded {ROUNDS} times to a kernel task waited {total} ns: {kernel} behind kernel tasks, {user} behind user threads, {idle} with its CPU idle"
        );
        Ok(())
    }
);
