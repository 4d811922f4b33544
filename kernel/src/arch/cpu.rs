//! Single instructions: port I/O, MSRs, control registers, CPUID, interrupts.
//!
//! Each wrapper is the one place its instruction appears; callers stay safe
//! Rust where the instruction cannot break memory safety on its own.

use core::arch::asm;

pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O has no memory effects visible to Rust; the ports the
    // kernel uses (COM1, PIT, QEMU debug exit) are owned by the kernel.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    value
}

pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reading an MSR has no memory effects; the MSRs read here exist on
    // every x86-64 CPU or are guarded by a CPUID check at the caller.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// # Safety
/// Writing an MSR can change how the CPU addresses memory (GS base, EFER,
/// APIC base); the caller guarantees the new value keeps the kernel's
/// invariants.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller's contract above.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    }
}

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

pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// # Safety
/// `pml4_phys` must be a page table that maps the running code, its stack and
/// every kernel structure the CPU will touch next.
pub unsafe fn write_cr3(pml4_phys: u64) {
    // SAFETY: the caller's contract above.
    unsafe { asm!("mov cr3, {}", in(reg) pml4_phys, options(nostack, preserves_flags)) }
}

pub fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// # Safety
/// The new value must keep protected mode, paging and write protection on
/// (PE, PG, WP), which the kernel relies on.
pub unsafe fn write_cr0(v: u64) {
    // SAFETY: the caller's contract above.
    unsafe { asm!("mov cr0, {}", in(reg) v, options(nostack, preserves_flags)) }
}

pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// # Safety
/// The new value must keep PAE and the features the kernel enabled at boot.
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: the caller's contract above.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) }
}

pub const CR0_MP: u64 = 1 << 1;
pub const CR0_EM: u64 = 1 << 2;
pub const CR0_TS: u64 = 1 << 3;
pub const CR0_NE: u64 = 1 << 5;
pub const CR4_OSFXSR: u64 = 1 << 9;
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;

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
        write_cr0((read_cr0() | CR0_MP | CR0_NE) & !(CR0_EM | CR0_TS));
        write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
    }
}

pub fn invlpg(addr: u64) {
    // SAFETY: dropping a TLB entry only makes the CPU re-walk the tables.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) }
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn pause() {
    core::hint::spin_loop();
}

pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: reading RFLAGS through the stack has no other effect.
    unsafe { asm!("pushfq; pop {}", out(reg) flags, options(nomem, preserves_flags)) }
    flags & (1 << 9) != 0
}

pub fn enable_interrupts() {
    // SAFETY: the IDT is loaded before any CPU enables interrupts.
    unsafe { asm!("sti", options(nomem, nostack)) }
}

pub fn disable_interrupts() {
    // SAFETY: disabling interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

/// Enable interrupts and halt in one step: `sti` takes effect after the next
/// instruction, so a wakeup interrupt cannot slip in between the check the
/// caller made with interrupts off and the `hlt`.
pub fn enable_interrupts_and_halt() {
    // SAFETY: as for `enable_interrupts`.
    unsafe { asm!("sti; hlt", options(nomem, nostack)) }
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

/// Stop this CPU for good (interrupts off).
pub fn halt_forever() -> ! {
    loop {
        disable_interrupts();
        // SAFETY: halting with interrupts off only stops this CPU (an NMI may
        // still arrive, and we halt again).
        unsafe { asm!("hlt", options(nomem, nostack)) }
    }
}

pub const MSR_EFER: u32 = 0xC000_0080;
pub const MSR_GS_BASE: u32 = 0xC000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;
