//! `test-suites`: everything `make test` runs, counted, ending with one line
//! `N passed, N failed` summed over all suites.
//!
//! 1. host tests: `cargo test -p mm -p tests -p abi`, the user runtime's, and
//!    the benchmark scripts' (Python `unittest`);
//! 2. loom models of the `mm` lock protocol (`--cfg loom`);
//! 3. the must-fail list (`tests/src/must_fail.rs`): each known bug put back
//!    behind a feature must make its test fail, a loom model or a kernel
//!    replay (one pass when it fails, one failure if it passes); each entry
//!    is its own line in the summary;
//! 4. the in-kernel tests at SMP=1, 2, 4 and 8 (one CPU, the fewest the
//!    replays need, a typical machine, and more virtual CPUs than host
//!    cores), then the must-fail kernels, each running only its replay.
//! 5. the labs: every lab's reference passes its grader and its starting
//!    point fails it (`tests::labcheck`).
//!
//! A suite whose files do not exist yet is skipped loudly and never counted
//! as passed. Each suite's output goes to the terminal and to
//! `target/test-logs/<suite>.log`. Settings for the kernel runs come from the
//! environment as for `qemu-run` (`MEM`, `ACCEL`, `TIMEOUT`, `KTEST`, `APPEND`).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;
use tests::cargo_tests::{self, Tally};
use tests::config::{Config, Mode};
use tests::guest;
use tests::labcheck;
use tests::must_fail::{self, Check, Entry};
use tests::process;
use tests::pyunit;
use tests::verdict::GuestExit;

const LOOM_FILE: &str = "mm/tests/loom.rs";
/// Test kernels carry the race-injection points and the replays.
const KERNEL_FEATURES: &str = "race-inject";
/// The kernel suite runs whole at each of these CPU counts.
const KTEST_SMP: [u32; 4] = [1, 2, 4, 8];
const BENCH_TESTS: &str = "bench/test_bench.py";

enum Outcome {
    Ran(Tally),
    Skipped(String),
}

struct Suite {
    name: String,
    outcome: Outcome,
    log: PathBuf,
    /// What failed, repeated under the suite's summary line: a CI log that
    /// keeps only its tail still names the failing test.
    why: Vec<String>,
}

/// Writes everything both to the terminal and to a suite's log file.
struct Tee(File);

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().write_all(buf)?;
        self.0.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()?;
        self.0.flush()
    }
}

/// Writes through to a log and keeps a copy (to judge what a run printed).
struct Capture<'a> {
    log: &'a mut Tee,
    text: Vec<u8>,
}

impl Write for Capture<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(buf);
        self.log.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.log.flush()
    }
}

/// How long one cargo suite (its build included) may run before it is
/// killed and failed, naming what was running: a hung test must never hang
/// `make test`. `SUITE_TIMEOUT=seconds` overrides it.
const SUITE_TIMEOUT: Duration = Duration::from_secs(900);

fn suite_timeout() -> Duration {
    std::env::var("SUITE_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(SUITE_TIMEOUT)
}

/// Runs a command with its output teed to the terminal and `log`; returns its
/// lines and whether it succeeded.
fn run_logged(cmd: Command, log: &mut Tee) -> (Vec<String>, bool) {
    let _ = writeln!(log, "==> {}", process::describe(&cmd));
    let mut lines = Vec::new();
    let result = process::run_group(cmd, Some(suite_timeout()), |line| {
        let _ = writeln!(log, "{line}");
        lines.push(line.to_string());
    });
    match result {
        Ok(GuestExit::TimedOut(after)) => {
            let _ = writeln!(
                log,
                "!!!!!!!! TIMED OUT after {} s, killed; running: {} !!!!!!!!",
                after.as_secs(),
                cargo_tests::hung_tests(&lines)
            );
            (lines, false)
        }
        Ok(exit) => (lines, exit == GuestExit::Status(0)),
        Err(e) => {
            let _ = writeln!(log, "cannot run: {e}");
            (lines, false)
        }
    }
}

fn cargo(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Whether a manifest declares `feature` (a line `NAME = [...]`).
fn has_feature(manifest: &Path, feature: &str) -> bool {
    std::fs::read_to_string(manifest).is_ok_and(|text| {
        text.lines().any(|l| {
            l.split_once('=')
                .is_some_and(|(key, _)| key.trim().trim_matches('"') == feature)
        })
    })
}

fn file_mentions(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle))
}

/// Why a must-fail entry cannot run here (its feature or test is missing).
fn entry_missing(entry: &Entry) -> Option<String> {
    let (file, manifest) = must_fail::files(entry.check);
    if !has_feature(Path::new(manifest), entry.feature) {
        Some(format!("{manifest} has no feature `{}`", entry.feature))
    } else if !file_mentions(Path::new(file), entry.test()) {
        Some(format!("{file} has no test `{}`", entry.test()))
    } else {
        None
    }
}

fn log_name(entry: &Entry) -> String {
    let kind = match entry.check {
        Check::Loom(_) => "loom",
        Check::Kernel(_) => "kernel",
    };
    format!("must-fail-{}-{kind}.log", entry.feature)
}

