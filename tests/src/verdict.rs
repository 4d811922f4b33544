//! How a guest's exit and its KTAP report become pass or fail.
//!
//! The kernel ends a run by writing to the `isa-debug-exit` port 0xf4; QEMU
//! then exits with status `(value << 1) | 1`. The kernel writes 0x10 for
//! success and 0x11 for failure, so only status 33 is a success. Every other
//! ending is a failure: status 0 is what a triple fault gives under
//! `-no-reboot`, a signal means QEMU crashed or was killed.

use crate::ktap::Report;
use std::time::Duration;

pub const SUCCESS_STATUS: i32 = (0x10 << 1) | 1;
pub const FAILURE_STATUS: i32 = (0x11 << 1) | 1;

/// How the QEMU process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestExit {
    Status(i32),
    Signal(i32),
    /// The runner killed it after this long.
    TimedOut(Duration),
}

impl GuestExit {
    /// Why this ending is not a success, or `None` for status 33.
    pub fn problem(&self) -> Option<String> {
        match *self {
            GuestExit::Status(SUCCESS_STATUS) => None,
            GuestExit::Status(FAILURE_STATUS) => {
                Some("the kernel reported failure (exit status 35)".into())
            }
            GuestExit::Status(0) => Some(
                "QEMU exited with status 0 without the exit port: a triple fault or a reset".into(),
            ),
            GuestExit::Status(s) => Some(format!(
                "QEMU exited with status {s} (success is only {SUCCESS_STATUS})"
            )),
            GuestExit::Signal(sig) => Some(format!("QEMU was killed by signal {sig}")),
            GuestExit::TimedOut(t) => Some(format!("timed out after {} s", t.as_secs())),
        }
    }
}

/// The outcome of one kernel test run.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Empty exactly when the run passed.
    pub reasons: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Judges a test-mode run (`mode=test`).
///
/// `failed` counts every `not ok`, every planned test that never reported,
/// and, when the run failed for a reason no test carries (a bad exit status
/// after all tests passed, a missing plan), one more for the run itself: a
/// failed run never shows `0 failed`.
pub fn judge(report: &Report, exit: &GuestExit) -> Verdict {
    let mut reasons = Vec::new();
    if let GuestExit::TimedOut(after) = exit {
        reasons.push(match &report.running {
            Some(name) => format!(
                "timed out after {} s while running test `{name}`",
                after.as_secs()
            ),
            None => format!("timed out after {} s with no test running", after.as_secs()),
        });
    } else if let Some(problem) = exit.problem() {
        reasons.push(problem);
    }
    for (line, test) in &report.panics {
        match test {
            Some(name) => reasons.push(format!("kernel panic in test `{name}`: {line}")),
            None => reasons.push(format!("kernel panic: {line}")),
        }
    }
    for test in report.failed_tests() {
        reasons.push(format!("not ok {} {}", test.number, test.name));
    }
    reasons.extend(report.errors.iter().cloned());
    if !report.version_seen {
        reasons.push("no `KTAP version 1` header".into());
    }
    let mut missing = 0;
    match report.plan {
        None => reasons.push("no KTAP plan line `1..N`".into()),
        Some(planned) if report.results.len() < planned => {
            missing = planned - report.results.len();
            reasons.push(format!(
                "only {} of {planned} planned results",
                report.results.len()
            ));
        }
        Some(planned) if report.results.len() > planned => {
            reasons.push(format!(
                "{} results for a plan of {planned}",
                report.results.len()
            ));
        }
        Some(_) => {}
    }
    let mut failed = report.failed_tests().count() + missing;
    if failed == 0 && !reasons.is_empty() {
        failed = 1;
    }
    Verdict {
        passed: report.passed(),
        failed,
        skipped: report.skipped(),
        reasons,
    }
}

