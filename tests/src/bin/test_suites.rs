//! `test-suites`: everything `make test` runs, counted, ending with one line
//! `N passed, N failed` summed over all suites.
//!
//! 1. host tests: `cargo test -p mm -p tests -p abi`, the user runtime's, and
//!    the benchmark scripts' (Python `unittest`);
//! 2. loom models of the `mm` lock protocol (`--cfg loom`);
//! 3. the seed check: the seed's bug put back behind a feature must make its
//!    loom model fail (one pass when it fails, one failure if it passes);
//! 4. the in-kernel tests at SMP=1, SMP=4 and SMP=8 (one CPU, a typical
//!    machine, and more virtual CPUs than host cores);
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
use tests::process;
use tests::pyunit;
use tests::verdict::GuestExit;

const SEED_FEATURE: &str = "seed-v6-ordering";
const SEED_TEST: &str = "loom_seed_detach_race";
const LOOM_FILE: &str = "mm/tests/loom.rs";
const BENCH_TESTS: &str = "bench/test_bench.py";

enum Outcome {
    Ran(Tally),
    Skipped(String),
}

struct Suite {
    name: String,
    outcome: Outcome,
    log: PathBuf,
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
    let _ = writeln!(log, "==> {}", describe(&cmd));
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

fn describe(cmd: &Command) -> String {
    let env: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!(
        "{} {} {}",
        env.join(" "),
        cmd.get_program().to_string_lossy(),
        args.join(" ")
    )
    .trim()
    .to_string()
}

fn cargo(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Whether `mm/Cargo.toml` declares the seed feature (a line `NAME = [...]`).
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
        if let Outcome::Skipped(why) = &outcome {
            println!("!!!!!!!! SKIPPED suite `{name}`: {why} (not counted as passed) !!!!!!!!");
        }
        self.suites.push(Suite {
            name: name.into(),
            outcome,
            log,
        });
    }

    fn cargo_suite(&mut self, name: &str, file: &str, cmd: Command) -> io::Result<()> {
        let (mut log, path) = self.start(name, file)?;
        let (lines, ok) = run_logged(cmd, &mut log);
        self.record(name, Outcome::Ran(cargo_tests::tally(&lines, ok)), path);
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
    if !has_feature(Path::new("mm/Cargo.toml"), SEED_FEATURE) {
        let why = format!("mm/Cargo.toml has no feature `{SEED_FEATURE}`");
        runner.record("seed", Outcome::Skipped(why), PathBuf::new());
    } else if !file_mentions(Path::new(LOOM_FILE), SEED_TEST) {
        let why = format!("{LOOM_FILE} has no test `{SEED_TEST}`");
        runner.record("seed", Outcome::Skipped(why), PathBuf::new());
    } else {
        let (mut log, path) = runner.start("seed (must fail)", "seed.log")?;
        let args = [
            "test",
            "-p",
            "mm",
            "--release",
            "--features",
            SEED_FEATURE,
            "--test",
            "loom",
            SEED_TEST,
        ];
        let (lines, ok) = run_logged(cargo(&args, &loom_env), &mut log);
        let tally = cargo_tests::expected_failure(&lines, ok, SEED_TEST);
        let _ = if tally.failed == 0 {
            writeln!(
                log,
                "seed check: `{SEED_TEST}` failed with the seed's ordering, as it must"
            )
        } else {
            writeln!(
                log,
                "seed check FAILED: `{SEED_TEST}` did not fail on its own with the seed's ordering"
            )
        };
        runner.record("seed (must fail)", Outcome::Ran(tally), path);
    }

    // 4. The kernel, at one CPU, at four, and at eight (more vCPUs than the
    // host has cores: the interleavings a small machine never shows).
    let (mut log, path) = runner.start("kernel build", "kbuild.log")?;
    let (_, built) = run_logged(cargo(&["kbuild"], &[]), &mut log);
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
    let mut config = Config::from_env(|k| std::env::var(k).ok()).map_err(io::Error::other)?;
    config.mode = Mode::Test;
    for smp in [1, 4, 8] {
        let name = format!("ktest SMP={smp}");
        if !built {
            let why = "the kernel did not build (counted in `kernel build`)".to_string();
            runner.record(&name, Outcome::Skipped(why), PathBuf::new());
            continue;
        }
        let (mut log, path) = runner.start(&name, &format!("ktest-smp{smp}.log"))?;
        config.smp = smp;
        let v = guest::ktest(&config, &mut log)?;
        runner.record(
            &name,
            Outcome::Ran(Tally {
                passed: v.passed,
                failed: v.failed,
            }),
            path,
        );
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
                    "{mark} {:<18} {} passed, {} failed  (log: {})",
                    suite.name,
                    t.passed,
                    t.failed,
                    suite.log.display()
                );
            }
            Outcome::Skipped(why) => println!("SKIP {:<18} {why}", suite.name),
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
