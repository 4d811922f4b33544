//! `faultbench`: a page-fault throughput benchmark; `bench/faultbench.c` is
//! the same program line for line for Linux, so one script compares this OS
//! with Linux.
//!
//! Each worker thread loops: map P pages (PROT_READ|PROT_WRITE, private,
//! anonymous) at its own hint address (16 TiB + (i+1) GiB), write one byte per
//! page (one fault each), unmap. `-m writer` adds a thread that loops
//! map 16 pages / mprotect(PROT_READ) / munmap at 16 TiB, so `mmap_lock` is
//! taken for write continuously. `-m spinner` adds instead a thread that
//! only spins in user mode (no system call, no memory): the control for
//! writer mode, showing what a second busy vCPU costs the workers by itself.
//!
//! Differences from the C program, each forced by this OS: `minflt` is the
//! kernel's count of handled faults (success + fallback over all CPUs) from
//! `FAULT_COUNTERS`, as there is no getrusage; there is no THP to disable;
//! the start line is a yield loop rather than a pure spin (the C threads
//! spin on Linux's preemptive scheduler, ours must not starve one CPU);
//! `-v on|off` sets the per-VMA switch for the run (and restores it).
//! A second line gives the kernel's lock-path counters.
#![no_std]
#![no_main]

extern crate alloc;

use abi::Errno;
use abi::mman::{PAGE_SIZE, PROT_READ, PROT_WRITE};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use programs::counters::{Snapshot, total};
use rt::args::{Opt, parse_seconds_ns, parse_u64};
use rt::fmt::{Seconds3, per_second};
use rt::{Args, println};

rt::main!(main);

const WRITER_PAGES: u64 = 16;
const HINT_BASE: u64 = 0x1000_0000_0000; // 16 TiB
const HINT_STRIDE: u64 = 1 << 30; // 1 GiB per thread

/// The C program's globals. Orderings follow its C11 atomics: `SeqCst` where
/// it uses the plain (sequentially consistent) calls, Acquire/Release and
/// Relaxed where it names them.
struct Shared {
    go: AtomicBool,     // false = wait, true = run
    stop: AtomicBool,   // set by main after D seconds
    ready: AtomicUsize, // threads that reached the start line
    npages: u64,
    use_hints: bool,
}

#[derive(Default)]
struct Outcome {
    faults: u64,
    iters: u64,
    err: Option<Errno>,
}

fn hint_for(s: &Shared, idx: usize) -> u64 {
    if s.use_hints {
        HINT_BASE + idx as u64 * HINT_STRIDE
    } else {
        0
    }
}

fn wait_start(s: &Shared) {
    s.ready.fetch_add(1, Ordering::SeqCst);
    // Acquire pairs with main's Release store of `go`.
    while !s.go.load(Ordering::Acquire) {
        rt::yield_now();
    }
}

fn worker_fn(s: &Shared, idx: usize) -> Outcome {
    let len = s.npages * PAGE_SIZE;
    let hint = hint_for(s, idx + 1);
    let (mut faults, mut iters) = (0, 0);
    let mut err = None;

    wait_start(s);
    while !s.stop.load(Ordering::Relaxed) {
        let p = match rt::mmap_anon(hint, len, PROT_READ | PROT_WRITE) {
            Ok(p) => p,
            Err(e) => {
                err = Some(e);
                break;
            }
        };
        for i in 0..s.npages {
            // SAFETY: inside the fresh mapping of `npages` pages.
            unsafe { p.add((i * PAGE_SIZE) as usize).write_volatile(1) };
        }
        faults += s.npages;
        // SAFETY: the mapping is this loop's alone and no longer used.
        if let Err(e) = unsafe { rt::munmap(p, len) } {
            err = Some(e);
            break;
        }
        iters += 1;
    }
    Outcome { faults, iters, err }
}

fn writer_fn(s: &Shared) -> Outcome {
    let len = WRITER_PAGES * PAGE_SIZE;
    let hint = hint_for(s, 0);
    let mut ops = 0;
    let mut err = None;

    wait_start(s);
    while !s.stop.load(Ordering::Relaxed) {
        let p = match rt::mmap_anon(hint, len, PROT_READ | PROT_WRITE) {
            Ok(p) => p,
            Err(e) => {
                err = Some(e);
                break;
            }
        };
        // SAFETY: the writer's own mapping, never touched.
        if let Err(e) = unsafe { rt::mprotect(p, len, PROT_READ).and_then(|()| rt::munmap(p, len)) }
        {
            err = Some(e);
            break;
        }
        ops += 1;
    }
    Outcome {
        faults: 0,
        iters: ops,
        err,
    }
}

/// The control thread of `-m spinner`: busy in user mode, sharing nothing
/// with the kernel or the workers but the start and stop flags.
fn spinner_fn(s: &Shared) -> Outcome {
    wait_start(s);
    let mut spins = 0u64;
    while !s.stop.load(Ordering::Relaxed) {
        spins = core::hint::black_box(spins + 1);
    }
    Outcome {
        faults: 0,
        iters: 0,
        err: None,
    }
}

/// Who runs beside the workers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Quiet,
    Writer,
    Spinner,
}

