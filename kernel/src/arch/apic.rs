//! The local APIC: interrupts between CPUs, end-of-interrupt, and the timer.
//!
//! x2APIC (registers as MSRs, 32-bit APIC IDs) is used when the CPU has it;
//! otherwise xAPIC (registers in a 4 KiB MMIO page, 8-bit IDs). The register
//! numbering is the same: x2APIC MSR = 0x800 + (xAPIC offset >> 4). MMIO
//! registers are reached through the `volatile` crate, MSRs through the
//! `x86_64` crate.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use volatile::VolatilePtr;
use x86_64::registers::model_specific::{ApicBase, ApicBaseFlags, Msr};

use super::cpu;
use super::idt::{VECTOR_SPURIOUS, VECTOR_TIMER};
use crate::memory::phys_to_virt;

const REG_ID: u32 = 0x20;
const REG_EOI: u32 = 0xB0;
const REG_SVR: u32 = 0xF0;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_TIMER_INIT: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3E0;

/// x2APIC: the interrupt command register as one 64-bit MSR.
const MSR_X2APIC_ICR: u32 = 0x830;

static X2APIC: AtomicBool = AtomicBool::new(false);
/// Timer counts per 10 ms (divide by 16), measured on the boot CPU.
static TIMER_PER_10MS: AtomicU32 = AtomicU32::new(0);
pub const TIMER_HZ: u32 = 100;

pub fn x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// The xAPIC register at offset `reg` of this CPU's register page.
fn mmio_register(reg: u32) -> VolatilePtr<'static, u32> {
    let base = ApicBase::read().0.start_address().as_u64();
    let addr = phys_to_virt(base).wrapping_add(reg as usize).cast::<u32>();
    let ptr = NonNull::new(addr).expect("the direct map is never at 0");
    // SAFETY: the xAPIC register page is direct-mapped (uncached), `reg` is
    // a register offset within it, and the registers are only ever accessed
    // through volatile reads and writes.
    unsafe { VolatilePtr::new(ptr) }
}

/// The x2APIC MSR for xAPIC register offset `reg`.
fn x2apic_msr(reg: u32) -> Msr {
    Msr::new(0x800 + (reg >> 4))
}

fn read(reg: u32) -> u32 {
    if x2apic() {
        // SAFETY: reading a local APIC register has no memory effects; the
        // MSR exists because x2APIC mode is on.
        unsafe { x2apic_msr(reg).read() as u32 }
    } else {
        mmio_register(reg).read()
    }
}

fn write(reg: u32, value: u32) {
    if x2apic() {
        // SAFETY: writing a local APIC register affects only interrupt
        // delivery, which is what the callers intend.
        unsafe { x2apic_msr(reg).write(u64::from(value)) }
    } else {
        mmio_register(reg).write(value);
    }
}

/// Enable this CPU's local APIC (every CPU calls this once).
pub fn init_this_cpu() {
    let has_x2 = cpu::cpuid(1, 0).ecx & (1 << 21) != 0;
    X2APIC.store(has_x2, Ordering::Relaxed);
    let (frame, mut flags) = ApicBase::read();
    flags |= ApicBaseFlags::LAPIC_ENABLE;
    if has_x2 {
        flags |= ApicBaseFlags::X2APIC_ENABLE;
    }
    // SAFETY: the base address stays where the firmware put it; enabling the
    // local APIC (and x2APIC mode, which the CPU reports it supports) only
    // changes how this CPU's interrupts are delivered.
    unsafe { ApicBase::write(frame, flags) };
    write(REG_SVR, 0x100 | u32::from(VECTOR_SPURIOUS)); // software enable
}

pub fn id() -> u32 {
    if x2apic() {
        read(REG_ID)
    } else {
        read(REG_ID) >> 24
    }
}

pub fn eoi() {
    write(REG_EOI, 0);
}

/// Send an IPI. `icr_low` carries vector, delivery mode and level bits.
fn send(apic_id: u32, icr_low: u32) {
    if x2apic() {
        // SAFETY: an IPI only interrupts the target CPU.
        unsafe { Msr::new(MSR_X2APIC_ICR).write((u64::from(apic_id) << 32) | u64::from(icr_low)) };
    } else {
        // Interrupts off: the ICR is two registers, and an interrupt handler
        // that sends an IPI between our two writes (a tick waking a task
        // onto another CPU) would leave its own destination in ICR_HIGH, and
        // our IPI would go to its CPU instead (a shootdown then waits
        // forever for a CPU that never heard of it).
        let irq = cpu::irq_save();
        write(REG_ICR_HIGH, apic_id << 24);
        write(REG_ICR_LOW, icr_low);
        // Wait for the delivery-status bit to clear before the next IPI.
        while read(REG_ICR_LOW) & (1 << 12) != 0 {
            cpu::pause();
        }
        cpu::irq_restore(irq);
    }
}

pub fn send_ipi(apic_id: u32, vector: u8) {
    send(apic_id, u32::from(vector) | (1 << 14));
}

pub fn send_nmi_all_but_self() {
    // Destination shorthand 0b11 = all excluding self; delivery mode NMI.
    send(0, (0b11 << 18) | (0b100 << 8) | (1 << 14));
}

/// INIT then two STARTUPs, as the MP specification prescribes; the AP starts
/// in real mode at `vector << 12`.
pub fn start_ap(apic_id: u32, vector: u8) {
    send(apic_id, (0b101 << 8) | (1 << 14)); // INIT, assert
    crate::time::delay_us(10_000);
    for _ in 0..2 {
        send(apic_id, u32::from(vector) | (0b110 << 8) | (1 << 14)); // STARTUP
        crate::time::delay_us(200);
    }
}

/// Measure the timer against the PIT (boot CPU, before SMP).
pub fn calibrate_timer() {
    write(REG_TIMER_DIVIDE, 0b0011); // divide by 16
    write(REG_LVT_TIMER, 1 << 16); // masked, one-shot
    write(REG_TIMER_INIT, u32::MAX);
    crate::time::pit_wait_us(10_000);
    let elapsed = u32::MAX - read(REG_TIMER_CURRENT);
    write(REG_TIMER_INIT, 0);
    TIMER_PER_10MS.store(elapsed.max(1), Ordering::Relaxed);
}

/// Start the periodic timer on this CPU at TIMER_HZ.
pub fn start_timer() {
    let per_tick = TIMER_PER_10MS.load(Ordering::Relaxed) * 100 / TIMER_HZ;
    write(REG_TIMER_DIVIDE, 0b0011);
    write(REG_LVT_TIMER, u32::from(VECTOR_TIMER) | (1 << 17)); // periodic
    write(REG_TIMER_INIT, per_tick.max(1));
}
