//! `test-suites` end to end with a fake cargo and a fake QEMU, run in a
//! scratch directory that plays the repository root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
}

/// A scratch "repository" with or without the loom files.
fn scratch(name: &str, with_loom: bool) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("mm/tests")).unwrap();
    let features = if with_loom {
        "seed-v6-ordering = []\n"
    } else {
        ""
    };
    fs::write(
        dir.join("mm/Cargo.toml"),
        format!("[features]\ndefault = []\n{features}"),
    )
    .unwrap();
    if with_loom {
        fs::write(
            dir.join("mm/tests/loom.rs"),
            "#[test] fn loom_seed_detach_race() {}\n",
        )
        .unwrap();
        // The benchmark scripts' suite runs the real `python3 -m unittest`.
        fs::create_dir_all(dir.join("bench")).unwrap();
        fs::write(
            dir.join("bench/test_bench.py"),
            "import unittest\nclass T(unittest.TestCase):\n    def test_one(self):\n        self.assertEqual(1, 1)\n",
        )
        .unwrap();
    }
    dir
}

fn suites(dir: &Path, env: &[(&str, &str)]) -> Run {
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("fake");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_test-suites"));
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
        "RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(dir)
        .env("CARGO", fake.join("cargo.sh"))
        .env("QEMU", fake.join("qemu.sh"))
        .env("KERNEL", fake.join("qemu.sh"))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .envs(env.iter().copied());
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn last_line(r: &Run) -> &str {
    r.stdout.lines().last().unwrap_or("")
}

#[test]
fn all_green_sums_every_suite_and_skips_absent_loom_loudly() {
    let dir = scratch("green", false);
    let r = suites(&dir, &[("FAKE_QEMU", "pass")]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    // 7 host tests + 7 user-runtime tests + 2 kernel tests at each of SMP=1, 4, 8.
    assert_eq!(last_line(&r), "20 passed, 0 failed");
    assert!(r.stdout.contains("SKIPPED suite `loom`"), "{}", r.stdout);
    assert!(
        r.stdout.contains("SKIPPED suite `bench scripts`"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("SKIPPED suite `seed`"), "{}", r.stdout);
    assert!(r.stdout.contains("ktest SMP=1: 2 passed, 0 failed"));
    assert!(r.stdout.contains("ktest SMP=4: 2 passed, 0 failed"));
    assert!(r.stdout.contains("ktest SMP=8: 2 passed, 0 failed"));
    let log = fs::read_to_string(dir.join("target/test-logs/ktest-smp4.log")).unwrap();
    assert!(log.contains("ok 2 smp_all_cpus_online"), "{log}");
    assert!(dir.join("target/test-logs/host.log").is_file());
}

#[test]
fn seed_check_counts_a_caught_bug_as_a_pass() {
    let dir = scratch("seed-caught", true);
    let r = suites(
        &dir,
        &[("FAKE_QEMU", "pass"), ("FAKE_CARGO", "seed-caught")],
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    // 7 host + 7 user runtime + 1 bench script + 3 loom + 1 seed + 6 kernel.
    assert_eq!(last_line(&r), "25 passed, 0 failed");
    assert!(!r.stdout.contains("SKIPPED"), "{}", r.stdout);
}

#[test]
fn seed_check_fails_when_the_bug_goes_unseen() {
    let dir = scratch("seed-missed", true);
    let r = suites(
        &dir,
        &[("FAKE_QEMU", "pass"), ("FAKE_CARGO", "seed-missed")],
    );
    assert_eq!(r.code, 1);
    assert_eq!(last_line(&r), "24 passed, 1 failed");
}

#[test]
fn a_failing_kernel_test_fails_make_test() {
    let dir = scratch("kernel-fail", false);
    let r = suites(&dir, &[("FAKE_QEMU", "fail")]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("ktest FAIL: not ok 2 selftest_fail"),
        "{}",
        r.stdout
    );
    // 7 host + 7 user runtime + 1 passed per kernel run; 1 failed per kernel run.
    assert_eq!(last_line(&r), "17 passed, 3 failed");
}