fn usage() -> i32 {
    println!(
        "usage: faultbench [-t threads] [-p pages] [-d seconds] [-m quiet|writer|spinner] [-n] [-v on|off]\n\
         \x20 -t  worker threads (default 1)\n\
         \x20 -p  4 KiB pages mapped+touched per iteration (default 2048 = 8 MiB)\n\
         \x20 -d  duration in seconds (default 5)\n\
         \x20 -m  quiet: workers only; writer: + one mmap/mprotect/munmap thread;\n\
         \x20     spinner: + one thread spinning in user mode (the control)\n\
         \x20 -n  no address hints (let the kernel place every mapping)\n\
         \x20 -v  per-VMA fault path on or off for this run (default: leave as is)"
    );
    2
}

fn main(args: Args) -> i32 {
    let (mut nthreads, mut mode) = (1u64, Mode::Quiet);
    let (mut npages, mut use_hints) = (2048u64, true);
    let mut duration_ns = 5_000_000_000u64;
    let mut per_vma = None;

    for opt in args.getopt("t:p:d:m:nhv:") {
        match opt {
            Opt::Flag('t', Some(v)) => nthreads = parse_u64(v).unwrap_or(0),
            Opt::Flag('p', Some(v)) => npages = parse_u64(v).unwrap_or(0),
            Opt::Flag('d', Some(v)) => duration_ns = parse_seconds_ns(v).unwrap_or(0),
            Opt::Flag('m', Some("quiet")) => mode = Mode::Quiet,
            Opt::Flag('m', Some("writer")) => mode = Mode::Writer,
            Opt::Flag('m', Some("spinner")) => mode = Mode::Spinner,
            Opt::Flag('n', None) => use_hints = false,
            Opt::Flag('v', Some("on")) => per_vma = Some(true),
            Opt::Flag('v', Some("off")) => per_vma = Some(false),
            _ => return usage(),
        }
    }
    if !(1..=1000).contains(&nthreads) || npages < 1 || duration_ns == 0 {
        return usage();
    }
    let old_per_vma = match per_vma.map(rt::set_per_vma) {
        Some(Err(e)) => {
            println!("faultbench: SET_PER_VMA: {e}");
            return 1;
        }
        Some(Ok(old)) => Some(old),
        None => None,
    };

    let nthreads = nthreads as usize;
    let writer = mode == Mode::Writer;
    let total_threads = nthreads + (mode != Mode::Quiet) as usize;
    let s = Arc::new(Shared {
        go: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        ready: AtomicUsize::new(0),
        npages,
        use_hints,
    });
    let mut ws = Vec::with_capacity(total_threads);
    for i in 0..total_threads {
        let s = s.clone();
        let role = if i == nthreads { mode } else { Mode::Quiet };
        let spawned = rt::thread::try_spawn(move || match role {
            Mode::Writer => writer_fn(&s),
            Mode::Spinner => spinner_fn(&s),
            Mode::Quiet => worker_fn(&s, i),
        });
        match spawned {
            Ok(h) => ws.push(h),
            Err(e) => {
                println!("thread_spawn: {e}");
                return 1;
            }
        }
    }
    while s.ready.load(Ordering::SeqCst) < total_threads {
        rt::sleep_ns(1_000_000);
    }

    let mut flt0 = Snapshot::new();
    let mut flt1 = Snapshot::new();
    flt0.read();
    let t0 = rt::clock_ns();
    // Release pairs with the Acquire in `wait_start`.
    s.go.store(true, Ordering::Release);

    rt::sleep_ns(duration_ns);
    s.stop.store(true, Ordering::SeqCst);

    let results: Vec<Outcome> = ws.into_iter().map(|h| h.join()).collect();
    let ns = rt::clock_ns() - t0;
    flt1.read();
    let kernel = total(&flt1.delta(&flt0));
    if let Some(old) = old_per_vma {
        let _ = rt::set_per_vma(old);
    }

    let mut faults = 0;
    let mut wops = 0;
    let mut err = None;
    for r in &results[..nthreads] {
        faults += r.faults;
        if r.err.is_some() {
            err = r.err;
        }
    }
    if writer {
        wops = results[nthreads].iters;
        if results[nthreads].err.is_some() {
            err = results[nthreads].err;
        }
    }

    println!(
        "faultbench mode={} threads={} pages={} faults={} seconds={} faults_per_sec={} \
         writer_ops={} writer_ops_per_sec={} minflt={}{}",
        match mode {
            Mode::Quiet => "quiet",
            Mode::Writer => "writer",
            Mode::Spinner => "spinner",
        },
        nthreads,
        npages,
        faults,
        Seconds3(ns),
        per_second(faults, ns),
        wops,
        per_second(wops, ns),
        kernel.handled(),
        match err {
            Some(e) => alloc::format!(" error={e}"),
            None => alloc::string::String::new(),
        }
    );
    println!(
        "faultbench_kernel success={} abort={} retry={} miss={} fallback={} segv={}{}",
        kernel.success,
        kernel.abort,
        kernel.retry,
        kernel.miss,
        kernel.fallback,
        kernel.segv,
        match per_vma {
            Some(true) => " per_vma=on",
            Some(false) => " per_vma=off",
            None => "",
        }
    );
    if err.is_some() { 1 } else { 0 }
}
