//! The serial console (COM1) and the kernel log.
//!
//! Every log line starts with the time since boot, the CPU and the level:
//! `[    1.234567] cpu2 INFO  text`. A line is written whole while holding the
//! console lock, so lines from different CPUs never interleave. The lock is
//! owner-aware: a CPU that faults or panics while printing (and so already
//! holds it) prints anyway instead of deadlocking, and a panicking CPU waits
//! only a bounded time for another CPU's line to finish.
//!
//! The UART itself is driven by the `uart_16550` crate. The lock stays
//! hand-written: it must be re-entrant on the owning CPU and give up after a
//! bound while panicking, which no general-purpose lock does, and it must
//! not go through lockdep (lockdep reports through this console).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config, Uart16550};

use crate::arch::{cpu, percpu};

const COM1: u16 = 0x3F8;
const NO_OWNER: usize = usize::MAX;

static OWNER: AtomicUsize = AtomicUsize::new(NO_OWNER);

/// A handle on COM1. The driver keeps no state the kernel relies on between
/// lines (FIFO on, as `init` sets it), so each user makes its own handle
/// instead of sharing one, which a CPU re-entering the console (an exception
/// while printing) would alias.
fn com1() -> Uart16550<PioBackend> {
    // SAFETY: COM1's eight ports belong to the console; they are accessed
    // only with the console lock held, or by `init` before any other CPU runs.
    unsafe { Uart16550::new_port(COM1) }.expect("COM1's ports fit below 0x10000")
}

/// Set up COM1: 115200 baud 8N1, FIFOs on, no UART interrupts (we poll).
/// A machine without COM1 boots silently.
pub fn init() {
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    let _ = com1().init(config);
}

/// Write `bytes` to COM1, turning each `\n` into `\r\n`, one byte at a time,
/// each once the transmitter is empty (`send_bytes_exact` on a one-byte
/// slice): the same pacing as the console always had, so the serial log the
/// test runner reads arrives exactly as before.
fn put_bytes(bytes: &[u8]) {
    let mut uart = com1();
    for &b in bytes {
        if b == b'\n' {
            uart.send_bytes_exact(b"\r");
        }
        uart.send_bytes_exact(&[b]);
    }
}

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        put_bytes(s.as_bytes());
        Ok(())
    }
}

/// Holds the console for one whole line (or block) of output.
pub struct ConsoleGuard {
    owned: bool,
    irq: bool,
}

pub fn lock() -> ConsoleGuard {
    // Interrupts off first: `me` must stay the CPU we run on.
    let irq = cpu::irq_save();
    let me = percpu::cpu_id();
    if OWNER.load(Ordering::Relaxed) == me {
        // Re-entered on this CPU (an exception while printing): go ahead.
        return ConsoleGuard { owned: false, irq };
    }
    let mut spins: u64 = 0;
    while OWNER
        .compare_exchange_weak(NO_OWNER, me, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        cpu::pause();
        spins += 1;
        if crate::panic::panicking() && spins > 10_000_000 {
            // The owner may be stopped for good; a panic report matters more.
            return ConsoleGuard { owned: false, irq };
        }
    }
    ConsoleGuard { owned: true, irq }
}

impl Drop for ConsoleGuard {
    fn drop(&mut self) {
        if self.owned {
            OWNER.store(NO_OWNER, Ordering::Release);
        }
        cpu::irq_restore(self.irq);
    }
}

impl ConsoleGuard {
    pub fn write_fmt_line(&mut self, args: fmt::Arguments) {
        let _ = Serial.write_fmt(args);
        let _ = Serial.write_str("\n");
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

static MIN_LEVEL: AtomicUsize = AtomicUsize::new(Level::Info as usize);

/// Kernel warnings and errors logged since boot (`warn!`, `error!`), printed
/// or not. A healthy kernel logs none while it runs user programs, so tests
/// (the fuzzer above all) compare this before and after. A report about a
/// user program's own misbehaviour (it is killed, as designed) is not a
/// kernel problem: it goes through `user_error!`, which is not counted here.
static KERNEL_WARNINGS: AtomicU64 = AtomicU64::new(0);

/// How many kernel warnings and errors have been logged since boot.
pub fn kernel_warnings() -> u64 {
    // Relaxed: a count compared between two points of one test; the lines
    // themselves are the evidence.
    KERNEL_WARNINGS.load(Ordering::Relaxed)
}

pub fn set_level(level: Level) {
    MIN_LEVEL.store(level as usize, Ordering::Relaxed);
}

pub fn log(level: Level, args: fmt::Arguments) {
    if level >= Level::Warn {
        // Relaxed: see `kernel_warnings`.
        KERNEL_WARNINGS.fetch_add(1, Ordering::Relaxed);
    }
    print_line(level, args);
}

/// A line about a user program that broke the rules (and is ended for it):
/// printed like an error, but not a kernel warning.
pub fn log_user(args: fmt::Arguments) {
    print_line(Level::Error, args);
}

fn print_line(level: Level, args: fmt::Arguments) {
    if (level as usize) < MIN_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let name = match level {
        Level::Debug => "DEBUG",
        Level::Info => "INFO ",
        Level::Warn => "WARN ",
        Level::Error => "ERROR",
    };
    let ns = crate::time::uptime_ns();
    let mut g = lock();
    let _ = write!(
        Serial,
        "[{:5}.{:06}] cpu{} {} ",
        ns / 1_000_000_000,
        (ns / 1000) % 1_000_000,
        percpu::cpu_id(),
        name
    );
    g.write_fmt_line(args);
}

/// Raw bytes from a user program, written whole.
pub fn write_bytes(b: &[u8]) {
    let _g = lock();
    put_bytes(b);
}

/// One unprefixed line (KTAP output, exception reports).
pub fn raw_line(args: fmt::Arguments) {
    lock().write_fmt_line(args);
}

#[macro_export]
macro_rules! println_raw {
    ($($arg:tt)*) => { $crate::console::raw_line(format_args!($($arg)*)) };
}
/// An error caused by a user program, not by the kernel (not counted in
/// `console::kernel_warnings`).
#[macro_export]
macro_rules! user_error {
    ($($arg:tt)*) => { $crate::console::log_user(format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Debug, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Info, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Warn, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Error, format_args!($($arg)*)) };
}
