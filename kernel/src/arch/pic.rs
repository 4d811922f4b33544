//! The legacy 8259 PICs: remapped out of the way and masked.
//!
//! The firmware leaves the PIC delivering the PIT's IRQ 0 at vector 8, which
//! is also the double-fault vector. We use only the local APIC, so we move the
//! PIC's vectors to 0x20..0x2F (where a stray one is recognisable) and mask
//! every line.

use super::cpu::outb;

pub fn disable() {
    outb(0x20, 0x11); // ICW1: initialise, ICW4 follows
    outb(0xA0, 0x11);
    outb(0x21, 0x20); // ICW2: vector base 0x20 (master), 0x28 (slave)
    outb(0xA1, 0x28);
    outb(0x21, 0x04); // ICW3: slave on IRQ 2
    outb(0xA1, 0x02);
    outb(0x21, 0x01); // ICW4: 8086 mode
    outb(0xA1, 0x01);
    outb(0x21, 0xFF); // mask everything
    outb(0xA1, 0xFF);
}
