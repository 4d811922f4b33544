//! x86-64 specifics: instructions, segments, interrupts, APIC, SMP.
pub mod acpi;
pub mod apic;
pub mod cpu;
pub mod exception;
pub mod gdt;
pub mod idt;
pub mod percpu;
pub mod pic;
pub mod smp;
pub mod string;
pub mod trap;
