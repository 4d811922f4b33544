//! Counting the results of `cargo test` for the total of `make test`.
//!
//! libtest ends each test binary with
//! `test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out`;
//! a `cargo test` run prints one such line per binary (unit tests, each
//! integration test, doc tests). The suite's count is their sum.

/// Passed and failed counts of one suite.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
    }
}

/// The counts of one `test result:` line.
pub fn parse_result_line(line: &str) -> Option<Tally> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let count = |what: &str| -> Option<usize> {
        rest.split(';')
            .find_map(|part| {
                part.trim()
                    .trim_start_matches(|c: char| !c.is_ascii_digit())
                    .strip_suffix(what)
            })
            .and_then(|n| n.trim().parse().ok())
    };
    Some(Tally {
        passed: count("passed")?,
        failed: count("failed")?,
    })
}

/// The tally of a whole `cargo test` output. A command that failed without a
/// failing test (a compile error, a crashed test binary) counts one failure:
/// a broken suite must never add `0 failed`.
pub fn tally(output: &[String], succeeded: bool) -> Tally {
    let mut total = Tally::default();
    output
        .iter()
        .filter_map(|l| parse_result_line(l))
        .for_each(|t| total.add(t));
    if !succeeded && total.failed == 0 {
        total.failed = 1;
    }
    total
}

/// Whether libtest reported `test NAME ... FAILED` for this test.
pub fn test_failed(output: &[String], name: &str) -> bool {
    output.iter().any(|l| {
        l.trim()
            .strip_prefix("test ")
            .and_then(|r| r.strip_suffix(" ... FAILED"))
            .is_some_and(|t| t == name)
    })
}

/// Every test libtest reported as `test NAME ... FAILED`, as `not ok NAME`.
pub fn failed_tests(output: &[String]) -> Vec<String> {
    output
        .iter()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("test ")?
                .strip_suffix(" ... FAILED")
                .map(|name| format!("not ok {name}"))
        })
        .collect()
}

/// The tally of a check that must fail, such as the seed bug put back under a
/// feature: it passes (1 passed) only if the named test itself ran and failed.
/// A build error is not the expected failure, and a pass means the check can
/// no longer see the bug.
pub fn expected_failure(output: &[String], succeeded: bool, name: &str) -> Tally {
    if !succeeded && test_failed(output, name) {
        Tally {
            passed: 1,
            failed: 0,
        }
    } else {
        Tally {
            passed: 0,
            failed: 1,
        }
    }
}

/// What a `cargo test` run that was killed for overrunning its time was
/// doing: the tests libtest reported as `running for over 60 seconds`, and
/// the test binary cargo started last (`Running tests/loom.rs (...)`).
pub fn hung_tests(output: &[String]) -> String {
    let slow: Vec<&str> = output
        .iter()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("test ")?
                .strip_suffix(" has been running for over 60 seconds")
        })
        .collect();
    let binary = output
        .iter()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Running "))
        .map(|b| b.split(" (").next().unwrap_or(b));
    match (slow.is_empty(), binary) {
        (false, Some(b)) => format!("{} (in {b})", slow.join(", ")),
        (false, None) => slow.join(", "),
        (true, Some(b)) => format!("a test in {b}"),
        (true, None) => "the build (no test binary had started)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_tests_names_only_failures() {
        let out: Vec<String> = [
            "test a::ok_one ... ok",
            "test a::bad_one ... FAILED",
            "test result: FAILED. 1 passed; 1 failed; 0 ignored",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(failed_tests(&out), vec!["not ok a::bad_one".to_string()]);
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn parses_ok_and_failed_lines() {
        let ok = "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(
            parse_result_line(ok),
            Some(Tally {
                passed: 12,
                failed: 0
            })
        );
        let bad = "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(
            parse_result_line(bad),
            Some(Tally {
                passed: 1,
                failed: 2
            })
        );
        assert_eq!(parse_result_line("running 3 tests"), None);
        assert_eq!(parse_result_line("test result: garbage"), None);
    }

    #[test]
    fn sums_all_binaries() {
        let out = lines(
            "running 2 tests\ntest result: ok. 2 passed; 0 failed; 0 ignored\n\
             test result: FAILED. 5 passed; 1 failed; 0 ignored\n   Doc-tests mm\n\
             test result: ok. 0 passed; 0 failed; 0 ignored\n",
        );
        assert_eq!(
            tally(&out, false),
            Tally {
                passed: 7,
                failed: 1
            }
        );
    }

    #[test]
    fn a_failed_build_counts_as_one_failure() {
        let out = lines("error[E0425]: cannot find value `x`\nerror: could not compile `mm`");
        assert_eq!(
            tally(&out, false),
            Tally {
                passed: 0,
                failed: 1
            }
        );
        assert_eq!(
            tally(&[], true),
            Tally {
                passed: 0,
                failed: 0
            }
        );
    }

    #[test]
    fn a_hung_suite_names_what_was_running() {
        let out = lines(
            "     Running unittests src/lib.rs (target/debug/deps/mm-1)\n\
             test result: ok. 3 passed; 0 failed; 0 ignored\n\
             \u{20}    Running tests/mm_stress.rs (target/debug/deps/mm_stress-2)\n\
             test stress_faults_vs_writers has been running for over 60 seconds\n",
        );
        assert_eq!(
            hung_tests(&out),
            "stress_faults_vs_writers (in tests/mm_stress.rs)"
        );
        let silent = lines("     Running tests/loom.rs (target/release/deps/loom-3)");
        assert_eq!(hung_tests(&silent), "a test in tests/loom.rs");
        assert_eq!(
            hung_tests(&lines("   Compiling mm v0.1.0")),
            "the build (no test binary had started)"
        );
    }

    #[test]
    fn expected_failure_needs_the_named_test_to_fail() {
        let failing = lines(
            "test loom_seed_detach_race ... FAILED\ntest result: FAILED. 0 passed; 1 failed; 0 ignored",
        );
        assert_eq!(
            expected_failure(&failing, false, "loom_seed_detach_race"),
            Tally {
                passed: 1,
                failed: 0
            }
        );
        // The bug went unseen: the check itself is broken.
        let passing =
            lines("test loom_seed_detach_race ... ok\ntest result: ok. 1 passed; 0 failed");
        assert_eq!(
            expected_failure(&passing, true, "loom_seed_detach_race"),
            Tally {
                passed: 0,
                failed: 1
            }
        );
        // It did not even build.
        let broken = lines("error: could not compile `mm`");
        assert_eq!(
            expected_failure(&broken, false, "loom_seed_detach_race"),
            Tally {
                passed: 0,
                failed: 1
            }
        );
        // Another test failed, not the one that shows the bug.
        let other = lines("test loom_other ... FAILED");
        assert_eq!(
            expected_failure(&other, false, "loom_seed_detach_race"),
            Tally {
                passed: 0,
                failed: 1
            }
        );
    }
}