fn say_must_fail(log: &mut Tee, entry: &Entry, tally: Tally) {
    let _ = if tally.failed == 0 {
        writeln!(
            log,
            "must-fail check: `{}` failed with `{}`, as it must",
            entry.test(),
            entry.feature
        )
    } else {
        writeln!(
            log,
            "must-fail check FAILED: `{}` did not fail on its own with `{}`",
            entry.test(),
            entry.feature
        )
    };
}

struct Runner {
    logs: PathBuf,
    suites: Vec<Suite>,
}

impl Runner {
    fn start(&mut self, name: &str, file: &str) -> io::Result<(Tee, PathBuf)> {
        println!("\n==================== suite: {name} ====================");
        let path = self.logs.join(file);
        Ok((Tee(File::create(&path)?), path))
    }

    fn record(&mut self, name: &str, outcome: Outcome, log: PathBuf) {
        self.record_why(name, outcome, log, Vec::new());
    }

    fn record_why(&mut self, name: &str, outcome: Outcome, log: PathBuf, why: Vec<String>) {
        if let Outcome::Skipped(why) = &outcome {
            println!("!!!!!!!! SKIPPED suite `{name}`: {why} (not counted as passed) !!!!!!!!");
        }
        self.suites.push(Suite {
            name: name.into(),
            outcome,
            log,
            why,
        });
    }

    fn cargo_suite(&mut self, name: &str, file: &str, cmd: Command) -> io::Result<()> {
        let (mut log, path) = self.start(name, file)?;
        let (lines, ok) = run_logged(cmd, &mut log);
        let why = cargo_tests::failed_tests(&lines);
        self.record_why(
            name,
            Outcome::Ran(cargo_tests::tally(&lines, ok)),
            path,
            why,
        );
        Ok(())
    }
}

