//! `grade`: the labs of `docs/labs/` (`make grade`, `make lab-start`).
//!
//! - `grade LAB`: grade the working tree for lab LAB; prints KTAP and a line
//!   `score LAB: GOT/TOTAL PASS|FAIL`; exits 0 only on a full score. Command
//!   output goes to `target/grade/LAB.log`.
//! - `grade --start LAB`: turn the working tree into LAB's starting point.
//! - `grade --list`: the labs and their titles.
//! - `grade --check-all`: what `make test` checks (the reference passes, the
//!   starting point fails), running every check (`make test` reads the
//!   reference's results from its own suites' logs instead);
//!   `grade --check LAB`: the same for one lab.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tests::config::Config;
use tests::grade::{self, Setup};
use tests::labcheck;
use tests::labs;

fn usage() -> ExitCode {
    eprintln!("usage: grade LAB | --start LAB | --list | --check-all | --check LAB");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--list"] => list(),
        ["--start", lab] => start(lab),
        ["--check-all"] => check_all(None),
        ["--check", lab] => check_all(Some(lab)),
        [lab] if !lab.starts_with('-') => run(lab),
        _ => return usage(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("grade: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> io::Result<PathBuf> {
    std::env::current_dir()
}

fn target_dir(root: &Path) -> PathBuf {
    let t = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()));
    if t.is_absolute() { t } else { root.join(t) }
}

fn list() -> io::Result<bool> {
    let root = root()?;
    for name in labs::list(&root) {
        let title = labs::load(&root, &name).map_or_else(|e| e, |l| l.title);
        println!("{name:<22} {title}");
    }
    Ok(true)
}

fn start(name: &str) -> io::Result<bool> {
    let root = root()?;
    let lab = labs::load(&root, name).map_err(io::Error::other)?;
    let changed = labs::apply_start(&root, &lab).map_err(io::Error::other)?;
    for f in changed {
        println!(
            "lab-start {name}: {} is now the starting point",
            f.display()
        );
    }
    println!(
        "lab-start {name}: read docs/labs/{name}/README.md; `make grade LAB={name}` grades your work"
    );
    Ok(true)
}

fn run(name: &str) -> io::Result<bool> {
    let root = root()?;
    let lab = labs::load(&root, name).map_err(io::Error::other)?;
    let target = target_dir(&root);
    let log_path = target.join("grade").join(format!("{name}.log"));
    std::fs::create_dir_all(log_path.parent().unwrap_or(&target))?;
    let mut log = File::create(&log_path)?;
    let setup = Setup {
        tree: root.clone(),
        host_target: target.clone(),
        loom_target: target.join("loom"),
        kernel_target: target.clone(),
        first_failure: false,
        config: Config::from_env(|k| std::env::var(k).ok()).map_err(io::Error::other)?,
    };
    println!(
        "grade {name}: building and running its tests (log: {})",
        log_path.display()
    );
    let report = grade::grade(&lab, &setup, &mut log)?;
    let mut out = io::stdout();
    grade::print(&lab, &report, &mut out)?;
    out.flush()?;
    Ok(report.passed())
}

fn check_all(lab: Option<&str>) -> io::Result<bool> {
    let root = root()?;
    let target = target_dir(&root);
    let names = lab.map_or_else(|| labs::list(&root), |l| vec![l.to_string()]);
    // Outside `make test` no log is recent: every check runs.
    let logs = labcheck::Logs {
        dir: target.join("test-logs"),
        since: Some(std::time::SystemTime::now()),
    };
    let tally = labcheck::check(&root, &names, &target, &logs, &mut io::stdout())?;
    println!("labs: {} passed, {} failed", tally.passed, tally.failed);
    Ok(tally.failed == 0)
}
