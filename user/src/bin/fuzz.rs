//! The fuzzer: hostile but seeded work for the kernel to survive. Started by
//! the kernel's `fuzz_short` test (or `make fuzz`), one process per round:
//!
//! `fuzz seed=S mode=syscalls|flags|vm|code [threads=N] [iters=N]`
//!
//! - `syscalls`: `threads` threads issue `iters` random system calls each,
//!   every number in the ABI plus numbers past its end, with edge-case
//!   arguments (0, 1, -1, huge lengths, unaligned, kernel-half, kernel-image
//!   and non-canonical pointers, random flags and rights). Each result must
//!   be a well-formed success or one of the documented error codes.
//! - `vm`: half the threads map, protect and unmap random pages of a small
//!   region while the others read and write random addresses in it (and in
//!   the kernel half) with a fault handler installed; every bad fault must
//!   be reported at the right address, every successful read see 0 or what
//!   the writers write.
//! - `flags`: as `syscalls`, but every call is entered with random RFLAGS
//!   bits set (DF, NT, AC and the arithmetic flags), which the kernel must
//!   neither inherit nor trip over on its way back.
//! - `code`: `iters` times, fill a page with random bytes, make it R+X and
//!   jump to it with zeroed registers (and sometimes TF, NT, AC or DF set in
//!   RFLAGS) in a fresh thread. The thread is
//!   expected to die of some exception: its fault handler catches it and
//!   ends the thread; a thread still running after half a second ends the
//!   process. Any ending is fine; the kernel must survive.
//!
//! Exit 0 when the round ran; 1 (`FAIL: ...`) when a syscall broke its
//! contract. The kernel side checks what only it can see (frames, warnings).
#![no_std]
#![no_main]

extern crate alloc;

use abi::errno::Errno;
use abi::mman::{
    MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_EXEC, PROT_MASK, PROT_NONE, PROT_READ,
    PROT_WRITE, USER_END, USER_START,
};
use abi::{FaultReason, nr};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use programs::fuzz::{ARENA, BAD_ADDRS, Rng, edge, hits_runtime, syscall6, syscall6_with_rflags};
use rt::{Args, println};

rt::main!(main);

core::arch::global_asm!(
    ".pushsection .text.fuzz, \"ax\"",
    // A thread entry that ends its thread at once (uses no stack).
    ".global fuzz_thread_stub",
    "fuzz_thread_stub:",
    "    mov eax, {thread_exit}",
    "    xor edi, edi",
    "    syscall",
    "    ud2",
    ".popsection",
    thread_exit = const nr::THREAD_EXIT,
);

unsafe extern "C" {
    fn fuzz_thread_stub();
}

/// Random-code threads whose fault reached their handler.
static LANDED: AtomicU64 = AtomicU64::new(0);

struct Config {
    seed: u64,
    mode: &'static str,
    threads: u64,
    iters: u64,
}

fn parse(args: Args) -> Result<Config, String> {
    let mut c = Config {
        seed: 1,
        mode: "syscalls",
        threads: 4,
        iters: 1000,
    };
    for arg in args.iter() {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| alloc::format!("argument {arg}: expected key=value"))?;
        let num = || rt::args::parse_u64(v).ok_or_else(|| alloc::format!("{k}={v}: not a number"));
        match k {
            "seed" => c.seed = num()?,
            "mode" => c.mode = v,
            "threads" => c.threads = num()?.max(1),
            "iters" => c.iters = num()?,
            _ => return Err(alloc::format!("unknown argument {k}")),
        }
    }
    Ok(c)
}

fn main(args: Args) -> i32 {
    let c = match parse(args) {
        Ok(c) => c,
        Err(e) => rt::fail!("{e}"),
    };
    println!(
        "fuzz: seed={} mode={} threads={} iters={}",
        c.seed, c.mode, c.threads, c.iters
    );
    let result = match c.mode {
        "syscalls" => syscalls::run(&c, false),
        "flags" => syscalls::run(&c, true),
        "vm" => vm::run(&c),
        "code" => code::run(&c),
        m => Err(alloc::format!("unknown mode {m}")),
    };
    match result {
        Ok(summary) => {
            println!();
            println!("fuzz: seed={} mode={} done: {summary}", c.seed, c.mode);
            0
        }
        Err(e) => {
            // Start a line of its own (WRITE calls print dots without one).
            println!();
            rt::fail!("seed={} mode={}: {e}", c.seed, c.mode)
        }
    }
}