fn main() -> ExitCode {
    match run_all() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("test-suites: {e}");
            // The total line is still promised: nothing can be claimed passed.
            println!("0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

fn run_all() -> io::Result<bool> {
    let started = std::time::SystemTime::now();
    let target_dir =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()));
    let logs = target_dir.join("test-logs");
    std::fs::create_dir_all(&logs)?;
    let mut runner = Runner {
        logs,
        suites: Vec::new(),
    };

    // 1. Host tests.
    runner.cargo_suite(
        "host",
        "host.log",
        cargo(&["test", "-p", "mm", "-p", "tests", "-p", "abi"], &[]),
    )?;

    // The user runtime's pure logic (argument parsing, formatting) on the host.
    runner.cargo_suite(
        "user runtime",
        "user-rt.log",
        cargo(
            &[
                "test",
                "--manifest-path",
                "user/Cargo.toml",
                "-p",
                "rt",
                "--lib",
            ],
            &[],
        ),
    )?;

    // The benchmark scripts' own logic (medians, ratios, the plot), on the
    // host with Python's standard library.
    if Path::new(BENCH_TESTS).is_file() {
        let (mut log, path) = runner.start("bench scripts", "bench-py.log")?;
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "unittest", "discover", "-s", "bench", "-v"]);
        let (lines, ok) = run_logged(cmd, &mut log);
        runner.record(
            "bench scripts",
            Outcome::Ran(pyunit::tally(&lines, ok)),
            path,
        );
    } else {
        let why = format!("{BENCH_TESTS} does not exist");
        runner.record("bench scripts", Outcome::Skipped(why), PathBuf::new());
    }

    // 2. and 3. Loom models, in their own target directory: `--cfg loom`
    // changes every crate's flags and would rebuild the host tests each time.
    let loom_env = [
        ("RUSTFLAGS", "--cfg loom".to_string()),
        (
            "CARGO_TARGET_DIR",
            target_dir.join("loom").to_string_lossy().into_owned(),
        ),
    ];
    if Path::new(LOOM_FILE).is_file() {
        let cmd = cargo(
            &[
                "test",
                "-p",
                "mm",
                "--release",
                "--test",
                "loom",
                "--test",
                "range_tree_loom",
            ],
            &loom_env,
        );
        runner.cargo_suite("loom", "loom.log", cmd)?;
    } else {
        runner.record(
            "loom",
            Outcome::Skipped(format!("{LOOM_FILE} does not exist")),
            PathBuf::new(),
        );
    }
    let mut config = Config::from_env(|k| std::env::var(k).ok()).map_err(io::Error::other)?;
    config.mode = Mode::Test;

    // 3. The must-fail list: each known bug put back must make its test
    // fail. The kernel entries build their kernels first and keep them
    // aside, so the normal test kernel is the one left at the usual path.
    let mut kernel_checks = Vec::new();
    for entry in must_fail::ENTRIES {
        let name = format!("must fail: {}", entry.name);
        if let Some(why) = entry_missing(entry) {
            runner.record(&name, Outcome::Skipped(why), PathBuf::new());
            continue;
        }
        match entry.check {
            Check::Loom(test) => {
                let args = [
                    "test",
                    "-p",
                    "mm",
                    "--release",
                    "--features",
                    entry.feature,
                    "--test",
                    "loom",
                    "--",
                    "--exact",
                    test,
                ];
                let (mut log, path) = runner.start(&name, &log_name(entry))?;
                let (lines, ok) = run_logged(cargo(&args, &loom_env), &mut log);
                let tally = cargo_tests::expected_failure(&lines, ok, test);
                say_must_fail(&mut log, entry, tally);
                runner.record(&name, Outcome::Ran(tally), path);
            }
            Check::Kernel(_) => {
                let (mut log, path) = runner.start(&name, &log_name(entry))?;
                let features = format!("{KERNEL_FEATURES},{}", entry.feature);
                let (_, built) =
                    run_logged(cargo(&["kbuild", "--features", &features], &[]), &mut log);
                let kernel = target_dir.join("must-fail").join(entry.feature);
                let kept = built
                    && std::fs::create_dir_all(&kernel).is_ok()
                    && std::fs::copy(&config.kernel, kernel.join("kernel")).is_ok();
                kernel_checks.push((name, entry, kept.then(|| kernel.join("kernel")), log, path));
            }
        }
    }

    // 4. The kernel, at one CPU, at two, at four, and at eight (more vCPUs
    // than the host has cores: the interleavings a small machine never
    // shows). The replays need two CPUs: at one they report skipped.
    let (mut log, path) = runner.start("kernel build", "kbuild.log")?;
    let (_, built) = run_logged(
        cargo(&["kbuild", "--features", KERNEL_FEATURES], &[]),
        &mut log,
    );
    if !built {
        runner.record(
            "kernel build",
            Outcome::Ran(Tally {
                passed: 0,
                failed: 1,
            }),
            path,
        );
    }
    for smp in KTEST_SMP {
        let name = format!("ktest SMP={smp}");
        if !built {
            let why = "the kernel did not build (counted in `kernel build`)".to_string();
            runner.record(&name, Outcome::Skipped(why), PathBuf::new());
            continue;
        }
        let (mut log, path) = runner.start(&name, &format!("ktest-smp{smp}.log"))?;
        config.smp = smp;
        let v = guest::ktest(&config, &mut log)?;
        runner.record_why(
            &name,
            Outcome::Ran(Tally {
                passed: v.passed,
                failed: v.failed,
            }),
            path,
            v.reasons,
        );
    }

    // The must-fail kernels, each running only its replay.
    for (name, entry, kernel, mut log, path) in kernel_checks {
        println!("\n==================== suite: {name} ====================");
        let tally = match kernel {
            Some(kernel) => {
                let mut c = config.clone();
                c.kernel = kernel;
                c.smp = must_fail::KERNEL_SMP;
                c.ktest = entry.test().to_string();
                c.timeout = Some(Duration::from_secs(180));
                let mut seen = Capture {
                    log: &mut log,
                    text: Vec::new(),
                };
                match guest::boot(&c, &mut seen) {
                    Ok((_, report)) => {
                        let text = String::from_utf8_lossy(&seen.text);
                        must_fail::judge_kernel(&report, &text, entry.test(), entry.because)
                    }
                    Err(e) => {
                        let _ = writeln!(log, "cannot boot: {e}");
                        Tally {
                            passed: 0,
                            failed: 1,
                        }
                    }
                }
            }
            None => {
                let _ = writeln!(log, "the kernel with `{}` did not build", entry.feature);
                Tally {
                    passed: 0,
                    failed: 1,
                }
            }
        };
        say_must_fail(&mut log, entry, tally);
        runner.record(&name, Outcome::Ran(tally), path);
    }

    // 5. The labs (docs/labs/): each reference passes, each starting point
    // fails (tests::labcheck). Last: it reads the logs of the suites above.
    let (mut log, path) = runner.start("labs", "labs.log")?;
    let logs = labcheck::Logs {
        dir: runner.logs.clone(),
        since: Some(started),
    };
    let tally = labcheck::check_all(Path::new("."), &target_dir, &logs, &mut log)?;
    runner.record("labs", Outcome::Ran(tally), path);

    Ok(print_summary(&runner.suites))
}

/// Prints one line per suite, then the total line alone; true if nothing failed.
fn print_summary(suites: &[Suite]) -> bool {
    println!("\n==================== summary ====================");
    let mut total = Tally::default();
    for suite in suites {
        match &suite.outcome {
            Outcome::Ran(t) => {
                total.add(*t);
                let mark = if t.failed == 0 { "ok  " } else { "FAIL" };
                println!(
                    "{mark} {:<50} {} passed, {} failed  (log: {})",
                    suite.name,
                    t.passed,
                    t.failed,
                    suite.log.display()
                );
                if t.failed > 0 {
                    for why in &suite.why {
                        println!("       {why}");
                    }
                }
            }
            Outcome::Skipped(why) => println!("SKIP {:<50} {why}", suite.name),
        }
    }
    let skipped = suites
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Skipped(_)))
        .count();
    if skipped > 0 {
        println!("{skipped} suite(s) SKIPPED: they are in neither count below");
    }
    println!("{} passed, {} failed", total.passed, total.failed);
    total.failed == 0
}
