//! The machine-level entry points, in assembly: the PVH entry that QEMU jumps
//! to (32-bit protected mode to 64-bit long mode, into the higher half) and the
//! real-mode trampoline that application processors start in.
//!
//! The kernel links this crate for its symbols; everything here is data and
//! code for the linker (`linker.ld`), with no Rust API beyond the symbol names.
#![no_std]

core::arch::global_asm!(include_str!("pvh.S"), options(att_syntax));
core::arch::global_asm!(include_str!("trampoline.S"), options(att_syntax));

/// Physical address the AP trampoline is copied to (SIPI vector 0x08).
pub const AP_TRAMPOLINE_PHYS: u64 = 0x8000;

unsafe extern "C" {
    /// The boot page tables built by `pvh_start` (physical = virtual - 0).
    pub static boot_pml4: u8;
    pub static ap_trampoline: u8;
    pub static ap_tramp_cr3: u8;
    pub static ap_tramp_stack: u8;
    pub static ap_tramp_entry: u8;
    pub static ap_tramp_arg: u8;
    pub static __trampoline_start: u8;
    pub static __trampoline_end: u8;
    pub static __kernel_end: u8;
    pub static __kernel_virt_start: u8;
    pub static __ktests_start: u8;
    pub static __ktests_end: u8;
    pub static __extable_start: u8;
    pub static __extable_end: u8;
}
