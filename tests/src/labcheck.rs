//! What `make test` checks of every lab: the reference (the tree as it is)
//! passes its grader, and the starting point fails it, by a failing test and
//! not by a build error (a stub that no longer compiles after a change to the
//! code around it is a broken lab, not a working one).
//!
//! Kept cheap: the reference's host, loom and kernel results are read from
//! the logs of the suites `make test` has just run (a check they do not
//! report is run for real), and a starting point is graded only until its
//! first failure, in a copy of the tree (the working tree is never touched).
//!
//! One copy, `target/labs/tree`, serves every lab in turn, built in its own
//! target directory `target/labs/target`. Cargo names a workspace crate's
//! artifacts the same wherever the workspace lies, so a copy built into the
//! working tree's target directory would overwrite its artifacts; and a
//! copy *inside* the target directory it builds into has its sources
//! recorded relative to that directory, so two copies would pass for each
//! other. One copy at one path, outside its build directory, with only the
//! files that changed rewritten, keeps cargo's freshness checks right and
//! its dependencies built once.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::cargo_tests::Tally;
use crate::config::Config;
use crate::grade::{self, Setup};
use crate::ktap::{self, Line};
use crate::labs::{self, Check, Kind, Lab};

/// Where the logs of the suites `make test` ran are.
pub struct Logs {
    pub dir: PathBuf,
    /// Only logs written since then count (a suite skipped in this run
    /// leaves the log of an earlier one).
    pub since: Option<SystemTime>,
}

impl Logs {
    /// The text of the log for checks of `kind`, if it is recent enough.
    fn read(&self, kind: &Kind) -> Option<String> {
        let path = log_for(kind, &self.dir)?;
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        if self.since.is_some_and(|since| modified < since) {
            return None;
        }
        std::fs::read_to_string(path).ok()
    }
}

/// The suite's log in `logs` that holds the result of a check of `kind`.
/// None for a check with its own environment: `make test` ran it without.
fn log_for(kind: &Kind, logs: &Path) -> Option<PathBuf> {
    match kind {
        Kind::Host { env, .. } if env.is_empty() => Some(logs.join("host.log")),
        Kind::Loom { env, .. } if env.is_empty() => Some(logs.join("loom.log")),
        Kind::Host { .. } | Kind::Loom { .. } => None,
        Kind::Kernel { smp } => Some(logs.join(format!("ktest-smp{smp}.log"))),
        Kind::Results { .. } => None,
    }
}

/// The result `log` reports for check `c`, if it reports one.
fn from_log(c: &Check, log: &str) -> Option<bool> {
    let mut found = None;
    for line in log.lines() {
        match &c.kind {
            Kind::Kernel { .. } => {
                if let Line::Result(r) = ktap::classify(line)
                    && r.name == c.name
                {
                    found = Some(r.ok && !r.skipped);
                }
            }
            _ => {
                let Some(rest) = line.trim().strip_prefix("test ") else {
                    continue;
                };
                if rest.strip_suffix(" ... ok") == Some(c.name.as_str()) {
                    found = Some(true);
                } else if rest.strip_suffix(" ... FAILED") == Some(c.name.as_str()) {
                    found = Some(false);
                }
            }
        }
    }
    found
}

/// The reference: every check passes, from the logs where they have it.
fn reference(lab: &Lab, setup: &Setup, logs: &Logs, out: &mut dyn Write) -> io::Result<bool> {
    let mut to_run = Vec::new();
    let mut ok = true;
    for c in &lab.checks {
        if c.if_exists && !labs::kernel_has_test(&setup.tree, &c.name) {
            continue;
        }
        let seen = logs.read(&c.kind).and_then(|text| from_log(c, &text));
        match seen {
            Some(true) => writeln!(out, "  reference {}: passed in make test's run", c.label())?,
            Some(false) => {
                writeln!(out, "  reference {}: FAILED in make test's run", c.label())?;
                ok = false;
            }
            None => to_run.push(c.clone()),
        }
    }
    if !to_run.is_empty() {
        let rest = Lab {
            checks: to_run,
            ..lab.clone()
        };
        let report = grade::grade(&rest, setup, out)?;
        for (c, status) in &report.results {
            writeln!(out, "  reference {}: {status:?} (run now)", c.label())?;
        }
        ok &= report.passed();
    }
    Ok(ok)
}

