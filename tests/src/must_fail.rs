//! The must-fail list of `make test`: known bugs put back behind a feature,
//! each with the test that must then fail. An entry passes only when its
//! test ran and failed; a build error, a hang, another test failing, or the
//! test passing all fail the entry (the check can no longer see the bug).
//! Loom entries are judged by `cargo_tests::expected_failure`, kernel
//! entries by [`judge_kernel`].

use crate::cargo_tests::Tally;
use crate::ktap::Report;

/// Where the test that must fail lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A loom model in `mm/tests/loom.rs`, built with the `mm` feature.
    Loom(&'static str),
    /// A kernel test, in a test kernel built with the kernel feature (which
    /// turns on the `mm` feature of the same name), run alone.
    Kernel(&'static str),
}

/// One known bug and the test that must catch it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Shown in the summary (`must fail: NAME`).
    pub name: &'static str,
    /// The feature that puts the bug back.
    pub feature: &'static str,
    pub check: Check,
    /// Text the failing kernel run must print, so that it fails for the
    /// reason the entry is about ("" for any failure of the test).
    pub because: &'static str,
}

impl Entry {
    pub fn test(&self) -> &'static str {
        match self.check {
            Check::Loom(t) | Check::Kernel(t) => t,
        }
    }
}

/// The file that declares the test, and the manifest that declares the
/// feature (an entry whose files lack them is skipped loudly).
pub fn files(check: Check) -> (&'static str, &'static str) {
    match check {
        Check::Loom(_) => ("mm/tests/loom.rs", "mm/Cargo.toml"),
        Check::Kernel(_) => ("kernel/src/tests/replay.rs", "kernel/Cargo.toml"),
    }
}

/// CPUs for the kernel entries: a replay needs two.
pub const KERNEL_SMP: u32 = 2;

pub const ENTRIES: &[Entry] = &[
    Entry {
        name: "seed v6 put ordering (loom)",
        feature: "seed-v6-ordering",
        check: Check::Loom("loom_seed_detach_race"),
        because: "",
    },
    Entry {
        name: "seed v6 put ordering (kernel, lockdep)",
        feature: "seed-v6-ordering",
        check: Check::Kernel("replay_seed_put_races_detach"),
        // The read annotation left held: lockdep must report it.
        because: "lockdep: ",
    },
    Entry {
        name: "CVE-2025-38554 no mm pin (loom)",
        feature: "no-mm-pin",
        check: Check::Loom("loom_reader_vs_reuse_other_mm"),
        because: "",
    },
    Entry {
        name: "CVE-2025-38554 no mm pin (kernel)",
        feature: "no-mm-pin",
        check: Check::Kernel("replay_cve_2025_38554_reuse_by_exiting_mm"),
        // The put touches freed memory: its own check panics, or the
        // replay's order check fails; either is the bug seen.
        because: "",
    },
];

const PASS: Tally = Tally {
    passed: 1,
    failed: 0,
};
const FAIL: Tally = Tally {
    passed: 0,
    failed: 1,
};

/// A kernel entry: the guest reported `not ok` for this test (a panic in
/// it is reported so too) and its output contains `because`. A run that
/// never got to its result (a hang, a crash before it) does not show the
/// bug being caught.
pub fn judge_kernel(report: &Report, output: &str, test: &str, because: &str) -> Tally {
    let failed = report.results.iter().any(|r| r.name == test && !r.ok);
    if failed && output.contains(because) {
        PASS
    } else {
        FAIL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(text: &str) -> Report {
        let mut r = Report::default();
        text.lines().for_each(|l| r.feed(l));
        r
    }

    #[test]
    fn a_kernel_entry_needs_its_test_to_fail() {
        let judge = |text: &str| judge_kernel(&report(text), text, "t", "");
        assert_eq!(
            judge("KTAP version 1\n1..1\n# start: t\nnot ok 1 t\n"),
            PASS
        );
        assert_eq!(judge("KTAP version 1\n1..1\n# start: t\nok 1 t\n"), FAIL);
        // Hung: no result at all.
        assert_eq!(judge("KTAP version 1\n1..1\n# start: t\n"), FAIL);
        assert_eq!(judge("KTAP version 1\n1..2\nnot ok 1 u\nok 2 t\n"), FAIL);
        assert_eq!(
            judge("KTAP version 1\n1..1\nok 1 t # SKIP needs 2 CPUs\n"),
            FAIL
        );
    }

    #[test]
    fn a_kernel_entry_must_fail_for_its_reason() {
        let by_lockdep = "KTAP version 1\n1..1\n# start: t\n\
            [    0.1] cpu1 ERROR lockdep: task exits holding locks\nnot ok 1 t\n";
        assert_eq!(
            judge_kernel(&report(by_lockdep), by_lockdep, "t", "lockdep: "),
            PASS
        );
        let otherwise = "KTAP version 1\n1..1\n# start: t\nnot ok 1 t\n";
        assert_eq!(
            judge_kernel(&report(otherwise), otherwise, "t", "lockdep: "),
            FAIL
        );
    }

    #[test]
    fn every_bug_is_checked_in_loom_and_in_the_kernel() {
        for feature in ["seed-v6-ordering", "no-mm-pin"] {
            let checks: Vec<Check> = ENTRIES
                .iter()
                .filter(|e| e.feature == feature)
                .map(|e| e.check)
                .collect();
            assert!(checks.iter().any(|c| matches!(c, Check::Loom(_))));
            assert!(checks.iter().any(|c| matches!(c, Check::Kernel(_))));
        }
    }
}
