//! `hello`: a line from the main thread, then one thread per CPU, each pinned
//! to its CPU, saying where it runs.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use rt::{Args, println};

rt::main!(main);

fn main(_args: Args) -> i32 {
    let cpus = rt::cpu_count();
    println!("hello from user mode: {cpus} CPUs");
    let threads: Vec<_> = (0..cpus)
        .map(|cpu| {
            rt::spawn(move || {
                let pinned = rt::pin(cpu);
                println!(
                    "hello from a thread on CPU {} (asked for {cpu}: {pinned:?})",
                    rt::cpu_id()
                );
            })
        })
        .collect();
    for t in threads {
        t.join();
    }
    0
}
