//! A streaming reader for KTAP version 1, the result format of Linux's KUnit.
//!
//! The kernel prints its test results on the serial port, mixed with ordinary
//! log lines (`[    1.234567] cpu2 INFO  text`). KTAP lines are the ones that
//! start at column 0 with `KTAP version 1`, a plan `1..N`, a result
//! `ok N name` / `not ok N name`, or a diagnostic `# ...`. The kernel announces
//! each test with `# start: NAME` before running it, so when the guest hangs
//! the last start without a result names the culprit.
//!
//! Only top-level lines count: indented lines are nested subtests or
//! backtraces, and a log line never starts with `ok`/`#` because of its
//! timestamp prefix. The reader never fails on a strange line; anything that
//! breaks the protocol is recorded in `Report::errors` and fails the run.

/// What one line of serial output means to the KTAP reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Version(&'a str),
    Plan(usize),
    Result(TestResult),
    Start(&'a str),
    Diagnostic(&'a str),
    BailOut(&'a str),
    Panic(&'a str),
    /// A log line, a nested (indented) line or anything else.
    Other,
}

/// One `ok` / `not ok` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub ok: bool,
    pub number: usize,
    pub name: String,
    /// `ok N name # SKIP reason`: the test did not run. Never counted as a pass.
    pub skipped: bool,
}

/// Marker the kernel prints on a panic, anywhere in a line (it may carry the
/// log prefix).
pub const PANIC_MARKER: &str = "KERNEL PANIC";

pub fn classify(line: &str) -> Line<'_> {
    if line.contains(PANIC_MARKER) {
        return Line::Panic(line);
    }
    if let Some(version) = line.strip_prefix("KTAP version ") {
        return Line::Version(version.trim());
    }
    if let Some(n) = line.strip_prefix("1..") {
        // A plan is only digits; "1..N # comment" is not used by the kernel.
        if let Ok(n) = n.trim().parse() {
            return Line::Plan(n);
        }
        return Line::Other;
    }
    if let Some(reason) = line.strip_prefix("Bail out!") {
        return Line::BailOut(reason.trim());
    }
    if let Some(diag) = line.strip_prefix('#') {
        let diag = diag.trim();
        if let Some(name) = diag.strip_prefix("start:") {
            return Line::Start(name.trim());
        }
        return Line::Diagnostic(diag);
    }
    if let Some(rest) = line.strip_prefix("not ok ") {
        return parse_result(false, rest).map_or(Line::Other, Line::Result);
    }
    if let Some(rest) = line.strip_prefix("ok ") {
        return parse_result(true, rest).map_or(Line::Other, Line::Result);
    }
    Line::Other
}

/// Parses `N name [# directive]`, the part after `ok ` or `not ok `.
fn parse_result(ok: bool, rest: &str) -> Option<TestResult> {
    let (number, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let number = number.parse().ok()?;
    let (name, directive) = match rest.split_once('#') {
        Some((name, directive)) => (name, directive.trim()),
        None => (rest, ""),
    };
    let name = name.trim().trim_start_matches("- ").to_string();
    let skipped = directive.to_ascii_uppercase().starts_with("SKIP");
    Some(TestResult {
        ok,
        number,
        name,
        skipped,
    })
}

/// Everything the reader learned from one boot.
#[derive(Debug, Default)]
pub struct Report {
    pub version_seen: bool,
    pub plan: Option<usize>,
    pub results: Vec<TestResult>,
    /// The last `# start:` not yet followed by its result.
    pub running: Option<String>,
    /// Panic lines, each with the test that was running when it happened.
    pub panics: Vec<(String, Option<String>)>,
    /// Protocol violations: each one fails the run.
    pub errors: Vec<String>,
}

impl Report {
    pub fn feed(&mut self, line: &str) {
        match classify(line) {
            Line::Version(v) => {
                if self.version_seen {
                    self.errors
                        .push("a second `KTAP version` header (did the guest reboot?)".into());
                }
                if v != "1" {
                    self.errors.push(format!("unsupported KTAP version {v}"));
                }
                self.version_seen = true;
            }
            Line::Plan(n) => {
                if let Some(old) = self.plan {
                    self.errors
                        .push(format!("a second plan line 1..{n} after 1..{old}"));
                }
                self.plan = Some(n);
            }
            Line::Result(result) => self.record(result),
            Line::Start(name) => self.running = Some(name.to_string()),
            Line::BailOut(reason) => self.errors.push(format!("Bail out! {reason}")),
            Line::Panic(text) => self
                .panics
                .push((text.trim().to_string(), self.running.clone())),
            Line::Diagnostic(_) | Line::Other => {}
        }
    }

    fn record(&mut self, result: TestResult) {
        let expected = self.results.len() + 1;
        if result.number != expected {
            self.errors.push(format!(
                "result number {} for `{}`, expected {expected}",
                result.number, result.name
            ));
        }
        // A result closes the test that was announced; a result for another
        // name (a test without a start line) leaves the announced one open.
        if self.running.as_deref() == Some(result.name.as_str()) {
            self.running = None;
        }
        self.results.push(result);
    }

    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.ok && !r.skipped).count()
    }

    pub fn skipped(&self) -> usize {
        self.results.iter().filter(|r| r.ok && r.skipped).count()
    }

    pub fn failed_tests(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| !r.ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(text: &str) -> Report {
        let mut report = Report::default();
        text.lines().for_each(|l| report.feed(l));
        report
    }

    #[test]
    fn classifies_each_kind_of_line() {
        assert_eq!(classify("KTAP version 1"), Line::Version("1"));
        assert_eq!(classify("1..9"), Line::Plan(9));
        assert_eq!(
            classify("# start: smp_all_cpus_online"),
            Line::Start("smp_all_cpus_online")
        );
        assert_eq!(
            classify("# cpus online: 4"),
            Line::Diagnostic("cpus online: 4")
        );
        assert_eq!(classify("Bail out! no memory"), Line::BailOut("no memory"));
        let ok = classify("ok 3 percpu_data_distinct");
        assert_eq!(
            ok,
            Line::Result(TestResult {
                ok: true,
                number: 3,
                name: "percpu_data_distinct".into(),
                skipped: false
            })
        );
        let not_ok = classify("not ok 12 page_fault_reports_cr2 # wrong cr2");
        assert_eq!(
            not_ok,
            Line::Result(TestResult {
                ok: false,
                number: 12,
                name: "page_fault_reports_cr2".into(),
                skipped: false
            })
        );
    }

    #[test]
    fn log_lines_and_nested_lines_are_not_ktap() {
        assert_eq!(classify("[    1.234567] cpu2 INFO  ok 1 fake"), Line::Other);
        assert_eq!(classify("    ok 1 subtest"), Line::Other);
        assert_eq!(classify("    # start: nested"), Line::Other);
        assert_eq!(classify("ok"), Line::Other);
        assert_eq!(classify("ok x name"), Line::Other);
        assert_eq!(classify("1..many"), Line::Other);
    }

    #[test]
    fn panic_is_found_inside_a_log_line() {
        let line = "[    2.000000] cpu1 ERROR KERNEL PANIC at kernel/src/x.rs:3";
        assert_eq!(classify(line), Line::Panic(line));
    }

    #[test]
    fn skip_directive_is_not_a_pass() {
        let r = report("KTAP version 1\n1..2\nok 1 a # SKIP no x2apic\nok 2 b\n");
        assert_eq!(
            (r.passed(), r.skipped(), r.failed_tests().count()),
            (1, 1, 0)
        );
    }

    #[test]
    fn tracks_the_running_test() {
        let mut r = report("KTAP version 1\n1..3\n# start: a\nok 1 a\n# start: b\n");
        assert_eq!(r.running.as_deref(), Some("b"));
        r.feed("[ 1.0] cpu0 INFO  log line in the middle");
        r.feed("# some diagnostic");
        assert_eq!(r.running.as_deref(), Some("b"));
        r.feed("not ok 2 b");
        assert_eq!(r.running, None);
        assert_eq!(
            r.failed_tests()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[test]
    fn panic_remembers_the_running_test() {
        let r = report("KTAP version 1\n1..1\n# start: boom\nKERNEL PANIC: oops\n");
        assert_eq!(
            r.panics,
            [("KERNEL PANIC: oops".to_string(), Some("boom".to_string()))]
        );
    }

    #[test]
    fn protocol_violations_are_errors() {
        assert!(report("KTAP version 1\n1..2\nok 2 a\n").errors[0].contains("expected 1"));
        assert!(report("KTAP version 1\n1..1\n1..1\n").errors[0].contains("second plan"));
        assert!(report("KTAP version 1\nKTAP version 1\n").errors[0].contains("second"));
        assert!(report("KTAP version 2\n").errors[0].contains("version 2"));
        assert!(report("Bail out! x\n").errors[0].contains("Bail out"));
        assert!(report("KTAP version 1\n1..1\nok 1 a\n").errors.is_empty());
    }
}