/// Runs `work(index)` on `n` threads and collects the first failure.
fn on_threads<F>(n: u64, work: F) -> Result<(), String>
where
    F: Fn(u64) -> Result<(), String> + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let w = work.clone();
            rt::spawn(move || w(i))
        })
        .collect();
    let mut first = Ok(());
    for h in handles {
        let r = h.join();
        if first.is_ok() {
            first = r;
        }
    }
    first
}

fn round_up_page(len: u64) -> Option<u64> {
    Some(len.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1))
}

mod syscalls {
    use super::*;

    /// Buffers the calls may read or write: a read-write page, a read-only
    /// page of dots (what `WRITE` prints), then a `PROT_NONE` page, so copies
    /// that run past the end fault in the middle.
    #[derive(Clone, Copy)]
    struct Buffers {
        rw: u64,
        dots: u64,
        none: u64,
    }

    fn buffers() -> Result<Buffers, String> {
        let base = rt::mmap_anon(0, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE)
            .map_err(|e| alloc::format!("mmap buffers: {e}"))? as u64;
        let b = Buffers {
            rw: base,
            dots: base + PAGE_SIZE,
            none: base + 2 * PAGE_SIZE,
        };
        // SAFETY: our fresh mapping; nothing else refers to it.
        unsafe {
            core::ptr::write_bytes(b.dots as *mut u8, b'.', PAGE_SIZE as usize);
            rt::mprotect(b.dots as *mut u8, PAGE_SIZE, PROT_READ)
                .and_then(|_| rt::mprotect(b.none as *mut u8, PAGE_SIZE, PROT_NONE))
                .map_err(|e| alloc::format!("mprotect buffers: {e}"))?;
        }
        Ok(b)
    }

    /// What a worker knows while it picks arguments.
    struct Worker {
        rng: Rng,
        buf: Buffers,
        cpus: u64,
        me: u64,
        /// Threads it started (each ends at once) and has not joined yet.
        stubs: Vec<u64>,
        /// Threads it joined: joining them again must fail with `ESRCH`.
        joined: Vec<u64>,
        with_flags: bool,
    }

    /// Numbers past the last syscall: each must return `ENOSYS`.
    const OUT_OF_RANGE: [u64; 8] = [
        nr::ALL.len() as u64,
        nr::ALL.len() as u64 + 1,
        255,
        256,
        1 << 32,
        1 << 63,
        u64::MAX,
        u64::MAX - 1,
    ];

    /// `with_flags`: enter every call with random RFLAGS bits set.
    pub fn run(c: &Config, with_flags: bool) -> Result<String, String> {
        let buf = buffers()?;
        let cpus = rt::cpu_count() as u64;
        let seed = c.seed;
        let iters = c.iters;
        let calls = Arc::new(AtomicU64::new(0));
        let total = calls.clone();
        // Each worker needs its own thread id (a self-join must be EINVAL);
        // only the spawner learns it, so the workers wait for `ready`.
        let ids: Arc<[AtomicU64]> = (0..c.threads).map(|_| AtomicU64::new(0)).collect();
        let ids2 = ids.clone();
        let ready = Arc::new(AtomicBool::new(false));
        let ready2 = ready.clone();
        let work = move |i: u64| -> Result<(), String> {
            // Acquire pairs with the Release store after every id is known.
            while !ready2.load(Ordering::Acquire) {
                rt::yield_now();
            }
            let mut w = Worker {
                rng: Rng::new(seed, i),
                buf,
                cpus,
                me: ids2[i as usize].load(Ordering::Relaxed),
                stubs: Vec::new(),
                joined: Vec::new(),
                with_flags,
            };
            for k in 0..iters {
                w.one_call()
                    .map_err(|e| alloc::format!("thread {i} call {k}: {e}"))?;
                // Relaxed: a statistic, read after every thread was joined.
                total.fetch_add(1, Ordering::Relaxed);
            }
            w.join_stubs()
        };
        let work = Arc::new(work);
        let handles: Vec<_> = (0..c.threads)
            .map(|i| {
                let w = work.clone();
                rt::spawn(move || w(i))
            })
            .collect();
        for (slot, h) in ids.iter().zip(&handles) {
            slot.store(h.tid(), Ordering::Relaxed);
        }
        // Release pairs with the workers' Acquire: they see every id.
        ready.store(true, Ordering::Release);
        let mut first = Ok(());
        for h in handles {
            let r = h.join();
            if first.is_ok() {
                first = r;
            }
        }
        first?;
        // SAFETY: the buffers are ours and no thread uses them any more.
        let _ = unsafe { rt::munmap(buf.rw as *mut u8, 3 * PAGE_SIZE) };
        Ok(alloc::format!("{} calls", calls.load(Ordering::Relaxed)))
    }

