//! Grading a lab: run its checks in a source tree, print KTAP and a score.
//!
//! Checks run grouped, cheapest first: results files, then one `cargo test`
//! per host test target, one per loom test target, one kernel boot per SMP
//! count. A test that a run does not report (renamed, or its binary
//! crashed) fails, and a group that does not build fails all its checks as
//! a *build failure*, which `make test` tells apart from a failing test.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::config::{Config, Mode};
use crate::guest;
use crate::labs::{self, Check, Kind, Lab};
use crate::measure;
use crate::process;
use crate::verdict::GuestExit;

/// Where a grading run builds and what it does.
pub struct Setup {
    /// The source tree graded.
    pub tree: PathBuf,
    /// Cargo target directories: host tests, loom models, the kernel.
    pub host_target: PathBuf,
    pub loom_target: PathBuf,
    pub kernel_target: PathBuf,
    /// Stop at the first failing group (the rest is reported skipped).
    pub first_failure: bool,
    /// Kernel settings from the environment (`MEM`, `ACCEL`, `TIMEOUT`...).
    pub config: Config,
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail(String),
    /// Its group did not build.
    BuildFailed(String),
    /// Not run: an earlier group failed and `first_failure` was set.
    NotRun,
}

/// A graded lab.
pub struct Report {
    pub results: Vec<(Check, Status)>,
    /// Checks left out (`kernel?` tests the kernel does not have yet).
    pub left_out: Vec<Check>,
}

impl Report {
    pub fn score(&self) -> (u32, u32) {
        let total = self.results.iter().map(|(c, _)| c.points).sum();
        let got = self
            .results
            .iter()
            .filter(|(_, s)| *s == Status::Pass)
            .map(|(c, _)| c.points)
            .sum();
        (got, total)
    }

    pub fn passed(&self) -> bool {
        self.results.iter().all(|(_, s)| *s == Status::Pass)
    }

    pub fn build_failed(&self) -> bool {
        self.results
            .iter()
            .any(|(_, s)| matches!(s, Status::BuildFailed(_)))
    }

    pub fn test_failed(&self) -> bool {
        self.results
            .iter()
            .any(|(_, s)| matches!(s, Status::Fail(_)))
    }
}

/// Per-test outcomes of one group run, or why the group did not build.
type GroupResult = Result<BTreeMap<String, Result<(), String>>, String>;

/// How long one `cargo test` group may run, its build included: host tests
/// take seconds (a stub that panics while a test holds a lock can hang one,
/// and its group is then killed), loom models up to minutes.
const HOST_TIMEOUT: Duration = Duration::from_secs(300);
const LOOM_TIMEOUT: Duration = Duration::from_secs(900);

/// Grades `lab` in `setup.tree`; `log` receives the output of every command.
pub fn grade(lab: &Lab, setup: &Setup, log: &mut dyn Write) -> io::Result<Report> {
    let (checks, left_out): (Vec<Check>, Vec<Check>) = lab
        .checks
        .iter()
        .cloned()
        .partition(|c| !c.if_exists || labs::kernel_has_test(&setup.tree, &c.name));
    let mut groups: BTreeMap<Kind, Vec<Check>> = BTreeMap::new();
    for c in checks {
        groups.entry(c.kind.clone()).or_default().push(c);
    }
    let mut results = Vec::new();
    let mut stop = false;
    for (kind, checks) in groups {
        if stop {
            results.extend(checks.into_iter().map(|c| (c, Status::NotRun)));
            continue;
        }
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        let outcome = run_group(&kind, &names, setup, log)?;
        for c in checks {
            let status = match &outcome {
                Err(why) => Status::BuildFailed(why.clone()),
                Ok(map) => match map.get(&c.name) {
                    Some(Ok(())) => Status::Pass,
                    Some(Err(why)) => Status::Fail(why.clone()),
                    None => Status::Fail("did not run (no result reported)".into()),
                },
            };
            stop |= setup.first_failure && status != Status::Pass;
            results.push((c, status));
        }
    }
    Ok(Report { results, left_out })
}

