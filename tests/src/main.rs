//! `qemu-run`: boots the kernel in QEMU once.
//!
//! ```text
//! qemu-run [--mode run|test] [--smp N] [--mem M] [--accel tcg|kvm] [--cpu MODEL]
//!          [--tcg-thread auto|multi|single]
//!          [--timeout SECS] [--ktest a,b] [--append "k=v ..."] [--qemu BIN]
//!          [--qemu-args "..."] [--gdb] [--exec] [KERNEL_ELF]
//! ```
//! Each flag defaults to its environment variable (`MODE`, `SMP`, `MEM`,
//! `ACCEL`, `TCG_THREAD`, `CPU`, `TIMEOUT`, `KTEST`, `APPEND`, `QEMU`, `QEMU_ARGS`,
//! `KERNEL`). The kernel ELF may come last, which is how cargo's `runner`
//! setting calls it.
//!
//! Exit status: 0 when the guest succeeded (test mode: every planned test
//! `ok`), 1 when it failed, 2 for a usage error.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use tests::config::{Config, Mode};
use tests::guest;
use tests::verdict;

const USAGE: &str = "usage: qemu-run [--mode run|test] [--smp N] [--mem M] [--accel tcg|kvm] [--tcg-thread auto|multi|single] [--cpu MODEL] \
[--timeout SECS (0: none)] [--ktest a,b] [--append ARGS] [--qemu BIN] [--qemu-args ARGS] [--gdb] [--exec] [KERNEL_ELF]";

/// What to do once the configuration is known.
struct Action {
    /// Replace this process with QEMU (for `make gdb`, where the shell must
    /// be able to kill QEMU itself by its pid).
    exec: bool,
}

fn parse_args(config: &mut Config, args: impl Iterator<Item = String>) -> Result<Action, String> {
    let mut action = Action { exec: false };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--gdb" => config.gdb = true,
            "--exec" => action.exec = true,
            flag if flag.starts_with("--") => {
                let (key, value) = match flag[2..].split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (
                        flag[2..].to_string(),
                        args.next().ok_or(format!("{flag} needs a value"))?,
                    ),
                };
                config.set(&key, &value)?;
            }
            kernel => config.set("kernel", kernel)?,
        }
    }
    Ok(action)
}

fn main() -> ExitCode {
    let mut config = match Config::from_env(|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => return usage_error(&e),
    };
    let action = match parse_args(&mut config, std::env::args().skip(1)) {
        Ok(action) => action,
        Err(e) => return usage_error(&e),
    };
    if config.gdb {
        // The guest waits for the debugger: no deadline.
        config.timeout = None;
    }
    if action.exec {
        let err = Command::new(&config.qemu).args(config.qemu_argv()).exec();
        eprintln!("qemu-run: cannot run `{}`: {err}", config.qemu);
        return ExitCode::FAILURE;
    }
    let mut out = std::io::stdout();
    match config.mode {
        Mode::Test => match guest::ktest(&config, &mut out) {
            Ok(v) if v.ok() => ExitCode::SUCCESS,
            Ok(_) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("qemu-run: {e}");
                ExitCode::FAILURE
            }
        },
        Mode::Run => match guest::boot(&config, &mut out) {
            Ok((exit, _)) => {
                if let Some(problem) = exit.problem() {
                    eprintln!("qemu-run: {problem}");
                }
                ExitCode::from(verdict::run_mode_code(&exit) as u8)
            }
            Err(e) => {
                eprintln!("qemu-run: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn usage_error(message: &str) -> ExitCode {
    if !message.is_empty() {
        eprintln!("qemu-run: {message}");
    }
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
