//! The soak's process (the kernel's `soak_short` test and `make soak` start
//! many of these, several at a time, and start new ones as they exit):
//!
//! `soak seed=S workers=W rounds=R cycles=C`
//!
//! Every page this program reads is checked byte for byte against what must
//! be there: a word's value is a function of the process's seed, its address
//! and a generation (`pattern`). Three kinds of threads:
//!
//! - `W` workers, each with its own region: `R` rounds of map, write every
//!   page (one demand-zero fault each; the rest of the fresh page must read
//!   0), fill it with the pattern of this round, protect it read-only,
//!   verify every byte, unmap. These make most of the faults.
//! - one mapper (LTP `mtest06`): `C` cycles of map, fill with the pattern of
//!   generation `g`, publish `g`, protect read-only, unpublish, unmap, on a
//!   region the readers read.
//! - two readers: read whole pages of the mapper's region (catching faults)
//!   until the others are done. While a generation stays published across
//!   the read, every byte must be that generation's; otherwise a byte may
//!   also be 0 (fresh page), another generation's seen during the read, or
//!   "not mapped". Anything else (a stale TLB entry shows another page's
//!   bytes) is a wrong byte.
//!
//! Exit 0 when all the work was done and no byte was wrong; 1 otherwise (a
//! `WRONG` line names the first few bad bytes). The kernel counts the
//! faults; the cycles are `W * R + C` for each process that exits 0.
#![no_std]
#![no_main]

extern crate alloc;

use abi::FaultReason;
use abi::mman::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use rt::fault::{Fault, try_read};
use rt::{Args, check, println};

rt::main!(main);

/// Worker `i`'s region is at `PRIVATE_BASE + i * STRIDE` (never adjacent, so
/// never merged with another).
const PRIVATE_BASE: u64 = 0x2000_0000_0000;
const STRIDE: u64 = 1 << 30;
const PRIVATE_PAGES: u64 = 16;
/// The mapper's region, read by the readers.
const SHARED: u64 = 0x3800_0000_0000;
const SHARED_PAGES: u64 = 8;
const READERS: usize = 2;
const WORDS: u64 = PAGE_SIZE / 8;
/// Wrong bytes printed in full; the rest are only counted.
const REPORTED: u64 = 5;

#[derive(Clone, Copy)]
struct Config {
    seed: u64,
    workers: u64,
    rounds: u64,
    cycles: u64,
}

fn parse(args: Args) -> Result<Config, String> {
    let mut c = Config {
        seed: 1,
        workers: 2,
        rounds: 10,
        cycles: 10,
    };
    for arg in args.iter() {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| alloc::format!("argument {arg}: expected key=value"))?;
        let n = rt::args::parse_u64(v).ok_or_else(|| alloc::format!("{k}={v}: not a number"))?;
        match k {
            "seed" => c.seed = n,
            "workers" => c.workers = n.max(1),
            "rounds" => c.rounds = n,
            "cycles" => c.cycles = n,
            _ => return Err(alloc::format!("unknown argument {k}")),
        }
    }
    Ok(c)
}

