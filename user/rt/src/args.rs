//! The argument string and a small `getopt`.
//!
//! `GET_ARGS` gives one UTF-8 string; arguments are separated by spaces (no
//! quoting). [`Getopt`] walks them like POSIX `getopt(3)`: `"t:p:n"` means
//! `-t` and `-p` take a value (`-t 2` or `-t2`), `-n` does not; `--` ends the
//! options.

/// The program's arguments, split on whitespace.
#[derive(Clone, Copy, Debug)]
pub struct Args {
    raw: &'static str,
}

impl Args {
    pub fn new(raw: &'static str) -> Args {
        Args { raw }
    }

    /// The string as `GET_ARGS` returned it.
    pub fn raw(self) -> &'static str {
        self.raw
    }

    /// The arguments, one by one.
    pub fn iter(self) -> impl Iterator<Item = &'static str> + Clone {
        self.raw.split_whitespace()
    }

    /// Options over these arguments (see [`Getopt`]).
    pub fn getopt(self, spec: &'static str) -> Getopt<'static, impl Iterator<Item = &'static str>> {
        Getopt::new(self.iter(), spec)
    }
}

/// One result of [`Getopt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt<'a> {
    /// `-c` (with its value if the spec says `c:`).
    Flag(char, Option<&'a str>),
    /// An argument that is not an option.
    Operand(&'a str),
    /// `-c` not in the spec.
    Unknown(char),
    /// `-c` needs a value and none followed.
    MissingValue(char),
}

pub struct Getopt<'a, I> {
    args: I,
    spec: &'a str,
    /// The rest of a cluster such as `-nh` after `-n`.
    pending: &'a str,
    only_operands: bool,
}

impl<'a, I: Iterator<Item = &'a str>> Getopt<'a, I> {
    pub fn new(args: I, spec: &'a str) -> Self {
        Getopt {
            args,
            spec,
            pending: "",
            only_operands: false,
        }
    }

    /// `None`: not an option; `Some(true)`: takes a value.
    fn takes_value(&self, c: char) -> Option<bool> {
        if c == ':' {
            return None; // the spec's value marker, never an option
        }
        let i = self.spec.find(c)?;
        Some(self.spec[i + c.len_utf8()..].starts_with(':'))
    }
}

impl<'a, I: Iterator<Item = &'a str>> Iterator for Getopt<'a, I> {
    type Item = Opt<'a>;

    fn next(&mut self) -> Option<Opt<'a>> {
        if self.pending.is_empty() {
            let arg = self.args.next()?;
            if self.only_operands || arg == "-" || !arg.starts_with('-') {
                return Some(Opt::Operand(arg));
            }
            if arg == "--" {
                self.only_operands = true;
                return self.next();
            }
            self.pending = &arg[1..];
        }
        let c = self.pending.chars().next()?;
        self.pending = &self.pending[c.len_utf8()..];
        Some(match self.takes_value(c) {
            None => Opt::Unknown(c),
            Some(false) => Opt::Flag(c, None),
            Some(true) => {
                let value = if self.pending.is_empty() {
                    self.args.next()
                } else {
                    Some(core::mem::take(&mut self.pending))
                };
                match value {
                    Some(v) => Opt::Flag(c, Some(v)),
                    None => Opt::MissingValue(c),
                }
            }
        })
    }
}

/// Parses a decimal integer (as `strtoul(s, NULL, 0)` would for decimal, hex
/// `0x..`, but no octal); `None` if malformed.
pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses seconds with an optional decimal fraction (`"5"`, `"0.25"`) into
/// nanoseconds, without floating point; `None` if malformed or too large.
pub fn parse_seconds_ns(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut frac_ns = 0u64;
    for (i, b) in frac.bytes().take(9).enumerate() {
        frac_ns += u64::from(b - b'0') * 10u64.pow(8 - i as u32);
    }
    whole.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &'static str, spec: &'static str) -> Vec<Opt<'static>> {
        Args::new(args).getopt(spec).collect()
    }

    #[test]
    fn faultbench_options() {
        assert_eq!(
            opts("-t 2 -p4096 -d 0.5 -m writer -n", "t:p:d:m:nh"),
            [
                Opt::Flag('t', Some("2")),
                Opt::Flag('p', Some("4096")),
                Opt::Flag('d', Some("0.5")),
                Opt::Flag('m', Some("writer")),
                Opt::Flag('n', None),
            ]
        );
    }

    #[test]
    fn clusters_operands_and_errors() {
        assert_eq!(
            opts("-nt3 file -- -x", "t:n"),
            [
                Opt::Flag('n', None),
                Opt::Flag('t', Some("3")),
                Opt::Operand("file"),
                Opt::Operand("-x"),
            ]
        );
        assert_eq!(opts("-x", "t:"), [Opt::Unknown('x')]);
        assert_eq!(opts("-t", "t:"), [Opt::MissingValue('t')]);
        assert_eq!(opts("-:", "t:"), [Opt::Unknown(':')]);
        assert_eq!(opts("  ", "t:"), []);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("2048"), Some(2048));
        assert_eq!(parse_u64("0x10"), Some(16));
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_seconds_ns("5"), Some(5_000_000_000));
        assert_eq!(parse_seconds_ns("0.25"), Some(250_000_000));
        assert_eq!(parse_seconds_ns(".5"), Some(500_000_000));
        assert_eq!(parse_seconds_ns("1.0000000019"), Some(1_000_000_001));
        assert_eq!(parse_seconds_ns("1.x"), None);
        assert_eq!(parse_seconds_ns("."), None);
        assert_eq!(parse_seconds_ns("-1"), None);
        assert_eq!(parse_seconds_ns("99999999999999"), None);
    }
}
