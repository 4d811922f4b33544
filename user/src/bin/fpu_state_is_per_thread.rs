//! Test: x87/SSE registers belong to a thread.
//!
//! Run as `fpu_state_is_per_thread P` (P = 1, 2, ...: one per concurrent
//! process, so each process writes different values). Every thread starts
//! by checking that its registers are the clean initial state, with nothing
//! left by another thread or process. Then:
//!
//! - two *checker* threads, round after round, load every x87 and SSE
//!   register (and FCW, FSW, the tag word, MXCSR) with values unique to
//!   thread and round (`fxrstor64`), move to the next CPU with `PIN` (a
//!   syscall and a migration), spin for a while so the timer preempts them
//!   for other threads, then store the registers (`fxsave64`) and compare;
//! - *scribbler* threads (unpinned CPU hogs) do the same without pinning,
//!   until the checkers are done, so every CPU keeps seeing other values;
//! - at the end, fresh threads started on every CPU while the scribblers
//!   still run check again that they start clean.
//!
//! Between the load and the store only general registers are touched, in
//! one `asm!` block, so any difference is the kernel's doing.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};
use rt::{Args, check, println};

rt::main!(main);

/// An `fxsave64` image (Intel SDM vol. 1, table 10-2).
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Fx([u8; 512]);

const FCW: usize = 0;
const FSW: usize = 2;
const FTW: usize = 4;
const MXCSR: usize = 24;
const ST0: usize = 32;
const XMM0: usize = 160;
const INITIAL_FCW: u16 = 0x037F;
const INITIAL_MXCSR: u32 = 0x1F80;

/// High 16 bits of every value this program puts in a register, so a leak
/// into another thread is recognisable.
const SIGNATURE: u64 = 0xF5E0;

impl Fx {
    fn zero() -> Fx {
        Fx([0; 512])
    }

    /// The state the kernel promises a new thread.
    fn initial() -> Fx {
        let mut f = Fx::zero();
        f.put(FCW, &INITIAL_FCW.to_le_bytes());
        f.put(MXCSR, &INITIAL_MXCSR.to_le_bytes());
        f
    }

    /// Values unique to (`tag`, `round`) in every register and control word
    /// (exceptions stay masked, so nothing traps).
    fn pattern(tag: u64, round: u64) -> Fx {
        let k = tag * 7 + round;
        let (rounding, top) = (k as u16 & 3, k as u16 & 7);
        let mut f = Fx::zero();
        f.put(FCW, &(INITIAL_FCW | rounding << 10).to_le_bytes());
        f.put(FSW, &(top << 11).to_le_bytes());
        f.0[FTW] = !(k as u8) | 1;
        let mxcsr = INITIAL_MXCSR | u32::from(rounding) << 13;
        f.put(MXCSR, &mxcsr.to_le_bytes());
        for i in 0..8 {
            let mantissa = marker(tag, round, i as u64);
            f.put(ST0 + 16 * i, &mantissa.to_le_bytes());
            f.put(ST0 + 16 * i + 8, &(0x3FFF ^ i as u16).to_le_bytes());
        }
        for i in 0..32 {
            let word = marker(tag, round, 8 + i as u64);
            f.put(XMM0 + 8 * i, &word.to_le_bytes());
        }
        f
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn u16_at(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.0[at], self.0[at + 1]])
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.0[at..at + 4].try_into().unwrap())
    }

    fn u64_at(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.0[at..at + 8].try_into().unwrap())
    }

    /// The bytes that hold register state a thread can set and read back:
    /// FCW, FSW, FTW, MXCSR, the eight 80-bit x87 registers, xmm0-15. (The
    /// last-instruction pointers and reserved bytes are left out.)
    fn state_bytes(&self) -> impl Iterator<Item = (usize, u8)> + '_ {
        let st = (0..8).flat_map(|i| ST0 + 16 * i..ST0 + 16 * i + 10);
        (FCW..FTW + 1)
            .chain(MXCSR..MXCSR + 4)
            .chain(st)
            .chain(XMM0..XMM0 + 256)
            .map(|at| (at, self.0[at]))
    }
}

