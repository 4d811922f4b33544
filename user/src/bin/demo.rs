//! `demo`: every CPU faults at once while another thread maps, protects and
//! unmaps; then a per-CPU table of the faults and of the lock path that
//! handled them.
//!
//! Options: `-d SECONDS` (default 2), `-p PAGES` per round (default 256),
//! `-m quiet` to leave the writer out.
#![no_std]
#![no_main]

use programs::counters::total;
use programs::storm::{self, Length};
use rt::args::{Opt, parse_seconds_ns, parse_u64};
use rt::fmt::per_second;
use rt::{Args, println};

rt::main!(main);

fn usage() -> i32 {
    println!("usage: demo [-d seconds] [-p pages] [-m quiet|writer]");
    2
}

fn main(args: Args) -> i32 {
    let (mut ns, mut pages, mut with_writer) = (2_000_000_000, 256, true);
    for opt in args.getopt("d:p:m:") {
        match opt {
            Opt::Flag('d', Some(v)) => match parse_seconds_ns(v) {
                Some(v) if v > 0 => ns = v,
                _ => return usage(),
            },
            Opt::Flag('p', Some(v)) => match parse_u64(v) {
                Some(v) if v > 0 => pages = v,
                _ => return usage(),
            },
            Opt::Flag('m', Some("quiet")) => with_writer = false,
            Opt::Flag('m', Some("writer")) => with_writer = true,
            _ => return usage(),
        }
    }
    let cpus = rt::cpu_count();
    println!(
        "demo: {cpus} worker threads, one pinned per CPU, each mapping, touching and unmapping \
         {pages} pages in its own region for {} s{}",
        rt::fmt::Seconds3(ns),
        if with_writer {
            ", while a writer thread maps, write-protects and unmaps 16 pages in a loop"
        } else {
            ""
        }
    );
    let r = storm::run(pages, Length::Nanos(ns), with_writer);

    println!(
        "{:>4} {:>12} {:>12} {:>10} {:>8} {:>8} {:>8} {:>10} {:>6}",
        "cpu", "worker_flt", "faults/s", "success", "abort", "retry", "miss", "fallback", "segv"
    );
    for (cpu, c) in r.counters.iter().enumerate() {
        let mine = r.worker_faults.get(cpu).copied().unwrap_or(0);
        println!(
            "{:>4} {:>12} {:>12} {:>10} {:>8} {:>8} {:>8} {:>10} {:>6}",
            cpu,
            mine,
            per_second(mine, r.ns),
            c.success,
            c.abort,
            c.retry,
            c.miss,
            c.fallback,
            c.segv
        );
    }
    let t = total(&r.counters);
    let all: u64 = r.worker_faults.iter().sum();
    println!(
        "{:>4} {:>12} {:>12} {:>10} {:>8} {:>8} {:>8} {:>10} {:>6}",
        "all",
        all,
        per_second(all, r.ns),
        t.success,
        t.abort,
        t.retry,
        t.miss,
        t.fallback,
        t.segv
    );
    let handled = t.handled().max(1);
    println!(
        "per-VMA path: {}.{}% of {} faults; writer: {} map/protect/unmap cycles in {} s",
        t.success * 100 / handled,
        t.success * 1000 / handled % 10,
        t.handled(),
        r.writer_ops,
        rt::fmt::Seconds3(r.ns)
    );
    0
}