/// The process exit code of `qemu-run` in run mode (`make run`).
pub fn run_mode_code(exit: &GuestExit) -> i32 {
    if exit.problem().is_none() { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "KTAP version 1\n1..2\n# start: a\nok 1 a\n# start: b\nok 2 b\n";

    fn judge_text(text: &str, exit: GuestExit) -> Verdict {
        let mut report = Report::default();
        text.lines().for_each(|l| report.feed(l));
        judge(&report, &exit)
    }

    #[test]
    fn all_ok_with_status_33_passes() {
        let v = judge_text(GOOD, GuestExit::Status(33));
        assert_eq!(
            v,
            Verdict {
                passed: 2,
                failed: 0,
                skipped: 0,
                reasons: vec![]
            }
        );
        assert!(v.ok());
    }

    #[test]
    fn every_other_status_fails_even_when_all_tests_passed() {
        for exit in [
            GuestExit::Status(0),
            GuestExit::Status(35),
            GuestExit::Status(1),
            GuestExit::Signal(9),
        ] {
            let v = judge_text(GOOD, exit.clone());
            assert!(!v.ok(), "{exit:?} passed");
            assert_eq!((v.passed, v.failed), (2, 1), "{exit:?}");
        }
        assert!(judge_text(GOOD, GuestExit::Status(0)).reasons[0].contains("triple fault"));
    }

    #[test]
    fn not_ok_fails_and_is_named() {
        let v = judge_text(
            "KTAP version 1\n1..2\nok 1 a\nnot ok 2 b\n",
            GuestExit::Status(35),
        );
        assert_eq!((v.passed, v.failed), (1, 1));
        assert!(v.reasons.iter().any(|r| r == "not ok 2 b"));
    }

    #[test]
    fn not_ok_fails_even_with_status_33() {
        let v = judge_text("KTAP version 1\n1..1\nnot ok 1 a\n", GuestExit::Status(33));
        assert!(!v.ok());
        assert_eq!(v.failed, 1);
    }

    #[test]
    fn missing_plan_fails() {
        let v = judge_text("KTAP version 1\nok 1 a\n", GuestExit::Status(33));
        assert!(v.reasons.iter().any(|r| r.contains("plan")));
        assert_eq!(v.failed, 1);
    }

    #[test]
    fn missing_header_fails() {
        let v = judge_text("1..1\nok 1 a\n", GuestExit::Status(33));
        assert!(!v.ok());
    }

    #[test]
    fn fewer_results_than_planned_fails_and_counts_the_missing() {
        let v = judge_text(
            "KTAP version 1\n1..5\nok 1 a\nok 2 b\n",
            GuestExit::Status(33),
        );
        assert_eq!((v.passed, v.failed), (2, 3));
        assert!(v.reasons.iter().any(|r| r.contains("only 2 of 5")));
    }

    #[test]
    fn more_results_than_planned_fails() {
        let v = judge_text(
            "KTAP version 1\n1..1\nok 1 a\nok 2 b\n",
            GuestExit::Status(33),
        );
        assert!(!v.ok());
    }

    #[test]
    fn timeout_names_the_running_test() {
        let text = "KTAP version 1\n1..3\n# start: a\nok 1 a\n# start: spin_forever\n";
        let v = judge_text(text, GuestExit::TimedOut(Duration::from_secs(7)));
        assert_eq!(
            v.reasons[0],
            "timed out after 7 s while running test `spin_forever`"
        );
        assert_eq!((v.passed, v.failed), (1, 2));
    }

    #[test]
    fn panic_fails_and_names_the_test() {
        let text = "KTAP version 1\n1..1\n# start: a\n[ 1.0] cpu0 ERROR KERNEL PANIC: boom\n";
        let v = judge_text(text, GuestExit::Status(35));
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("kernel panic in test `a`"))
        );
    }

    #[test]
    fn skipped_tests_are_neither_passed_nor_failed() {
        let v = judge_text(
            "KTAP version 1\n1..2\nok 1 a # SKIP\nok 2 b\n",
            GuestExit::Status(33),
        );
        assert_eq!((v.passed, v.failed, v.skipped), (1, 0, 1));
        assert!(v.ok());
    }

    #[test]
    fn run_mode_maps_only_33_to_success() {
        assert_eq!(run_mode_code(&GuestExit::Status(33)), 0);
        assert_eq!(run_mode_code(&GuestExit::Status(35)), 1);
        assert_eq!(run_mode_code(&GuestExit::Status(0)), 1);
        assert_eq!(run_mode_code(&GuestExit::Signal(6)), 1);
        assert_eq!(
            run_mode_code(&GuestExit::TimedOut(Duration::from_secs(1))),
            1
        );
    }
}
