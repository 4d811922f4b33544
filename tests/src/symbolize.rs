//! Turns the kernel's raw backtrace lines into function names and source lines.
//!
//! The kernel has no symbol table at run time; it prints return addresses as
//! `    bt #K 0xffffffff8012abcd`. The host has the ELF with its debug info, so
//! the runner asks binutils' `addr2line` and prints
//! `    bt #K 0xffffffff8012abcd function at file:line`. Without `addr2line`
//! the line is printed raw.

use std::path::Path;
use std::process::Command;

/// The frame number and address of a backtrace line, if it is one.
pub fn parse_bt(line: &str) -> Option<(u32, u64)> {
    let rest = line.trim_start().strip_prefix("bt #")?;
    let (frame, rest) = rest.split_once(' ')?;
    let hex = rest.trim().strip_prefix("0x")?;
    let hex = hex.split_whitespace().next()?;
    Some((frame.parse().ok()?, u64::from_str_radix(hex, 16).ok()?))
}

/// Asks `addr2line` which function and line hold `addr`.
///
/// The address is looked up as printed: the kernel already prints an address
/// inside the instruction that matters (`bt #0` is the faulting or current
/// RIP, later frames are return address - 1, inside the call).
pub fn lookup(elf: &Path, addr: u64) -> Option<(String, String)> {
    let output = Command::new("addr2line")
        .args(["-f", "-C", "-e"])
        .arg(elf)
        .arg(format!("{addr:#x}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let function = lines.next()?.trim().to_string();
    let location = lines.next()?.trim().to_string();
    if function == "??" && location.starts_with("??") {
        return None;
    }
    Some((function, shorten(&location)))
}

/// Paths relative to the current directory (the repository root under `make`).
fn shorten(location: &str) -> String {
    let location = location.split(" (discriminator").next().unwrap_or(location);
    match std::env::current_dir() {
        Ok(dir) => {
            let prefix = format!("{}/", dir.display());
            location
                .strip_prefix(&prefix)
                .unwrap_or(location)
                .to_string()
        }
        Err(_) => location.to_string(),
    }
}

/// The line to print for one line of guest output: symbolized if it is a
/// backtrace line and the lookup works, unchanged otherwise.
pub fn annotate(elf: &Path, line: &str) -> String {
    match parse_bt(line).and_then(|(_, addr)| lookup(elf, addr)) {
        Some((function, location)) => format!("{} {function} at {location}", line.trim_end()),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backtrace_lines() {
        assert_eq!(
            parse_bt("    bt #0 0xffffffff8012abcd"),
            Some((0, 0xffffffff8012abcd))
        );
        assert_eq!(parse_bt("bt #12 0x10"), Some((12, 0x10)));
        assert_eq!(parse_bt("    bt #x 0x10"), None);
        assert_eq!(parse_bt("    bt #1 12"), None);
        assert_eq!(parse_bt("[ 1.0] cpu0 INFO  hello"), None);
    }

    #[test]
    fn symbolizes_an_address_of_this_very_binary() {
        // This test binary has debug info, and `parse_bt` is in it: looking
        // up its first instruction must name it. Without binutils, only the
        // raw fallback is checked.
        let exe = std::env::current_exe().unwrap();
        let addr = parse_bt as *const () as usize as u64 - load_base(&exe);
        let line = format!("    bt #0 {addr:#x}");
        let out = annotate(&exe, &line);
        if Command::new("addr2line").arg("--version").output().is_ok() {
            assert!(out.contains("parse_bt"), "{out}");
            assert!(out.contains("symbolize.rs:"), "{out}");
        } else {
            assert_eq!(out, line);
        }
    }

    /// Where the (position-independent) test binary was loaded: addr2line
    /// speaks in addresses of the file, the running code in addresses of memory.
    fn load_base(exe: &Path) -> u64 {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let line = maps
            .lines()
            .find(|l| {
                l.ends_with(&*exe.to_string_lossy())
                    && l.split_whitespace().nth(2) == Some("00000000")
            })
            .expect("the executable's first mapping");
        u64::from_str_radix(line.split('-').next().unwrap(), 16).unwrap()
    }

    #[test]
    fn unknown_address_is_printed_raw() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(annotate(&exe, "    bt #3 0x1"), "    bt #3 0x1");
        assert_eq!(
            annotate(Path::new("/nonexistent"), "    bt #3 0x1"),
            "    bt #3 0x1"
        );
    }
}
