//! Test: NANOSLEEP at its extremes. `0` and `1` return (after at least that
//! long); durations whose deadline lies beyond the clock's range (`u64::MAX`,
//! and just past `u64::MAX - now`) sleep "forever" instead of wrapping to a
//! deadline in the past. Threads sleeping so, one pinned to each CPU, are
//! still asleep when `main` ends the process with EXIT; the kernel test
//! checks that the process ends at once (a sleeper the kill does not wake
//! would keep it alive).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicUsize, Ordering};
use rt::{Args, check, println};

rt::main!(main);

/// Threads that are about to sleep, and threads whose "endless" sleep
/// returned (each one a bug). Relaxed: counts only, no data goes with them.
static ASLEEP: AtomicUsize = AtomicUsize::new(0);
static WOKE: AtomicUsize = AtomicUsize::new(0);

fn main(_args: Args) -> i32 {
    for ns in [0, 1, 1_000_000] {
        let t0 = rt::clock_ns();
        rt::sleep_ns(ns);
        let slept = rt::clock_ns() - t0;
        check!(slept >= ns, "NANOSLEEP({ns}) returned after {slept} ns");
    }
    println!("ok: NANOSLEEP(0), (1), (1 ms) return, after at least that long");

    let endless = |cpu: usize| {
        let now = rt::clock_ns();
        [
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            i64::MAX as u64,
            // The first durations whose deadline, now + ns, overflows.
            u64::MAX - now,
            u64::MAX - now + 1,
            // Large, but in range: 2^62 ns is about 146 years.
            (1 << 62) + cpu as u64,
        ]
    };
    let cpus = rt::cpu_count();
    let mut sleepers = 0;
    for cpu in 0..cpus {
        for ns in endless(cpu) {
            sleepers += 1;
            // Never joined: the process ends while they sleep.
            core::mem::forget(rt::spawn(move || {
                let _ = rt::pin(cpu);
                ASLEEP.fetch_add(1, Ordering::Relaxed);
                rt::sleep_ns(ns);
                WOKE.fetch_add(1, Ordering::Relaxed);
                println!("FAIL: NANOSLEEP({ns:#x}) returned");
            }));
        }
    }
    while ASLEEP.load(Ordering::Relaxed) < sleepers {
        rt::sleep_ns(1_000_000);
    }
    // Give a wrapped deadline time to show itself: such a sleep returns at
    // the next tick.
    rt::sleep_ns(20_000_000);
    let woke = WOKE.load(Ordering::Relaxed);
    check!(woke == 0, "{woke} endless sleeps returned");
    println!("ok: {sleepers} endless sleeps on {cpus} CPUs; ending the process under them");
    rt::exit(0)
}
