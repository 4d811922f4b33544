//! `print!` and `println!` to the console.
//!
//! Each `print!` formats into a buffer on the stack and hands it to the kernel
//! in one `WRITE` when it fits (256 bytes), so lines printed by threads on
//! different CPUs do not interleave mid-line.

use core::fmt::{self, Write};

const BUF: usize = 256;

struct LineWriter {
    buf: [u8; BUF],
    len: usize,
}

impl LineWriter {
    fn flush(&mut self) {
        let mut done = 0;
        while done < self.len {
            match crate::sys::write(&self.buf[done..self.len]) {
                Ok(0) | Err(_) => break, // nowhere left to report it
                Ok(n) => done += n,
            }
        }
        self.len = 0;
    }
}

impl Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(BUF) {
            if self.len + chunk.len() > BUF {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut w = LineWriter {
        buf: [0; BUF],
        len: 0,
    };
    let _ = w.write_fmt(args);
    w.flush();
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
