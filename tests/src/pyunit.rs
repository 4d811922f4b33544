//! Counting the results of Python's `unittest` (the benchmark scripts'
//! tests) for the total of `make test`.
//!
//! `python3 -m unittest` ends with `Ran N tests in Xs`, then `OK` (perhaps
//! `OK (skipped=k)`) or `FAILED (failures=a, errors=b, skipped=k)`.

use crate::cargo_tests::Tally;

/// The tally of a whole `unittest` output. As with `cargo test`, a run that
/// failed without saying how many tests failed counts one failure, and a run
/// with no `Ran` line counts nothing as passed.
pub fn tally(output: &[String], succeeded: bool) -> Tally {
    let ran = output.iter().find_map(|l| {
        let rest = l.trim().strip_prefix("Ran ")?;
        rest.split_whitespace().next()?.parse::<usize>().ok()
    });
    let field = |line: &str, name: &str| -> usize {
        line.split(['(', ')', ','])
            .filter_map(|part| part.trim().strip_prefix(name)?.strip_prefix('='))
            .filter_map(|n| n.parse::<usize>().ok())
            .sum()
    };
    let verdict = output
        .iter()
        .rev()
        .find(|l| l.starts_with("OK") || l.starts_with("FAILED"));
    let (failed, skipped) = verdict.map_or((0, 0), |l| {
        (
            field(l, "failures") + field(l, "errors"),
            field(l, "skipped"),
        )
    });
    let mut t = Tally {
        passed: ran.unwrap_or(0).saturating_sub(failed + skipped),
        failed,
    };
    if (!succeeded || ran.is_none() || verdict.is_none()) && t.failed == 0 {
        t.failed = 1;
        t.passed = if succeeded { t.passed } else { 0 };
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn counts_a_clean_run() {
        let out = lines("...\n------\nRan 15 tests in 0.007s\n\nOK");
        assert_eq!(
            tally(&out, true),
            Tally {
                passed: 15,
                failed: 0
            }
        );
        let skipped = lines("Ran 4 tests in 0.1s\n\nOK (skipped=1)");
        assert_eq!(
            tally(&skipped, true),
            Tally {
                passed: 3,
                failed: 0
            }
        );
    }

    #[test]
    fn counts_failures_and_errors() {
        let out = lines("Ran 15 tests in 0.01s\n\nFAILED (failures=2, errors=1)");
        assert_eq!(
            tally(&out, false),
            Tally {
                passed: 12,
                failed: 3
            }
        );
    }

    #[test]
    fn a_run_that_never_got_going_is_one_failure() {
        let out = lines("/usr/bin/python3: No module named unittest");
        assert_eq!(
            tally(&out, false),
            Tally {
                passed: 0,
                failed: 1
            }
        );
        // Exit 0 but no summary: not a pass either.
        assert_eq!(
            tally(&[], true),
            Tally {
                passed: 0,
                failed: 1
            }
        );
    }
}