fn run_group(
    kind: &Kind,
    names: &[&str],
    setup: &Setup,
    log: &mut dyn Write,
) -> io::Result<GroupResult> {
    match kind {
        Kind::Results { checker } => Ok(Ok(names
            .iter()
            .map(|file| {
                let r = measure::check_named(checker, &setup.tree.join(file));
                (file.to_string(), r)
            })
            .collect())),
        Kind::Host {
            package,
            target,
            env,
        } => {
            let mut cmd = cargo_test(setup, package, target, names, &setup.host_target, false);
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
            run_cargo(cmd, names, HOST_TIMEOUT, log)
        }
        Kind::Loom {
            package,
            target,
            env,
        } => {
            let mut cmd = cargo_test(setup, package, target, names, &setup.loom_target, true);
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
            run_cargo(cmd, names, LOOM_TIMEOUT, log)
        }
        Kind::Kernel { smp } => run_kernel(*smp, names, setup, log),
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn cargo_test(
    setup: &Setup,
    package: &str,
    target: &str,
    names: &[&str],
    target_dir: &Path,
    loom: bool,
) -> Command {
    let mut cmd = cargo();
    cmd.current_dir(&setup.tree);
    cmd.args(["test", "-p", package]);
    if target == "lib" {
        cmd.arg("--lib");
    } else {
        cmd.args(["--test", target]);
    }
    if loom {
        cmd.arg("--release");
        cmd.env("RUSTFLAGS", "--cfg loom");
    }
    cmd.env("CARGO_TARGET_DIR", target_dir);
    cmd.args(["--", "--exact"]);
    cmd.args(names);
    cmd
}

/// Runs `cmd`, logging its output; the result of each test libtest reported.
fn run_cargo(
    cmd: Command,
    names: &[&str],
    timeout: Duration,
    log: &mut dyn Write,
) -> io::Result<GroupResult> {
    writeln!(log, "==> {}", process::describe(&cmd))?;
    let mut lines = Vec::new();
    let exit = process::run_group(cmd, Some(timeout), |line| {
        let _ = writeln!(log, "{line}");
        lines.push(line.to_string());
    })?;
    let mut map = BTreeMap::new();
    for line in &lines {
        let Some(rest) = line.trim().strip_prefix("test ") else {
            continue;
        };
        if let Some(name) = rest.strip_suffix(" ... ok") {
            map.insert(name.to_string(), Ok(()));
        } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
            map.insert(name.to_string(), Err(panic_message(&lines, name)));
        }
    }
    let ran_tests = lines.iter().any(|l| l.starts_with("running "));
    Ok(match exit {
        // Tests that reported before the kill keep their results; the
        // running ones fail, named, as hung.
        GuestExit::TimedOut(after) if ran_tests => {
            let why = format!("hung: killed after {} s", after.as_secs());
            for line in &lines {
                let hung = line
                    .trim()
                    .strip_prefix("test ")
                    .and_then(|r| r.strip_suffix(" has been running for over 60 seconds"));
                if let Some(name) = hung {
                    map.entry(name.to_string()).or_insert(Err(why.clone()));
                }
            }
            writeln!(log, "{why}")?;
            Ok(map)
        }
        GuestExit::TimedOut(after) => Err(format!("build timed out after {} s", after.as_secs())),
        _ if !ran_tests => Err(build_error(&lines)),
        // No summary line: the test binary died (a panic while panicking
        // aborts it), taking the tests that had not reported with it.
        _ if !lines.iter().any(|l| l.starts_with("test result:")) => {
            for name in names {
                map.entry(name.to_string()).or_insert(Err(
                    "the test binary crashed before reporting (see the log)".into(),
                ));
            }
            Ok(map)
        }
        _ => Ok(map),
    })
}

/// The first compiler error, or the last lines of the output.
fn build_error(lines: &[String]) -> String {
    lines
        .iter()
        .find(|l| l.starts_with("error"))
        .or_else(|| lines.last())
        .map_or("did not build".into(), |l| format!("did not build: {l}"))
}

/// The panic message libtest printed for `name`, if any.
fn panic_message(lines: &[String], name: &str) -> String {
    let head = format!("thread '{name}'");
    lines
        .iter()
        .position(|l| l.starts_with(&head) && l.contains("panicked"))
        .and_then(|i| {
            lines
                .get(i + 1)
                .map(|m| format!("{} ({})", m.trim(), lines[i]))
        })
        .unwrap_or_else(|| "failed".into())
}

/// Builds the kernel in the tree and boots it once with the named tests.
fn run_kernel(
    smp: u32,
    names: &[&str],
    setup: &Setup,
    log: &mut dyn Write,
) -> io::Result<GroupResult> {
    let mut cmd = cargo();
    cmd.current_dir(&setup.tree)
        .arg("kbuild")
        .env("CARGO_TARGET_DIR", &setup.kernel_target);
    if let Err(why) = run_cargo_build(cmd, log)? {
        return Ok(Err(why));
    }
    let mut config = setup.config.clone();
    config.mode = Mode::Test;
    config.smp = smp;
    config.ktest = names.join(",");
    config.kernel = setup.kernel_target.join("x86_64-target/debug/kernel");
    let (exit, report) = match guest::boot(&config, log) {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("cannot boot: {e}"))),
    };
    let mut map = BTreeMap::new();
    for r in &report.results {
        let status = if r.ok && !r.skipped {
            Ok(())
        } else if r.skipped {
            Err("skipped".into())
        } else {
            Err("not ok in the kernel's KTAP (see the log)".into())
        };
        map.insert(r.name.clone(), status);
    }
    // A test that was running when the guest died or hung fails with that.
    if let Some(running) = &report.running {
        let why = exit.problem().unwrap_or_else(|| "no result".into());
        map.insert(running.clone(), Err(format!("did not finish: {why}")));
    }
    for (text, test) in &report.panics {
        if let Some(test) = test {
            map.insert(test.clone(), Err(format!("kernel panic: {text}")));
        }
    }
    // The boot ended before these ran (a panic stops the run).
    if let Some(problem) = exit.problem() {
        for name in names {
            map.entry(name.to_string())
                .or_insert_with(|| Err(format!("did not run: {problem}")));
        }
    }
    Ok(Ok(map))
}

