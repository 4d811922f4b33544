//! `test-suites` end to end with a fake cargo and a fake QEMU, run in a
//! scratch directory that plays the repository root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
}

/// A scratch "repository" with or without the loom files (and with them,
/// the features and tests of the must-fail list).
fn scratch(name: &str, with_loom: bool) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("mm/tests")).unwrap();
    fs::create_dir_all(dir.join("kernel/src/tests")).unwrap();
    let features = if with_loom {
        "seed-v6-ordering = []\nno-mm-pin = []\n"
    } else {
        ""
    };
    for manifest in ["mm/Cargo.toml", "kernel/Cargo.toml"] {
        fs::write(
            dir.join(manifest),
            format!("[features]\ndefault = []\n{features}"),
        )
        .unwrap();
    }
    if with_loom {
        fs::write(
            dir.join("mm/tests/loom.rs"),
            "#[test] fn loom_seed_detach_race() {}\n#[test] fn loom_reader_vs_reuse_other_mm() {}\n",
        )
        .unwrap();
        fs::write(
            dir.join("kernel/src/tests/replay.rs"),
            "replay_seed_put_races_detach replay_cve_2025_38554_reuse_by_exiting_mm\n",
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
    // 7 host tests + 7 user-runtime tests + 2 kernel tests at each of SMP=1, 2, 4, 8.
    assert_eq!(last_line(&r), "22 passed, 0 failed");
    assert!(r.stdout.contains("SKIPPED suite `loom`"), "{}", r.stdout);
    assert!(
        r.stdout.contains("SKIPPED suite `bench scripts`"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("SKIPPED suite `must fail: seed v6 put ordering (loom)`"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("SKIPPED suite `must fail: CVE-2025-38554 no mm pin (kernel)`"),
        "{}",
        r.stdout
    );
    for smp in [1, 2, 4, 8] {
        assert!(
            r.stdout
                .contains(&format!("ktest SMP={smp}: 2 passed, 0 failed"))
        );
    }
    let log = fs::read_to_string(dir.join("target/test-logs/ktest-smp4.log")).unwrap();
    assert!(log.contains("ok 2 smp_all_cpus_online"), "{log}");
    assert!(dir.join("target/test-logs/host.log").is_file());
}

#[test]
fn must_fail_counts_caught_bugs_as_passes() {
    let dir = scratch("bugs-caught", true);
    let r = suites(
        &dir,
        &[
            ("FAKE_QEMU", "pass"),
            ("FAKE_CARGO", "caught"),
            ("FAKE_MUST_FAIL", "caught"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    // 7 host + 7 user runtime + 1 bench script + 3 loom + 4 must-fail + 8 kernel.
    assert_eq!(last_line(&r), "30 passed, 0 failed");
    assert!(!r.stdout.contains("SKIPPED"), "{}", r.stdout);
    for entry in [
        "must fail: seed v6 put ordering (loom)",
        "must fail: seed v6 put ordering (kernel, lockdep)",
        "must fail: CVE-2025-38554 no mm pin (loom)",
        "must fail: CVE-2025-38554 no mm pin (kernel)",
    ] {
        assert!(
            r.stdout.contains(&format!("ok   {entry}")),
            "summary lacks `{entry}`: {}",
            r.stdout
        );
    }
    // Each kernel entry booted its own kernel, with only its replay.
    let log =
        fs::read_to_string(dir.join("target/test-logs/must-fail-no-mm-pin-kernel.log")).unwrap();
    assert!(
        log.contains("ktest=replay_cve_2025_38554_reuse_by_exiting_mm"),
        "{log}"
    );
}

#[test]
fn must_fail_fails_when_a_bug_goes_unseen() {
    let dir = scratch("loom-missed", true);
    let r = suites(
        &dir,
        &[
            ("FAKE_QEMU", "pass"),
            ("FAKE_CARGO", "missed"),
            ("FAKE_MUST_FAIL", "caught"),
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(last_line(&r), "28 passed, 2 failed");
    let dir = scratch("kernel-missed", true);
    let r = suites(
        &dir,
        &[
            ("FAKE_QEMU", "pass"),
            ("FAKE_CARGO", "caught"),
            ("FAKE_MUST_FAIL", "missed"),
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(last_line(&r), "28 passed, 2 failed");
    assert!(
        r.stdout
            .contains("FAIL must fail: seed v6 put ordering (kernel, lockdep)"),
        "{}",
        r.stdout
    );
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
    assert_eq!(last_line(&r), "18 passed, 4 failed");
}