fn marker(tag: u64, round: u64, i: u64) -> u64 {
    (SIGNATURE << 48) | ((tag & 0xFF) << 40) | ((round & 0xFF_FFFF) << 16) | (i & 0xFFFF)
}

/// Name of the register that holds byte `at` of an image.
fn reg_name(at: usize) -> alloc::string::String {
    match at {
        FCW..MXCSR => alloc::string::String::from("FCW/FSW/FTW"),
        MXCSR..ST0 => alloc::string::String::from("MXCSR"),
        ST0..XMM0 => alloc::format!("st{}", (at - ST0) / 16),
        _ => alloc::format!("xmm{}", (at - XMM0) / 16),
    }
}

/// The registers as they are now.
fn save_now() -> Fx {
    let mut f = Fx::zero();
    // SAFETY: `f` is a 16-byte-aligned 512-byte buffer; fxsave64 only
    // stores into it.
    unsafe { asm!("fxsave64 [{}]", in(reg) &mut f, options(nostack, preserves_flags)) };
    f
}

/// Load `img` into every x87/SSE register, optionally `PIN` to `cpu`, spin
/// for `spin_tsc` TSC ticks, store the registers into `out`, and leave the
/// initial state loaded (empty x87 stack, default MXCSR) for the compiled
/// code after us. Returns PIN's result (0 if not asked).
fn hold(img: &Fx, out: &mut Fx, pin: Option<usize>, spin_tsc: u64) -> u64 {
    let clean = Fx::initial();
    let ret: u64;
    // SAFETY: the images are aligned 512-byte buffers; `img` holds only
    // masked-exception control words and reserved-bit-free MXCSR, so
    // fxrstor64 cannot fault. PIN takes no pointer. Every x87/MMX/SSE
    // register is declared clobbered, and the state the compiler relies on
    // (empty x87 stack, default control words) is restored at the end.
    unsafe {
        asm!(
            "fxrstor64 [{img}]",
            "xor eax, eax",
            "test {dopin}, {dopin}",
            "jz 2f",
            "mov eax, {nr_pin}",
            "syscall",
            "2:",
            "mov r9, rax",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "add rax, {spin}",
            "mov r8, rax",
            "mov r10, {max_iter}",
            "3:",
            "pause",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "cmp rax, r8",
            "jae 4f",
            "dec r10",
            "jnz 3b",
            "4:",
            "fxsave64 [{out}]",
            "fxrstor64 [{clean}]",
            img = in(reg) img,
            out = in(reg) out,
            clean = in(reg) &clean,
            dopin = in(reg) u64::from(pin.is_some()),
            spin = in(reg) spin_tsc,
            nr_pin = const abi::nr::PIN,
            max_iter = const 1u64 << 28, // in case the TSC does not move
            in("rdi") pin.unwrap_or(0) as u64,
            out("rax") _, out("rcx") _, out("rdx") _, out("r8") _,
            out("r9") ret, out("r10") _, out("r11") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
            out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
            out("mm0") _, out("mm1") _, out("mm2") _, out("mm3") _,
            out("mm4") _, out("mm5") _, out("mm6") _, out("mm7") _,
            options(nostack),
        );
    }
    ret
}