    impl Worker {
        fn one_call(&mut self) -> Result<(), String> {
            let (n, a) = self.pick();
            // SAFETY: `pick` only issues calls that leave the runtime's own
            // memory, stacks and threads alone (see `hits_runtime`), and
            // `after` undoes what would change this thread's state.
            let r = unsafe {
                if self.with_flags {
                    let flags = self.random_rflags();
                    syscall6_with_rflags(n, a, flags)
                } else {
                    syscall6(n, a)
                }
            };
            let res = abi::errno::decode(r);
            self.after(n, a, res);
            check(n, a, r, self)
                .map_err(|e| alloc::format!("{}{:x?} = {:#x}: {e}", name(n), &a[..4], r))
        }

        /// RFLAGS bits a user program may set with `popfq` and the kernel
        /// must not inherit (or must not be hurt by): the arithmetic flags,
        /// DF (string direction), NT (nested task), AC (alignment check, and
        /// SMAP's override in ring 0). Not TF: a single-step trap is the
        /// `code` mode's business.
        fn random_rflags(&mut self) -> u64 {
            const BITS: [u64; 9] = [0, 2, 4, 6, 7, 10, 11, 14, 18];
            let mut f = 0;
            for b in BITS {
                if self.rng.one_in(3) {
                    f |= 1 << b;
                }
            }
            f
        }

        fn pick(&mut self) -> (u64, [u64; 6]) {
            loop {
                let n = if self.rng.one_in(12) {
                    self.rng.pick(&OUT_OF_RANGE)
                } else {
                    // Every call but EXIT and THREAD_EXIT, which end things.
                    2 + self.rng.below(nr::ALL.len() as u64 - 2)
                };
                let mut a = [0; 6];
                for x in a.iter_mut() {
                    *x = edge(&mut self.rng);
                }
                if self.shape(n, &mut a) {
                    return (n, a);
                }
            }
        }

        /// Bends the random arguments of call `n` so it cannot break the
        /// fuzzer itself; false to pick another call.
        fn shape(&mut self, n: u64, a: &mut [u64; 6]) -> bool {
            let r = &mut self.rng;
            match n {
                nr::THREAD_SPAWN => {
                    // Only the stub may start (any other entry must be refused).
                    a[0] = if r.one_in(2) {
                        fuzz_thread_stub as *const () as u64
                    } else {
                        r.pick(&BAD_ADDRS)
                    };
                    let in_user = (USER_START..USER_END).contains(&a[0]);
                    a[1] = match r.below(3) {
                        0 => self.buf.none,
                        1 => self.buf.none + r.below(16),
                        _ => r.pick(&BAD_ADDRS),
                    };
                    !(in_user && a[0] != fuzz_thread_stub as *const () as u64)
                        && self.stubs.len() < 32
                }
                nr::THREAD_JOIN => {
                    a[0] = match r.below(4) {
                        0 if !self.stubs.is_empty() => {
                            self.stubs[r.below(self.stubs.len() as u64) as usize]
                        }
                        1 if !self.joined.is_empty() => {
                            self.joined[r.below(self.joined.len() as u64) as usize]
                        }
                        2 => self.me,
                        _ => r.pick(&[0, u64::MAX, 1 << 40, 1 << 63]),
                    };
                    true
                }
                nr::WRITE => {
                    // Print only dots: a few, or a run into the PROT_NONE page.
                    if r.one_in(2) {
                        a[1] = r.below(16);
                        a[0] = self.buf.dots + r.below(PAGE_SIZE - 16);
                    } else if r.one_in(2) {
                        a[1] = 16 + r.below(300);
                        a[0] = self.buf.none - r.below(16);
                    } else {
                        a[0] = r.pick(&BAD_ADDRS);
                    }
                    true
                }
                nr::GET_ARGS | nr::FAULT_COUNTERS => {
                    // The kernel writes there: never into the runtime's memory.
                    if r.one_in(2) || hits_runtime(a[0] & !(PAGE_SIZE - 1), PAGE_SIZE) {
                        a[0] = self.buf.rw + r.below(2 * PAGE_SIZE);
                    }
                    if r.one_in(2) {
                        a[1] = r.below(300);
                    }
                    true
                }
                nr::MMAP | nr::MUNMAP | nr::MPROTECT => {
                    if r.one_in(2) {
                        a[0] = ARENA + r.below(256) * PAGE_SIZE + r.pick(&[0, 0, 0, 1, 8, 0xfff]);
                    }
                    if r.one_in(2) {
                        a[1] = r.below(64) * PAGE_SIZE + r.pick(&[0, 0, 1]);
                    }
                    if r.one_in(2) {
                        a[2] = r.below(9);
                    }
                    if n == nr::MMAP && r.one_in(2) {
                        a[3] = MAP_PRIVATE | MAP_ANONYMOUS | r.pick(&[0, MAP_FIXED, 1, 0x100]);
                    }
                    let moves = n != nr::MMAP || a[3] & MAP_FIXED != 0;
                    !(moves && hits_runtime(a[0], a[1]))
                }
                nr::PIN => {
                    a[0] = r.pick(&[
                        0,
                        1,
                        self.cpus - 1,
                        self.cpus,
                        63,
                        64,
                        1 << 32,
                        nr::UNPIN,
                        u64::MAX - 1,
                    ]);
                    true
                }
                // A sleep must end: at most a millisecond.
                nr::NANOSLEEP => {
                    let any = r.below(1_000_000);
                    a[0] = r.pick(&[0, 1, 1000, any]);
                    true
                }
                nr::SET_FAULT_HANDLER => {
                    if r.one_in(2) {
                        a[0] = fuzz_thread_stub as *const () as u64;
                    }
                    if r.one_in(2) {
                        a[1] = self.buf.none;
                    }
                    true
                }
                nr::SET_PER_VMA => {
                    a[0] = r.pick(&[0, 1, 2, u64::MAX]);
                    true
                }
                _ => true,
            }
        }

