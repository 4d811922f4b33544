//! One boot of the kernel: QEMU started with the configured command line, its
//! output echoed live (backtraces symbolized), and in test mode the KTAP
//! results read and judged.

use crate::config::{Config, Mode};
use crate::ktap::Report;
use crate::process;
use crate::symbolize;
use crate::verdict::{self, GuestExit, Verdict};
use std::io::{self, Write};
use std::process::{Command, Stdio};

/// Boots the guest and waits for it; `out` receives every line as it comes.
pub fn boot(config: &Config, out: &mut dyn Write) -> io::Result<(GuestExit, Report)> {
    if !config.kernel.is_file() {
        return Err(io::Error::other(format!(
            "no kernel at {} (build it with `cargo kbuild`)",
            config.kernel.display()
        )));
    }
    let argv = config.qemu_argv();
    writeln!(out, "qemu-run: {} {}", config.qemu, shell_words(&argv))?;
    let mut cmd = Command::new(&config.qemu);
    cmd.args(&argv);
    // In run mode the user may type to the guest's serial console; a test run
    // must not wait for, or steal, the terminal's input.
    cmd.stdin(match config.mode {
        Mode::Run => Stdio::inherit(),
        Mode::Test => Stdio::null(),
    });
    let mut report = Report::default();
    let mut write_error = None;
    let exit = process::run(cmd, config.timeout, |line| {
        report.feed(line);
        let shown = symbolize::annotate(&config.kernel, line);
        if let Err(e) = writeln!(out, "{shown}").and_then(|_| out.flush()) {
            write_error.get_or_insert(e);
        }
    })
    .map_err(|e| io::Error::other(format!("cannot run `{}`: {e}", config.qemu)))?;
    match write_error {
        Some(e) => Err(e),
        None => Ok((exit, report)),
    }
}

/// Runs the in-kernel tests once and prints the reasons for a failure and the
/// summary line `ktest SMP=N: P passed, F failed`.
pub fn ktest(config: &Config, out: &mut dyn Write) -> io::Result<Verdict> {
    let verdict = match boot(config, out) {
        Ok((exit, report)) => verdict::judge(&report, &exit),
        // Nothing ran: one failure for the run, so it cannot pass unnoticed.
        Err(e) => Verdict {
            passed: 0,
            failed: 1,
            skipped: 0,
            reasons: vec![e.to_string()],
        },
    };
    for reason in &verdict.reasons {
        writeln!(out, "ktest FAIL: {reason}")?;
    }
    writeln!(out, "{}", summary_line(config.smp, &verdict))?;
    Ok(verdict)
}

/// Starts with `ktest` so that it is never mistaken for the final total line
/// of `make test`.
pub fn summary_line(smp: u32, v: &Verdict) -> String {
    let skipped = if v.skipped > 0 {
        format!(", {} skipped", v.skipped)
    } else {
        String::new()
    };
    format!(
        "ktest SMP={smp}: {} passed, {} failed{skipped}",
        v.passed, v.failed
    )
}

/// The arguments quoted for a shell, so the printed command can be pasted.
fn shell_words(argv: &[String]) -> String {
    let quote = |a: &String| {
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || ",.-_=+/:".contains(c))
        {
            a.clone()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    argv.iter().map(quote).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_shape() {
        let v = Verdict {
            passed: 9,
            failed: 0,
            skipped: 0,
            reasons: vec![],
        };
        assert_eq!(summary_line(4, &v), "ktest SMP=4: 9 passed, 0 failed");
        let v = Verdict {
            passed: 1,
            failed: 2,
            skipped: 3,
            reasons: vec![],
        };
        assert_eq!(
            summary_line(1, &v),
            "ktest SMP=1: 1 passed, 2 failed, 3 skipped"
        );
    }

    #[test]
    fn quotes_only_what_needs_it() {
        let argv = [
            "-m".to_string(),
            "mode=test ktest=a".to_string(),
            "it's".to_string(),
        ];
        assert_eq!(shell_words(&argv), r"-m 'mode=test ktest=a' 'it'\''s'");
    }
}
