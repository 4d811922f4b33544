//! For `join_reaps_thread`: spawn and join one thread at a time, 10,000
//! times (`-n N` to change), checking each result. The kernel test watches
//! from outside: the process never lists more than two threads (`main` and
//! the one running), and frames and kernel heap stay flat, because each
//! THREAD_JOIN frees the thread's task and kernel stack.
#![no_std]
#![no_main]

use rt::args::{Opt, parse_u64};
use rt::{Args, check, println};

rt::main!(main);

fn main(args: Args) -> i32 {
    let mut cycles = 10_000u64;
    for opt in args.getopt("n:") {
        match opt {
            Opt::Flag('n', Some(v)) => cycles = parse_u64(v).expect("-n N"),
            other => rt::fail!("usage: join_reaps_thread [-n cycles]: {other:?}"),
        }
    }
    let t0 = rt::clock_ns();
    for i in 0..cycles {
        let got = rt::spawn(move || i.wrapping_mul(3) + 1).join();
        check!(got == i.wrapping_mul(3) + 1, "cycle {i}: joined {got}");
    }
    let ms = (rt::clock_ns() - t0) / 1_000_000;
    println!("{cycles} spawn/join cycles in {ms} ms");
    0
}