/// The word at `addr` in generation `generation` of a process seeded `seed`
/// (splitmix64 of the three, so no two pages or generations look alike).
fn pattern(seed: u64, addr: u64, generation: u64) -> u64 {
    let mut z = seed ^ addr.rotate_left(17) ^ generation.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The byte at `addr` in generation `generation`.
fn pattern_byte(seed: u64, addr: u64, generation: u64) -> u8 {
    pattern(seed, addr & !7, generation).to_le_bytes()[(addr & 7) as usize]
}

struct Shared {
    seed: u64,
    /// The mapper's generation `g` as `2g + 1` while its region holds
    /// exactly generation `g`; even while it changes.
    state: AtomicU64,
    /// Workers and mapper still running; readers stop at 0.
    running: AtomicUsize,
    wrong: AtomicU64,
    /// Bytes checked, for the summary.
    checked: AtomicU64,
}

impl Shared {
    fn wrong_bytes(&self, n: u64, what: core::fmt::Arguments) {
        // Relaxed: a count, read after every thread is joined.
        let before = self.wrong.fetch_add(n, Ordering::Relaxed);
        if before < REPORTED {
            println!("WRONG: {what}");
        }
    }
}

/// Bytes that differ between two words.
fn bytes_differing(a: u64, b: u64) -> u64 {
    (a ^ b).to_le_bytes().iter().filter(|&&x| x != 0).count() as u64
}

fn map_fixed(addr: u64, pages: u64) -> *mut u64 {
    // SAFETY: the address ranges of this program are used by nothing else.
    let p = unsafe {
        rt::mmap(
            addr,
            pages * PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        )
    };
    check!(p == Ok(addr as *mut u8), "mmap at {addr:#x}: {p:?}");
    addr as *mut u64
}

fn protect_read(addr: u64, pages: u64) {
    // SAFETY: our own mapping; nothing writes it after this.
    let r = unsafe { rt::mprotect(addr as *mut u8, pages * PAGE_SIZE, PROT_READ) };
    check!(r.is_ok(), "mprotect at {addr:#x}: {r:?}");
}

fn unmap(addr: u64, pages: u64) {
    // SAFETY: our own mapping; no reference into it is kept.
    let r = unsafe { rt::munmap(addr as *mut u8, pages * PAGE_SIZE) };
    check!(r.is_ok(), "munmap at {addr:#x}: {r:?}");
}

/// Page `p` of the region at `region`.
fn page_of(region: *mut u64, p: u64) -> *mut u64 {
    region.wrapping_add((p * WORDS) as usize)
}

/// Writes a fresh page (the first store faults it in), checking that the
/// rest of it still reads 0, then fills it with generation `generation`.
fn fill_fresh_page(s: &Shared, page: *mut u64, generation: u64) {
    let addr = page as u64;
    // SAFETY: `page` is a page of a mapping this thread owns and writes;
    // every access is volatile, inside the page.
    unsafe { page.write_volatile(pattern(s.seed, addr, generation)) };
    for w in 1..WORDS {
        let a = addr + w * 8;
        let p = page.wrapping_add(w as usize);
        // SAFETY: as above.
        let v = unsafe { p.read_volatile() };
        if v != 0 {
            let n = bytes_differing(v, 0);
            s.wrong_bytes(n, format_args!("fresh page: {v:#x} at {a:#x}, expected 0"));
        }
        // SAFETY: as above.
        unsafe { p.write_volatile(pattern(s.seed, a, generation)) };
    }
}

/// Checks every byte of a page this thread filled with `generation`.
fn verify_page(s: &Shared, page: *mut u64, generation: u64) {
    for w in 0..WORDS {
        let a = page as u64 + w * 8;
        // SAFETY: a page of a mapping this thread owns, mapped readable.
        let v = unsafe { page.wrapping_add(w as usize).read_volatile() };
        let want = pattern(s.seed, a, generation);
        if v != want {
            let n = bytes_differing(v, want);
            s.wrong_bytes(n, format_args!("{v:#x} at {a:#x}, expected {want:#x}"));
        }
    }
    // Relaxed: a count for the summary.
    s.checked.fetch_add(PAGE_SIZE, Ordering::Relaxed);
}

fn worker(s: &Shared, index: u64, rounds: u64) {
    let base = PRIVATE_BASE + index * STRIDE;
    for round in 0..rounds {
        let region = map_fixed(base, PRIVATE_PAGES);
        for p in 0..PRIVATE_PAGES {
            fill_fresh_page(s, page_of(region, p), round);
        }
        protect_read(base, PRIVATE_PAGES);
        for p in 0..PRIVATE_PAGES {
            verify_page(s, page_of(region, p), round);
        }
        unmap(base, PRIVATE_PAGES);
    }
}

fn mapper(s: &Shared, cycles: u64) {
    for generation in 1..=cycles {
        let region = map_fixed(SHARED, SHARED_PAGES);
        for p in 0..SHARED_PAGES {
            fill_fresh_page(s, page_of(region, p), generation);
        }
        // Release pairs with the readers' Acquire load: a reader that sees
        // this generation published sees the bytes written above.
        s.state.store(2 * generation + 1, Ordering::Release);
        rt::yield_now();
        protect_read(SHARED, SHARED_PAGES);
        rt::yield_now();
        // Unpublish before unmapping. The SeqCst fence pairs with the
        // readers' Acquire fence: a reader whose bytes saw the unmap reads
        // this even state (or a newer one) after them.
        s.state.store(2 * generation + 2, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        unmap(SHARED, SHARED_PAGES);
    }
}

/// Whether one byte of the mapper's region may read as `read` while the
/// state went from `s1` to `s2`.
fn judge(s: &Shared, addr: u64, read: Result<u8, Fault>, s1: u64, s2: u64) -> Result<(), String> {
    let stable = s1 == s2 && s1 % 2 == 1;
    // An odd state `2g + 1` is generation `g`; an even one `2g + 2` is the
    // change from `g` to `g + 1`, when either may be seen.
    let (g1, g2) = (s1.saturating_sub(1) / 2, s2 / 2);
    let expected = pattern_byte(s.seed, addr, g1);
    match read {
        Ok(v) if stable && v == expected => Ok(()),
        Ok(v) if stable => Err(alloc::format!(
            "{v:#x} at {addr:#x} while generation {g1} was published, expected {expected:#x}"
        )),
        Ok(0) => Ok(()),
        Ok(v) if (g1..=g2).any(|g| v == pattern_byte(s.seed, addr, g)) => Ok(()),
        Ok(v) => Err(alloc::format!(
            "{v:#x} at {addr:#x}: no generation from {g1} to {g2} has it"
        )),
        Err(Fault {
            addr: a,
            reason: FaultReason::NotMapped,
        }) if a == addr && !stable => Ok(()),
        Err(f) => Err(alloc::format!("{f:?} at {addr:#x} (state {s1} -> {s2})")),
    }
}

/// Reads one page of the mapper's region, then judges every byte read.
fn check_shared_page(s: &Shared, page: u64, buf: &mut [Result<u8, Fault>]) {
    // Acquire pairs with the mapper's Release publish.
    let s1 = s.state.load(Ordering::Acquire);
    let mut n = 0;
    for (i, b) in buf.iter_mut().enumerate() {
        *b = try_read(page + i as u64);
        n = i + 1;
        if b.is_err() {
            // The rest of the page is gone too.
            break;
        }
    }
    // Pairs with the mapper's SeqCst fence: the reads above come before the
    // second load.
    fence(Ordering::Acquire);
    let s2 = s.state.load(Ordering::Relaxed);
    for (i, &b) in buf[..n].iter().enumerate() {
        if let Err(e) = judge(s, page + i as u64, b, s1, s2) {
            s.wrong_bytes(1, format_args!("reader: {e}"));
        }
    }
    // Relaxed: a count for the summary.
    s.checked.fetch_add(n as u64, Ordering::Relaxed);
}

fn reader(s: &Shared) {
    let _guard = rt::fault::install().expect("install the fault handler");
    let mut buf = alloc::vec![Ok(0u8); PAGE_SIZE as usize];
    let mut page = 0;
    // Relaxed: `running` only ends the loop; results travel through join.
    while s.running.load(Ordering::Relaxed) > 0 {
        check_shared_page(s, SHARED + page * PAGE_SIZE, &mut buf);
        page = (page + 1) % SHARED_PAGES;
        if rt::cpu_count() == 1 {
            rt::yield_now();
        }
    }
}

/// Runs `f` on a new thread that counts as running until it returns.
fn spawn_running(
    s: &Arc<Shared>,
    f: impl FnOnce(&Shared) + Send + 'static,
) -> rt::thread::JoinHandle<()> {
    let s = s.clone();
    rt::spawn(move || {
        f(&s);
        // Relaxed: see `reader`.
        s.running.fetch_sub(1, Ordering::Relaxed);
    })
}

fn main(args: Args) -> i32 {
    let c = match parse(args) {
        Ok(c) => c,
        Err(e) => rt::fail!("{e}"),
    };
    let s = Arc::new(Shared {
        seed: c.seed,
        // Even: changing from generation 0 (never written) to 1.
        state: AtomicU64::new(2),
        running: AtomicUsize::new(c.workers as usize + 1),
        wrong: AtomicU64::new(0),
        checked: AtomicU64::new(0),
    });
    let mut threads: Vec<_> = (0..READERS)
        .map(|_| {
            let s = s.clone();
            rt::spawn(move || reader(&s))
        })
        .collect();
    for i in 0..c.workers {
        threads.push(spawn_running(&s, move |s| worker(s, i, c.rounds)));
    }
    threads.push(spawn_running(&s, move |s| mapper(s, c.cycles)));
    threads.into_iter().for_each(|t| t.join());
    // Relaxed: every thread is joined.
    let wrong = s.wrong.load(Ordering::Relaxed);
    println!(
        "soak: seed={} cycles={} bytes_checked={} wrong_bytes={wrong}",
        c.seed,
        c.workers * c.rounds + c.cycles,
        s.checked.load(Ordering::Relaxed),
    );
    check!(wrong == 0, "seed={}: {wrong} wrong byte(s)", c.seed);
    0
}
