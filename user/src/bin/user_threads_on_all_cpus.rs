//! Test: one thread pinned to each CPU really runs there, stays there across
//! yields, and its result comes back through join.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use rt::{Args, check, println};

rt::main!(main);

fn main(_args: Args) -> i32 {
    let cpus = rt::cpu_count();
    check!(cpus >= 1, "CPU_COUNT returned {cpus}");
    let threads: Vec<_> = (0..cpus)
        .map(|cpu| {
            rt::spawn(move || {
                if let Err(e) = rt::pin(cpu) {
                    rt::fail!("pin({cpu}): {e}");
                }
                let mut seen = 0u64;
                for _ in 0..10 {
                    let now = rt::cpu_id();
                    check!(now == cpu, "pinned to {cpu} but running on {now}");
                    seen |= 1 << now;
                    rt::yield_now();
                }
                seen
            })
        })
        .collect();
    let mut all = 0u64;
    for (cpu, t) in threads.into_iter().enumerate() {
        let seen = t.join();
        check!(
            seen == 1 << cpu,
            "thread for CPU {cpu} ran on CPUs {seen:#b}"
        );
        all |= seen;
    }
    check!(
        all.count_ones() as usize == cpus,
        "threads covered CPUs {all:#b} of {cpus}"
    );
    check!(
        rt::pin(cpus) == Err(rt::Errno::EINVAL),
        "pin to a CPU that does not exist succeeded"
    );
    println!("ok: {cpus} threads, one on each CPU");
    0
}
