//! `clock_check [-d SECONDS]`: lets the host check that a guest second is a
//! wall-clock second (benchmarks that compare guest and host timings need
//! them to agree). It prints `clock_check start`, spins on CLOCK_NS until
//! D seconds have passed by the guest clock (default 5), then prints
//! `clock_check end guest_ns=N`; the host times the two lines on its own
//! clock and compares. It then reports how long NANOSLEEP(1 s) took by
//! CLOCK_NS (at least 1 s, or the sleep is wrong).
#![no_std]
#![no_main]

use rt::args::{Opt, parse_seconds_ns};
use rt::fmt::Seconds3;
use rt::{Args, check, println};

rt::main!(main);

fn main(args: Args) -> i32 {
    let mut ns = 5_000_000_000;
    for opt in args.getopt("d:") {
        match opt {
            Opt::Flag('d', Some(v)) if parse_seconds_ns(v).is_some_and(|v| v > 0) => {
                ns = parse_seconds_ns(v).unwrap_or(ns)
            }
            _ => {
                println!("usage: clock_check [-d seconds]");
                return 2;
            }
        }
    }
    println!("clock_check start");
    let t0 = rt::clock_ns();
    let mut last = t0;
    while last - t0 < ns {
        let now = rt::clock_ns();
        check!(now >= last, "CLOCK_NS went backwards: {last} then {now}");
        last = now;
    }
    println!("clock_check end guest_ns={}", last - t0);

    let s0 = rt::clock_ns();
    rt::sleep_ns(1_000_000_000);
    let slept = rt::clock_ns() - s0;
    println!(
        "clock_check nanosleep(1 s) took {} s by CLOCK_NS",
        Seconds3(slept)
    );
    check!(
        slept >= 1_000_000_000,
        "NANOSLEEP(1 s) returned after {slept} ns"
    );
    0
}
