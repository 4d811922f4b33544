//! Leaving QEMU with a status the host can read.
//!
//! QEMU's `isa-debug-exit` device at port 0xf4 exits the emulator with status
//! `(value << 1) | 1`. We use 0x10 for success (status 33) and 0x11 for
//! failure (35); every other status, including 0 from a triple fault under
//! `-no-reboot`, is a failure to the runner.

use x86_64::instructions::port::Port;

use crate::arch::cpu;

pub const SUCCESS: u32 = 0x10;
pub const FAILURE: u32 = 0x11;

pub fn exit(code: u32) -> ! {
    let mut debug_exit: Port<u32> = Port::new(0xF4);
    // SAFETY: writing the exit device ends the emulator; without it the
    // port is unused and the write does nothing.
    unsafe { debug_exit.write(code) };
    // Not under QEMU (or the device is missing): stop here.
    cpu::halt_forever()
}
