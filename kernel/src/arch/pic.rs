//! The legacy 8259 PICs: remapped out of the way and masked.
//!
//! The firmware leaves the PIC delivering the PIT's IRQ 0 at vector 8, which
//! is also the double-fault vector. We use only the local APIC, so we move the
//! PIC's vectors to 0x20..0x2F (where a stray one is recognisable) and mask
//! every line.

use x86_64::instructions::port::Port;

pub fn disable() {
    let mut master_cmd: Port<u8> = Port::new(0x20);
    let mut master_data: Port<u8> = Port::new(0x21);
    let mut slave_cmd: Port<u8> = Port::new(0xA0);
    let mut slave_data: Port<u8> = Port::new(0xA1);
    // SAFETY: the PICs are the kernel's to program (nothing else uses them)
    // and port I/O has no memory effects visible to Rust.
    unsafe {
        master_cmd.write(0x11); // ICW1: initialise, ICW4 follows
        slave_cmd.write(0x11);
        master_data.write(0x20); // ICW2: vector base 0x20 (master), 0x28 (slave)
        slave_data.write(0x28);
        master_data.write(0x04); // ICW3: slave on IRQ 2
        slave_data.write(0x02);
        master_data.write(0x01); // ICW4: 8086 mode
        slave_data.write(0x01);
        master_data.write(0xFF); // mask everything
        slave_data.write(0xFF);
    }
}