/// The starting point, in a copy: must fail a test and build.
fn starting_point(lab: &Lab, root: &Path, setup: &Setup, out: &mut dyn Write) -> io::Result<bool> {
    let copy = setup.tree.clone();
    labs::sync_tree(root, &copy)?;
    if let Err(e) = labs::apply_start(&copy, lab) {
        writeln!(out, "  starting point cannot be made: {e}")?;
        return Ok(false);
    }
    let report = grade::grade(lab, setup, out)?;
    grade::print(lab, &report, out)?;
    let good = report.test_failed() && !report.build_failed();
    if report.build_failed() {
        writeln!(
            out,
            "  starting point of `{}` does not build: fix its stub",
            lab.name
        )?;
    } else if !report.test_failed() {
        writeln!(
            out,
            "  starting point of `{}` passes its grader: the grader cannot see the missing solution",
            lab.name
        )?;
    }
    Ok(good)
}

/// Checks every lab under `root` (the repository); `target` is its cargo
/// target directory and `logs` the logs of this `make test` run.
pub fn check_all(
    root: &Path,
    target: &Path,
    logs: &Logs,
    out: &mut dyn Write,
) -> io::Result<Tally> {
    check(root, &labs::list(root), target, logs, out)
}

/// Checks the labs `names` (see [`check_all`]).
pub fn check(
    root: &Path,
    names: &[String],
    target: &Path,
    logs: &Logs,
    out: &mut dyn Write,
) -> io::Result<Tally> {
    let started = std::time::Instant::now();
    let (root, target) = (&std::path::absolute(root)?, &std::path::absolute(target)?);
    let config = Config::from_env(|k| std::env::var(k).ok()).map_err(io::Error::other)?;
    let mut tally = Tally::default();
    let count = |ok: bool, tally: &mut Tally| {
        if ok {
            tally.passed += 1
        } else {
            tally.failed += 1
        }
    };
    for name in names {
        let lab = match labs::load(root, name) {
            Ok(lab) => lab,
            Err(e) => {
                writeln!(out, "lab {name}: {e}")?;
                count(false, &mut tally);
                continue;
            }
        };
        writeln!(out, "==> lab {name}: the reference must pass")?;
        let reference_setup = Setup {
            tree: root.to_path_buf(),
            host_target: target.to_path_buf(),
            loom_target: target.join("loom"),
            kernel_target: target.to_path_buf(),
            first_failure: false,
            config: config.clone(),
        };
        let ok = reference(&lab, &reference_setup, logs, out)?;
        writeln!(
            out,
            "lab {name}: reference {}",
            if ok { "passes" } else { "FAILS" }
        )?;
        count(ok, &mut tally);

        writeln!(out, "==> lab {name}: the starting point must fail")?;
        let build = target.join("labs").join("target");
        let start_setup = Setup {
            tree: target.join("labs").join("tree"),
            host_target: build.clone(),
            loom_target: build.join("loom"),
            kernel_target: build,
            first_failure: true,
            config: config.clone(),
        };
        let ok = starting_point(&lab, root, &start_setup, out)?;
        writeln!(
            out,
            "lab {name}: starting point {}",
            if ok { "fails, as it must" } else { "is BROKEN" }
        )?;
        count(ok, &mut tally);
    }
    // Information only (no test asserts a time): what the labs add to
    // `make test`.
    writeln!(
        out,
        "labs: {} lab(s) checked in {} s",
        names.len(),
        started.elapsed().as_secs()
    )?;
    Ok(tally)
}