        /// Undoes what a call changed about this thread; tracks its threads.
        fn after(&mut self, n: u64, a: [u64; 6], res: Result<u64, Errno>) {
            match (n, res) {
                (nr::THREAD_SPAWN, Ok(tid)) => self.stubs.push(tid),
                (nr::THREAD_JOIN, Ok(_)) => {
                    self.stubs.retain(|&t| t != a[0]);
                    self.joined.push(a[0]);
                }
                (nr::SET_FAULT_HANDLER, _) => {
                    // SAFETY: removing the handler is always sound.
                    let _ = unsafe { rt::set_fault_handler(0, 0) };
                }
                (nr::PIN, Ok(_)) => rt::unpin(),
                _ => {}
            }
        }

        fn join_stubs(&mut self) -> Result<(), String> {
            for tid in core::mem::take(&mut self.stubs) {
                rt::thread_join(tid).map_err(|e| alloc::format!("join of stub {tid}: {e}"))?;
            }
            Ok(())
        }
    }

    fn name(n: u64) -> String {
        match nr::name(n) {
            Some(s) => String::from(s),
            None => alloc::format!("syscall{n:#x}"),
        }
    }

    const KNOWN_ERRORS: [Errno; 10] = [
        Errno::EPERM,
        Errno::ESRCH,
        Errno::EINTR,
        Errno::EAGAIN,
        Errno::ENOMEM,
        Errno::EFAULT,
        Errno::EBUSY,
        Errno::EEXIST,
        Errno::EINVAL,
        Errno::ENOSYS,
    ];

