//! Time since boot, from the TSC calibrated against the PIT.
//!
//! The PIT ticks at a fixed 1.193182 MHz on every PC, emulated or not, so it
//! is the reference: we count TSC cycles across a known number of PIT ticks.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

use crate::arch::cpu;

static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
/// TSC cycles per microsecond (0 until calibrated).
static TSC_PER_US: AtomicU64 = AtomicU64::new(0);

const PIT_HZ: u64 = 1_193_182;

/// Busy-wait `us` microseconds on PIT channel 2 (the speaker timer, which we
/// may use freely: its gate is in port 0x61 and its output is readable there).
pub fn pit_wait_us(us: u64) {
    let ticks = (PIT_HZ * us / 1_000_000).clamp(1, 0xFFFF) as u16;
    let mut control: Port<u8> = Port::new(0x61); // gate (bit 0), OUT (bit 5)
    let mut mode: Port<u8> = Port::new(0x43);
    let mut channel2: Port<u8> = Port::new(0x42);
    // SAFETY: PIT channel 2 and its gate at 0x61 belong to the kernel (no
    // other code programs them); port I/O has no memory effects visible to
    // Rust.
    unsafe {
        // Gate low while programming, so the count starts exactly when we
        // raise it.
        let gate = control.read() & !0x03; // gate off, speaker off
        control.write(gate);
        mode.write(0b1011_0000); // channel 2, lo/hi byte, mode 0 (interrupt on terminal count)
        channel2.write(ticks as u8);
        channel2.write((ticks >> 8) as u8);
        control.write(gate | 0x01); // gate on: count down; OUT (bit 5) rises at zero
        while control.read() & 0x20 == 0 {
            cpu::pause();
        }
    }
}

pub fn calibrate() {
    TSC_AT_BOOT.store(cpu::rdtsc(), Ordering::Relaxed);
    // Take the best of a few 10 ms windows (a host hiccup only lengthens one).
    let mut best = u64::MAX;
    for _ in 0..3 {
        let t0 = cpu::rdtsc();
        pit_wait_us(10_000);
        best = best.min(cpu::rdtsc() - t0);
    }
    TSC_PER_US.store((best / 10_000).max(1), Ordering::Relaxed);
}

pub fn tsc_per_us() -> u64 {
    TSC_PER_US.load(Ordering::Relaxed)
}

/// Nanoseconds since boot (0 before calibration).
pub fn uptime_ns() -> u64 {
    let per_us = TSC_PER_US.load(Ordering::Relaxed);
    if per_us == 0 {
        return 0;
    }
    let cycles = cpu::rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (cycles as u128 * 1000 / per_us as u128) as u64
}

/// Busy-wait on the TSC.
pub fn delay_us(us: u64) {
    let end = cpu::rdtsc() + us * tsc_per_us();
    while cpu::rdtsc() < end {
        cpu::pause();
    }
}