/// Check that the registers are the clean initial state: default control
/// words, empty zeroed x87 registers, and no value any thread of this
/// program (in any process) ever wrote. Compiled code may have used some
/// `xmm` registers already (startup copies), so those are only checked for
/// foreign values.
fn check_fresh(who: &str) {
    let f = save_now();
    let fcw = f.u16_at(FCW);
    let mxcsr = f.u32_at(MXCSR);
    check!(
        fcw == INITIAL_FCW && mxcsr == INITIAL_MXCSR,
        "{who}: starts with FCW {fcw:#x} MXCSR {mxcsr:#x}, not {INITIAL_FCW:#x} {INITIAL_MXCSR:#x}"
    );
    check!(
        f.u16_at(FSW) == 0 && f.0[FTW] == 0,
        "{who}: starts with x87 status {:#x} tags {:#x}, not an empty stack",
        f.u16_at(FSW),
        f.0[FTW]
    );
    for i in 0..8 {
        let at = ST0 + 16 * i;
        check!(
            f.0[at..at + 10].iter().all(|&b| b == 0),
            "{who}: starts with st{i} = {:#x}, not 0",
            f.u64_at(at)
        );
    }
    for at in (XMM0..XMM0 + 256).step_by(8) {
        let v = f.u64_at(at);
        check!(
            v >> 48 != SIGNATURE,
            "{who}: starts with {} holding {v:#x}, left by thread tag {} round {}",
            reg_name(at),
            (v >> 40) & 0xFF,
            (v >> 16) & 0xFF_FFFF
        );
    }
}

/// One round: load, (move,) spin, store, compare.
fn round(who: &str, tag: u64, n: u64, pin: Option<usize>, spin_tsc: u64) {
    let want = Fx::pattern(tag, n);
    let mut got = Fx::zero();
    let r = hold(&want, &mut got, pin, spin_tsc);
    check!(r == 0, "{who}: PIN({pin:?}) returned {r:#x}");
    for ((at, w), (_, g)) in want.state_bytes().zip(got.state_bytes()) {
        check!(
            w == g,
            "{who} round {n}{}: {} byte {at} is {g:#04x}, wrote {w:#04x} (now on CPU {})",
            match pin {
                Some(c) => alloc::format!(" (moved to CPU {c})"),
                None => alloc::string::String::new(),
            },
            reg_name(at),
            rt::cpu_id()
        );
    }
}

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// TSC ticks per millisecond, measured against the kernel's clock.
fn tsc_per_ms() -> u64 {
    let (t0, c0) = (rdtsc(), rt::clock_ns());
    rt::sleep_ns(20_000_000);
    let (t1, c1) = (rdtsc(), rt::clock_ns());
    ((t1 - t0) * 1_000_000 / (c1 - c0).max(1)).max(1)
}

fn main(args: Args) -> i32 {
    check_fresh("main thread");
    let p: u64 = match args.raw().trim().parse() {
        Ok(p) if (1..16).contains(&p) => p,
        _ => rt::fail!(
            "usage: fpu_state_is_per_thread P (1..15), got {:?}",
            args.raw()
        ),
    };
    let cpus = rt::cpu_count();
    let ms = tsc_per_ms();
    let rounds = (2 * cpus as u64).max(8);
    let stop = Arc::new(AtomicBool::new(false));

    let scribblers: Vec<_> = (0..(cpus / 2).max(1) as u64)
        .map(|j| {
            let stop = stop.clone();
            rt::spawn(move || {
                let who = alloc::format!("process {p} scribbler {j}");
                check_fresh(&who);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    round(&who, p * 16 + 8 + j, n, None, 2 * ms);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let checkers: Vec<_> = (0..2u64)
        .map(|t| {
            rt::spawn(move || {
                let who = alloc::format!("process {p} checker {t}");
                check_fresh(&who);
                for n in 0..rounds {
                    let cpu = ((n + t + p) % cpus as u64) as usize;
                    round(&who, p * 16 + t, n, Some(cpu), 20 * ms);
                }
            })
        })
        .collect();
    for c in checkers {
        c.join();
    }
    // New threads on every CPU while the scribblers still fill registers.
    for cpu in 0..cpus {
        rt::spawn(move || {
            check_fresh("a new thread");
            if let Err(e) = rt::pin(cpu) {
                rt::fail!("pin({cpu}): {e}");
            }
            check_fresh(&alloc::format!("a new thread moved to CPU {cpu}"));
        })
        .join();
    }
    stop.store(true, Ordering::Relaxed);
    let scribbled: u64 = scribblers.into_iter().map(|s| s.join()).sum();
    println!(
        "ok: process {p}: 2 checkers x {rounds} rounds over {cpus} CPUs, {scribbled} scribbler rounds"
    );
    0
}