    /// The result must be well formed, and what the ABI promises for it.
    fn check(n: u64, a: [u64; 6], r: u64, w: &Worker) -> Result<(), String> {
        if r >= 1 << 63 && r < (-4095i64) as u64 {
            return Err(String::from("neither a success (< 2^63) nor an error code"));
        }
        let res = abi::errno::decode(r);
        if let Err(e) = res
            && !KNOWN_ERRORS.contains(&e)
        {
            return Err(alloc::format!("undocumented error {e}"));
        }
        let ok = res.is_ok();
        let must = |cond: bool, what: &str| {
            if cond {
                Ok(())
            } else {
                Err(String::from(what))
            }
        };
        let stub = fuzz_thread_stub as *const () as u64;
        match n {
            _ if n >= nr::ALL.len() as u64 => must(res == Err(Errno::ENOSYS), "expected ENOSYS"),
            nr::THREAD_SPAWN if ok => must(
                a[0] == stub && a[1].is_multiple_of(16) && in_user(a[1].wrapping_sub(1), 1),
                "started a thread at an entry or stack outside user space, or an unaligned stack",
            ),
            nr::THREAD_JOIN if w.joined.iter().filter(|&&t| t == a[0]).count() > 1 => Err(
                String::from("joined the same thread twice (expected ESRCH)"),
            ),
            nr::THREAD_JOIN if a[0] == w.me => {
                must(res == Err(Errno::EINVAL), "self-join: expected EINVAL")
            }
            nr::WRITE | nr::GET_ARGS if ok && a[1] > 0 && !in_user(a[0], a[1]) => {
                Err(String::from("used a buffer outside user space"))
            }
            nr::WRITE if ok => must(r == a[1], "wrote a different length"),
            nr::MMAP if ok => check_mmap(a, r),
            nr::MUNMAP | nr::MPROTECT if ok => must(
                a[0].is_multiple_of(PAGE_SIZE)
                    && a[1] != 0
                    && in_user(a[0], a[1])
                    && (n == nr::MUNMAP || a[2] & !PROT_MASK == 0),
                "accepted an unaligned, empty or out-of-range range, or unknown rights",
            ),
            nr::PIN => must(
                ok == (a[0] < w.cpus || a[0] == nr::UNPIN),
                "accepted an offline CPU or refused an online one",
            ),
            nr::YIELD | nr::NANOSLEEP => must(r == 0, "expected 0"),
            nr::CPU_ID => must(r < w.cpus, "CPU id out of range"),
            nr::CPU_COUNT => must(r == w.cpus, "CPU count changed"),
            nr::FAULT_COUNTERS if ok => must(
                r == a[1].min(w.cpus)
                    && (a[1] == 0 || a[1].checked_mul(48).is_some_and(|l| in_user(a[0], l))),
                "copied a wrong count, or accepted a buffer not all in user space",
            ),
            nr::GET_ARGS if ok => must(r <= a[1], "copied more than asked"),
            nr::SET_FAULT_HANDLER if ok => must(
                a[0] == 0
                    || (in_user(a[0], 1)
                        && a[1].is_multiple_of(16)
                        && in_user(a[1].wrapping_sub(1), 1)),
                "registered a handler outside user space or an unaligned handler stack",
            ),
            nr::FAULT_RETURN => must(!ok, "FAULT_RETURN outside a fault handler succeeded"),
            nr::SET_PER_VMA => must(
                ok == (a[0] <= 1) && (!ok || r <= 1),
                "accepted a value other than 0 or 1, or refused one",
            ),
            _ => Ok(()),
        }
    }

    /// `[addr, addr + len)` lies in user space, without wrapping.
    fn in_user(addr: u64, len: u64) -> bool {
        addr >= USER_START && addr.checked_add(len).is_some_and(|end| end <= USER_END)
    }

    fn check_mmap(a: [u64; 6], r: u64) -> Result<(), String> {
        let flags_ok = a[3] & (MAP_PRIVATE | MAP_ANONYMOUS) == MAP_PRIVATE | MAP_ANONYMOUS
            && a[3] & !(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED) == 0;
        if a[1] == 0 || a[2] & !PROT_MASK != 0 || !flags_ok || !a[0].is_multiple_of(PAGE_SIZE) {
            return Err(String::from(
                "accepted an empty length, unknown rights or flags, or an unaligned address",
            ));
        }
        let len = round_up_page(a[1]).unwrap_or(u64::MAX);
        if !r.is_multiple_of(PAGE_SIZE)
            || r < USER_START
            || r.checked_add(len).is_none_or(|e| e > USER_END)
        {
            return Err(alloc::format!(
                "mapped {len:#x} bytes at {r:#x}, outside user space"
            ));
        }
        if a[3] & MAP_FIXED != 0 && r != a[0] {
            return Err(String::from("MAP_FIXED placed the mapping elsewhere"));
        }
        Ok(())
    }
}

mod vm {
    use super::*;
    use rt::fault::{Fault, try_read, try_write};

    /// The region the threads fight over.
    const PAGES: u64 = 64;
    const PATTERN: u8 = 0xa5;
    /// Canonical addresses no user access may reach.
    const FORBIDDEN: [u64; 6] = [
        0,
        PAGE_SIZE - 1,
        USER_END,
        0xffff_8000_0000_0000,
        0xffff_ffff_8000_0000,
        0xffff_ffff_ffff_f000,
    ];

    pub fn run(c: &Config) -> Result<String, String> {
        let mutators = (c.threads / 2).max(1);
        let touchers = (c.threads - mutators).max(1);
        let done = Arc::new(AtomicU64::new(0));
        let caught = Arc::new(AtomicU64::new(0));
        let (seed, iters) = (c.seed, c.iters);
        let (d, k) = (done.clone(), caught.clone());
        on_threads(mutators + touchers, move |i| {
            let mut rng = Rng::new(seed, i);
            if i < mutators {
                let r = (0..iters).try_for_each(|_| mutate(&mut rng));
                // Release: the touchers stop after the last change (no data
                // travels with it; Relaxed would do, Release is clearer).
                d.fetch_add(1, Ordering::Release);
                r
            } else {
                touch(&mut rng, &d, mutators, &k)
            }
        })?;
        // SAFETY: the region belongs to the fuzzer; no thread runs any more.
        unsafe { rt::munmap(ARENA as *mut u8, PAGES * PAGE_SIZE) }
            .map_err(|e| alloc::format!("final munmap: {e}"))?;
        Ok(alloc::format!(
            "{} bad faults caught",
            caught.load(Ordering::Relaxed)
        ))
    }

