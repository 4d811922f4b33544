//! `qemu-run` end to end against `fake/qemu.sh`, a script that plays the
//! kernel's part: each test checks the runner's exit status and what it says.

use std::path::PathBuf;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn qemu_run(story: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fake = dir.join("fake/qemu.sh");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qemu-run"));
    // The fake ignores -kernel, but the runner checks the file exists.
    cmd.args(args).arg(&fake);
    for var in [
        "MODE",
        "SMP",
        "MEM",
        "ACCEL",
        "TCG_THREAD",
        "CPU",
        "TIMEOUT",
        "KTEST",
        "APPEND",
        "QEMU_ARGS",
        "KERNEL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("QEMU", &fake).env("FAKE_QEMU", story);
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run qemu-run");
    Run {
        code: out.status.code().expect("qemu-run exited by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ktest(story: &str, args: &[&str]) -> Run {
    let mut all = vec!["--mode", "test"];
    all.extend_from_slice(args);
    qemu_run(story, &all, &[])
}

#[test]
fn passing_run_succeeds_and_prints_the_summary() {
    let r = ktest("pass", &["--smp", "4"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("# cpus online: 4"),
        "guest output is echoed"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l == "ktest SMP=4: 2 passed, 0 failed"),
        "{}",
        r.stdout
    );
}

#[test]
fn failing_test_fails_the_run_and_is_named() {
    let r = ktest("fail", &["--smp", "1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("ktest FAIL: not ok 2 selftest_fail"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l == "ktest SMP=1: 1 passed, 1 failed"),
        "{}",
        r.stdout
    );
}

#[test]
fn triple_fault_exit_is_a_failure() {
    let r = ktest("triple", &[]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("triple fault"), "{}", r.stdout);
    assert!(r.stdout.contains("1 passed, 1 failed"), "{}", r.stdout);
}

#[test]
fn fewer_results_than_planned_fail() {
    let r = ktest("short", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("only 1 of 3 planned results"),
        "{}",
        r.stdout
    );
}

#[test]
fn missing_plan_fails() {
    let r = ktest("noplan", &[]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("no KTAP plan line"), "{}", r.stdout);
}

#[test]
fn panic_fails_and_names_the_test() {
    let r = ktest("panic", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("kernel panic in test `page_fault_reports_cr2`"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("    bt #0 0xffffffff80001234"),
        "{}",
        r.stdout
    );
}

#[test]
fn hanging_test_is_killed_and_named() {
    let r = ktest("hang", &["--timeout", "2"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("while running test `selftest_hang`"),
        "{}",
        r.stdout
    );
    // The hung test never reported: it is the one missing result.
    assert!(
        r.stdout.contains("ktest SMP=4: 1 passed, 1 failed"),
        "{}",
        r.stdout
    );
}

#[test]
fn settings_reach_the_qemu_command_line() {
    let r = qemu_run(
        "pass",
        &[
            "--mode",
            "test",
            "--smp",
            "3",
            "--mem=64M",
            "--ktest",
            "a,b",
            "--tcg-thread",
            "multi",
        ],
        &[
            ("APPEND", "ktest.selftest=fail pervma=off"),
            ("QEMU_ARGS", "-d int"),
        ],
    );
    let args = r
        .stdout
        .lines()
        .find(|l| l.starts_with("fake-qemu args:"))
        .expect("args line");
    assert!(args.contains("-smp 3 -m 64M"), "{args}");
    assert!(
        args.contains("-append mode=test expect_cpus=3 ktest=a,b ktest.selftest=fail pervma=off"),
        "{args}"
    );
    assert!(args.contains("-accel tcg,thread=multi -cpu max"), "{args}");
    assert!(args.ends_with("-d int"), "{args}");
}

#[test]
fn run_mode_maps_the_exit_status() {
    let ok = qemu_run("run", &["--mode", "run"], &[]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("4 CPUs online"));
    assert!(ok.stdout.contains("-append mode=run"));
    let failed = qemu_run("run", &["--mode", "run"], &[("FAKE_STATUS", "35")]);
    assert_eq!(failed.code, 1);
    let triple = qemu_run("run", &["--mode", "run"], &[("FAKE_STATUS", "0")]);
    assert_eq!(triple.code, 1);
    assert!(triple.stderr.contains("triple fault"), "{}", triple.stderr);
}

#[test]
fn missing_kernel_and_bad_usage_fail() {
    let out = Command::new(env!("CARGO_BIN_EXE_qemu-run"))
        .args(["--mode", "test", "/nonexistent/kernel"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("no kernel at /nonexistent/kernel"),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
    let out = Command::new(env!("CARGO_BIN_EXE_qemu-run"))
        .args(["--smp", "zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