/// Runs a build command, logging its output.
fn run_cargo_build(cmd: Command, log: &mut dyn Write) -> io::Result<GroupResult> {
    writeln!(log, "==> {}", process::describe(&cmd))?;
    let mut lines = Vec::new();
    let exit = process::run_group(cmd, Some(LOOM_TIMEOUT), |line| {
        let _ = writeln!(log, "{line}");
        lines.push(line.to_string());
    })?;
    Ok(if exit == GuestExit::Status(0) {
        Ok(BTreeMap::new())
    } else {
        Err(build_error(&lines))
    })
}

/// Prints the report as KTAP, then the score line.
pub fn print(lab: &Lab, report: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "KTAP version 1")?;
    writeln!(out, "# lab {}: {}", lab.name, lab.title)?;
    for c in &report.left_out {
        writeln!(
            out,
            "# not graded yet: kernel test `{}` does not exist in this tree",
            c.name
        )?;
    }
    writeln!(out, "1..{}", report.results.len())?;
    for (i, (c, status)) in report.results.iter().enumerate() {
        let n = i + 1;
        let label = c.label();
        match status {
            Status::Pass => writeln!(out, "ok {n} {label}")?,
            Status::NotRun => writeln!(
                out,
                "ok {n} {label} # SKIP not run: stopped at the first failure"
            )?,
            Status::Fail(why) | Status::BuildFailed(why) => {
                writeln!(out, "# {label}: {why}")?;
                writeln!(out, "not ok {n} {label}")?;
            }
        }
        let got = if *status == Status::Pass { c.points } else { 0 };
        writeln!(out, "# {got}/{} points", c.points)?;
    }
    let (got, total) = report.score();
    let verdict = if report.passed() { "PASS" } else { "FAIL" };
    writeln!(out, "score {}: {got}/{total} {verdict}", lab.name)
}
