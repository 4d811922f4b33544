//! Single instructions the whole kernel uses, in its own vocabulary.
//!
//! The instructions themselves come from the `x86_64` crate (the same one
//! blog_os and the rust-osdev projects use); this file only adapts them to
//! the kernel's plain `u64` physical addresses and to its interrupt-flag
//! save/restore idiom, and states why each one is safe to call. Devices
//! (serial, PIT, local APIC) and the CPU's own tables (GDT, IDT, TSS, MSRs of
//! the syscall entry) use the crate directly in their own files.

use x86_64::instructions::{self, interrupts, tlb};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

#[allow(dead_code)] // the full register set, for readers extending feature checks
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// The physical address of the current top-level page table (CR3 without
/// its flag bits, which the kernel leaves zero).
pub fn read_cr3() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// # Safety
/// `pml4_phys` must be a page table that maps the running code, its stack and
/// every kernel structure the CPU will touch next.
pub unsafe fn write_cr3(pml4_phys: u64) {
    let frame = PhysFrame::from_start_address(PhysAddr::new(pml4_phys))
        .expect("page table not page-aligned");
    // SAFETY: the caller's contract above.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) }
}

/// Let ring 3 use x87, MMX and SSE on this CPU (every CPU, at bring-up).
///
/// CR0: EM clear (x87 instructions run instead of trapping with #NM), MP
/// set (`wait`/`fwait` honour TS), TS clear (no lazy-switch trap: the
/// scheduler switches the state eagerly, see `sched::fpu`), NE set (x87
/// errors raise #MF instead of the legacy external FERR# line). CR4: OSFXSR
/// (`fxsave`/`fxrstor` include the `xmm` registers, and SSE instructions
/// are allowed), OSXMMEXCPT (unmasked SIMD exceptions raise #XM, not #UD).
/// The kernel itself never uses these registers (its target is soft-float).
pub fn enable_user_fpu() {
    let edx = cpuid(1, 0).edx;
    // FXSR (bit 24), SSE (25), SSE2 (26): architectural on x86-64.
    assert!(
        edx & (0b111 << 24) == 0b111 << 24,
        "CPU lacks FXSR/SSE/SSE2 (cpuid.1.edx={edx:#x})"
    );
    // SAFETY: only the FPU-related bits change; PE, PG, WP and PAE stay.
    unsafe {
        Cr0::update(|f| {
            f.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
            f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
        });
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
}

/// Drop this CPU's TLB entry for the page at `addr`.
pub fn invlpg(addr: u64) {
    tlb::flush(VirtAddr::new(addr));
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn pause() {
    core::hint::spin_loop();
}

pub fn interrupts_enabled() -> bool {
    interrupts::are_enabled()
}

/// Interrupts on. The IDT is loaded before any CPU enables them.
pub fn enable_interrupts() {
    interrupts::enable();
}

pub fn disable_interrupts() {
    interrupts::disable();
}

/// Enable interrupts and halt in one step: `sti` takes effect after the next
/// instruction, so a wakeup interrupt cannot slip in between the check the
/// caller made with interrupts off and the `hlt`.
pub fn enable_interrupts_and_halt() {
    interrupts::enable_and_hlt();
}

/// Save the interrupt flag and disable interrupts; pair with `irq_restore`.
pub fn irq_save() -> bool {
    let was = interrupts_enabled();
    disable_interrupts();
    was
}

pub fn irq_restore(was_enabled: bool) {
    if was_enabled {
        enable_interrupts();
    }
}

/// Stop this CPU for good (interrupts off). An NMI may still wake it; it
/// halts again.
pub fn halt_forever() -> ! {
    loop {
        disable_interrupts();
        instructions::hlt();
    }
}