    fn random_prot(rng: &mut Rng) -> u64 {
        rng.pick(&[
            PROT_NONE,
            PROT_READ,
            PROT_READ | PROT_WRITE,
            PROT_READ | PROT_EXEC,
            PROT_WRITE,
            7,
        ])
    }

    /// One map, protect or unmap of random pages of the region.
    fn mutate(rng: &mut Rng) -> Result<(), String> {
        let first = rng.below(PAGES);
        let n = 1 + rng.below((PAGES - first).min(8));
        let (addr, len) = (ARENA + first * PAGE_SIZE, n * PAGE_SIZE);
        let prot = random_prot(rng);
        // SAFETY: every range is inside the fuzzer's region, which only the
        // touchers use, and only through try_read/try_write.
        let r = unsafe {
            match rng.below(4) {
                0 | 1 => rt::mmap(addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
                    .map(|a| a as u64),
                2 => rt::mprotect(addr as *mut u8, len, prot)
                    .map(|_| addr)
                    .or_else(|e| {
                        // Part of the range unmapped: refused as a whole.
                        if e == Errno::ENOMEM { Ok(addr) } else { Err(e) }
                    }),
                _ => rt::munmap(addr as *mut u8, len).map(|_| addr),
            }
        };
        match r {
            Ok(a) if a == addr => Ok(()),
            Ok(a) => Err(alloc::format!("MAP_FIXED at {addr:#x} mapped at {a:#x}")),
            Err(e) => Err(alloc::format!(
                "map/protect/unmap {addr:#x}+{len:#x} prot {prot}: {e}"
            )),
        }
    }

    core::arch::global_asm!(
        ".pushsection .text.fuzz_fault, \"ax\"",
        // The kernel enters with rsp = the registered stack top, above which
        // `Handler` keeps a slot: record what the kernel reported there.
        ".global fuzz_fault_entry",
        "fuzz_fault_entry:",
        "    mov [rsp], rdi",
        "    mov [rsp + 8], rsi",
        "    mov rcx, rsp",
        "    and rsp, -16",
        "    call {main}",
        "    ud2",
        ".popsection",
        main = sym fault_main,
    );

    unsafe extern "C" {
        fn fuzz_fault_entry();
        // The runtime's one-access routines and their fixups (rt::fault).
        fn rt_try_read_insn();
        fn rt_try_write_insn();
        fn rt_fixups();
    }

    /// Like `rt::fault`'s handler, for `try_read`/`try_write` only, but it
    /// also records the address and reason the kernel reported (the
    /// runtime's `Fault` carries the address that was asked for).
    /// Resume addresses `FAULT_RETURN` must refuse (with `EINVAL`, leaving
    /// the handler running): outside user space, the kernel half and image,
    /// non-canonical.
    const BAD_RESUME: [u64; 7] = [
        0x800,
        USER_END,
        0x8000_0000_0000,
        0x0000_8000_0000_1000,
        0xffff_8000_0000_0000,
        0xffff_ffff_8010_0000,
        u64::MAX,
    ];

    /// `slot`: the registered stack top, where the entry stored the report;
    /// `slot[2]` holds the bad resume address being tried (0: none).
    extern "C" fn fault_main(addr: u64, reason: u64, rip: u64, slot: *mut u64) -> ! {
        let ours = rip == rt_try_read_insn as *const () as u64
            || rip == rt_try_write_insn as *const () as u64;
        // SAFETY: slot[2] is above the handler's stack, in its mapping, and
        // only this thread's handler touches it.
        let pending = unsafe { slot.add(2) };
        // SAFETY: as above.
        let accepted = unsafe { pending.read_volatile() };
        if accepted != 0 {
            // The last FAULT_RETURN went to its bad address, which faulted.
            rt::fail!(
                "FAULT_RETURN accepted resume address {accepted:#x} (then fault at {addr:#x})"
            );
        }
        if addr.is_multiple_of(16) {
            let bad = BAD_RESUME[(addr / 16 % BAD_RESUME.len() as u64) as usize];
            // SAFETY: as above.
            unsafe { pending.write_volatile(bad) };
            // SAFETY: the kernel must refuse; if it does not, the thread runs
            // at `bad` and its next fault lands here with `pending` set.
            let e = unsafe { rt::fault_return(bad) };
            // SAFETY: as above.
            unsafe { pending.write_volatile(0) };
            if e != Errno::EINVAL {
                rt::fail!("FAULT_RETURN({bad:#x}) in a handler: {e}, expected EINVAL");
            }
        }
        if ours && abi::fault::FaultReason::from_u64(reason).is_some() {
            // The runtime's fixup stubs are 8 bytes each, in reason order.
            let fixup = rt_fixups as *const () as u64 + 8 * (reason - 1);
            // SAFETY: a fixup of the faulting try_* routine, as rt::fault does.
            unsafe { rt::fault_return(fixup) };
        }
        // Not ours: fault again with no handler, so the kernel reports it.
        // SAFETY: as in rt::fault.
        unsafe {
            let _ = rt::set_fault_handler(0, 0);
            rt::fault_return(0);
        }
        rt::exit(abi::thread::EXIT_CODE_FAULT)
    }

    const HANDLER_STACK: u64 = 16 * 1024;

    /// A thread's handler registration: its stack, and the slot at the top
    /// where the entry records the last report.
    struct Handler {
        stack: u64,
    }

    impl Handler {
        fn install() -> Result<Handler, String> {
            let stack = rt::mmap_anon(0, HANDLER_STACK, PROT_READ | PROT_WRITE)
                .map_err(|e| alloc::format!("mmap handler stack: {e}"))?
                as u64;
            // Touch every page: a fault inside the handler ends the process.
            for off in (0..HANDLER_STACK).step_by(PAGE_SIZE as usize) {
                // SAFETY: inside the fresh mapping.
                unsafe { ((stack + off) as *mut u8).write_volatile(0) };
            }
            let h = Handler { stack };
            // SAFETY: the entry follows the handler contract; the stack is ours.
            unsafe { rt::set_fault_handler(fuzz_fault_entry as *const () as u64, h.top()) }
                .map_err(|e| alloc::format!("set_fault_handler: {e}"))?;
            Ok(h)
        }

        fn top(&self) -> u64 {
            self.stack + HANDLER_STACK - 64
        }

        /// (address, reason) of the last fault reported to this thread.
        fn last(&self) -> (u64, u64) {
            // SAFETY: the slot is in our mapping; the handler wrote it on
            // this same thread before resuming (program order).
            unsafe {
                let slot = self.top() as *const u64;
                (slot.read_volatile(), slot.add(1).read_volatile())
            }
        }

        fn remove(self) {
            // SAFETY: without the handler nothing runs on its stack.
            unsafe {
                let _ = rt::set_fault_handler(0, 0);
                let _ = rt::munmap(self.stack as *mut u8, HANDLER_STACK);
            }
        }
    }

    /// What one access saw.
    enum Seen {
        Fine,
        Value(u8),
        Fault(Fault),
    }

    fn touch(
        rng: &mut Rng,
        done: &AtomicU64,
        mutators: u64,
        caught: &AtomicU64,
    ) -> Result<(), String> {
        let handler = Handler::install()?;
        let r = touch_loop(rng, done, mutators, caught, &handler);
        handler.remove();
        r
    }

    fn touch_loop(
        rng: &mut Rng,
        done: &AtomicU64,
        mutators: u64,
        caught: &AtomicU64,
        handler: &Handler,
    ) -> Result<(), String> {
        // Relaxed: only ends the loop.
        while done.load(Ordering::Relaxed) < mutators {
            let addr = if rng.one_in(8) {
                rng.pick(&FORBIDDEN) + rng.below(8)
            } else {
                ARENA + rng.below(PAGES * PAGE_SIZE)
            };
            let inside = (ARENA..ARENA + PAGES * PAGE_SIZE).contains(&addr);
            let seen = if rng.one_in(2) {
                match try_read(addr) {
                    Ok(v) if v == 0 || v == PATTERN => Seen::Fine,
                    Ok(v) => Seen::Value(v),
                    Err(f) => Seen::Fault(f),
                }
            } else {
                // SAFETY: the region holds only bytes the fuzzer writes.
                match unsafe { try_write(addr, PATTERN) } {
                    Ok(()) => Seen::Fine,
                    Err(f) => Seen::Fault(f),
                }
            };
            match seen {
                Seen::Fine if inside => {}
                Seen::Fine => return Err(alloc::format!("access to {addr:#x} succeeded")),
                Seen::Value(v) => {
                    return Err(alloc::format!(
                        "read {v:#x} at {addr:#x}: neither 0 nor {PATTERN:#x}"
                    ));
                }
                Seen::Fault(f) if handler.last() != (addr, f.reason as u64) => {
                    let (at, why) = handler.last();
                    return Err(alloc::format!(
                        "fault at {addr:#x} ({f:?}) reported to the handler at {at:#x} with reason {why}"
                    ));
                }
                Seen::Fault(f) if f.reason == FaultReason::ExecNoExec => {
                    return Err(alloc::format!("data access at {addr:#x} reported as {f:?}"));
                }
                Seen::Fault(_) => {
                    // Relaxed: a statistic.
                    caught.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }
}

mod code {
    use super::*;

    /// How long a random-code thread may run before the process gives up.
    const DEADLINE_NS: u64 = 500_000_000;

    /// The hook for every fault of a random-code thread: end the thread
    /// from its handler. Resuming anywhere would restore the faulting
    /// context, and with it a TF that traps again after one instruction.
    fn land(_addr: u64, _reason: FaultReason, _rip: u64) -> Option<u64> {
        // Release pairs with main's Acquire: the thread is done with its page.
        LANDED.fetch_add(1, Ordering::Release);
        rt::thread_exit(0)
    }

    pub fn run(c: &Config) -> Result<String, String> {
        rt::fault::set_hook(land);
        let mut rng = Rng::new(c.seed, 0);
        for i in 0..c.iters {
            let page = random_code_page(&mut rng)?;
            let stack = rt::mmap_anon(0, PAGE_SIZE, PROT_READ | PROT_WRITE)
                .map_err(|e| alloc::format!("mmap stack: {e}"))? as u64;
            let rflags = random_rflags(&mut rng);
            println!("fuzz: code {i}: page {page:#x} rflags {rflags:#x}");
            let h = rt::thread::try_spawn(move || {
                let guard = rt::fault::install();
                core::mem::forget(guard);
                jump(page, stack + PAGE_SIZE, rflags)
            })
            .map_err(|e| alloc::format!("spawn: {e}"))?;
            let t0 = rt::clock_ns();
            // Acquire pairs with the Release in `land`.
            while LANDED.load(Ordering::Acquire) <= i {
                if rt::clock_ns() - t0 > DEADLINE_NS {
                    println!("fuzz: code {i} still runs (or ended itself); ending the process");
                    rt::exit(0);
                }
                rt::sleep_ns(1_000_000);
            }
            let _ = rt::thread_join(h.tid());
            core::mem::forget(h);
        }
        Ok(alloc::format!("{} random pages ran and faulted", c.iters))
    }

    fn random_code_page(rng: &mut Rng) -> Result<u64, String> {
        let page = rt::mmap_anon(0, PAGE_SIZE, PROT_READ | PROT_WRITE)
            .map_err(|e| alloc::format!("mmap code: {e}"))?;
        for off in (0..PAGE_SIZE).step_by(8) {
            // SAFETY: inside our fresh read-write page.
            unsafe { (page.add(off as usize) as *mut u64).write_unaligned(rng.next_u64()) };
        }
        // SAFETY: our own page; nothing holds a reference into it.
        unsafe { rt::mprotect(page, PAGE_SIZE, PROT_READ | PROT_EXEC) }
            .map_err(|e| alloc::format!("mprotect code: {e}"))?;
        Ok(page as u64)
    }

    /// RFLAGS for a random page: sometimes TF (a single-step trap before
    /// its first instruction), NT, AC or DF.
    fn random_rflags(rng: &mut Rng) -> u64 {
        let mut f = 0x202;
        for (bit, one_in) in [(8, 4), (14, 3), (18, 3), (10, 3)] {
            if rng.one_in(one_in) {
                f |= 1 << bit;
            }
        }
        f
    }

    /// Runs the page with every general register zero, `rsp` on a stack of
    /// its own and RFLAGS = `rflags`, so the random code starts from
    /// nothing of ours.
    fn jump(page: u64, stack_top: u64, rflags: u64) -> ! {
        // SAFETY: deliberately unsound for this thread: it runs random bytes.
        // It ends in its fault handler (which ends the thread, see `land`) or
        // takes the process down; either outcome is what is being tested.
        unsafe {
            core::arch::asm!(
                "mov rsp, rdi",
                "push rsi",
                "push rdx",
                "xor eax, eax", "xor ebx, ebx", "xor ecx, ecx", "xor edx, edx",
                "xor esi, esi", "xor edi, edi", "xor ebp, ebp",
                "xor r8d, r8d", "xor r9d, r9d", "xor r10d, r10d", "xor r11d, r11d",
                "xor r12d, r12d", "xor r13d, r13d", "xor r14d, r14d", "xor r15d, r15d",
                "popfq",
                "ret",
                in("rdi") stack_top, in("rsi") page, in("rdx") rflags, options(noreturn),
            )
        }
    }
}
