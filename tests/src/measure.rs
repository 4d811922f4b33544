//! The checker of the `measure` lab's results file: the four `faultbench`
//! runs (per-VMA on and off, without and with a writer) pasted as the
//! program printed them, and an explanation of every counter.
//!
//! Nothing here compares a figure with an expected value: the checks are the
//! fields being there, the runs being comparable (same threads, pages and
//! length) and the counters obeying the rules they are defined by
//! (`mm/src/counters.rs`): every fault ends in exactly one of `success`,
//! `fallback`, `segv`, so `minflt = success + fallback` when nothing failed;
//! with the per-VMA path off nothing counts `success`, `abort`, `retry` or
//! `miss`; a `retry` always ends in a `fallback`.

use std::collections::BTreeMap;
use std::path::Path;

/// The counters a results file explains, each under a heading `### NAME`.
pub const COUNTERS: [&str; 7] = [
    "success", "abort", "retry", "miss", "fallback", "segv", "minflt",
];
/// Fewest words of explanation under each counter's heading.
const MIN_WORDS: usize = 12;
/// Fewest words of the comparison section.
const MIN_COMPARISON_WORDS: usize = 40;
/// `faults_per_sec` may differ from `faults / seconds` by this fraction
/// (the program rounds `seconds` to milliseconds).
const RATE_SLACK: f64 = 0.02;

/// Runs the checker called `name` on `file`.
pub fn check_named(name: &str, file: &Path) -> Result<(), String> {
    match name {
        "measure" => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            check(&text)
        }
        _ => Err(format!("no results checker `{name}`")),
    }
}

/// One run: the fields of its `faultbench` and `faultbench_kernel` lines.
#[derive(Debug)]
struct Run {
    mode: String,
    per_vma: String,
    fields: BTreeMap<String, String>,
}

impl Run {
    fn num(&self, key: &str) -> Result<f64, String> {
        let v = self
            .fields
            .get(key)
            .ok_or_else(|| format!("run {}: no field `{key}`", self.id()))?;
        v.parse()
            .map_err(|_| format!("run {}: `{key}={v}` is not a number", self.id()))
    }

    fn id(&self) -> String {
        format!("mode={} per_vma={}", self.mode, self.per_vma)
    }
}

fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The runs in `text`: each `faultbench ` line with the
/// `faultbench_kernel ` line that follows it.
fn runs(text: &str) -> Result<Vec<Run>, String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with("faultbench mode=") {
            continue;
        }
        let kernel = lines
            .get(i + 1)
            .filter(|l| l.starts_with("faultbench_kernel "))
            .ok_or_else(|| format!("`{line}` is not followed by its faultbench_kernel line"))?;
        let mut f = fields(line);
        f.extend(fields(kernel));
        out.push(Run {
            mode: f.get("mode").cloned().unwrap_or_default(),
            per_vma: f.get("per_vma").cloned().unwrap_or_default(),
            fields: f,
        });
    }
    Ok(out)
}

/// Checks a whole results file.
pub fn check(text: &str) -> Result<(), String> {
    let runs = runs(text)?;
    let mut wanted = Vec::new();
    for per_vma in ["on", "off"] {
        for mode in ["quiet", "writer"] {
            let found: Vec<&Run> = runs
                .iter()
                .filter(|r| r.mode == mode && r.per_vma == per_vma)
                .collect();
            match found.as_slice() {
                [run] => wanted.push(*run),
                [] => {
                    return Err(format!(
                        "no run with mode={mode} per_vma={per_vma} (run faultbench with -m {mode} -v {per_vma})"
                    ));
                }
                _ => {
                    return Err(format!(
                        "more than one run with mode={mode} per_vma={per_vma}"
                    ));
                }
            }
        }
    }
    for run in &wanted {
        check_run(run)?;
    }
    comparable(&wanted)?;
    explanations(text)
}

fn check_run(r: &Run) -> Result<(), String> {
    let id = r.id();
    if let Some(e) = r.fields.get("error") {
        return Err(format!("run {id} ended with error={e}"));
    }
    let threads = r.num("threads")?;
    let (faults, seconds, rate) = (
        r.num("faults")?,
        r.num("seconds")?,
        r.num("faults_per_sec")?,
    );
    let minflt = r.num("minflt")?;
    let [success, abort, retry, miss, fallback, segv] =
        ["success", "abort", "retry", "miss", "fallback", "segv"].map(|k| r.num(k));
    let (success, abort, retry, miss, fallback, segv) =
        (success?, abort?, retry?, miss?, fallback?, segv?);
    r.num("pages")?;
    if threads < 2.0 {
        return Err(format!(
            "run {id}: use at least 2 worker threads (-t), so faults contend"
        ));
    }
    if faults <= 0.0 || seconds <= 0.0 {
        return Err(format!("run {id}: no faults measured"));
    }
    if ((faults / seconds) - rate).abs() > RATE_SLACK * rate.max(1.0) {
        return Err(format!(
            "run {id}: faults_per_sec={rate} but faults/seconds is {:.0}: lines from different runs?",
            faults / seconds
        ));
    }
    if segv != 0.0 {
        return Err(format!(
            "run {id}: segv={segv}: faultbench's own faults never fail"
        ));
    }
    if minflt != success + fallback {
        return Err(format!(
            "run {id}: minflt={minflt} is not success+fallback={}: lines from different runs?",
            success + fallback
        ));
    }
    if faults > minflt {
        return Err(format!(
            "run {id}: the workers counted more faults ({faults}) than the kernel handled ({minflt})"
        ));
    }
    if retry > fallback {
        return Err(format!(
            "run {id}: retry={retry} > fallback={fallback}: every retry ends in a fallback"
        ));
    }
    match r.per_vma.as_str() {
        "off" if success + abort + retry + miss != 0.0 => Err(format!(
            "run {id}: with the per-VMA path off only fallback counts, but success/abort/retry/miss are not 0"
        )),
        "on" if success == 0.0 => Err(format!("run {id}: no per-VMA successes with the path on")),
        _ => Ok(()),
    }
}

/// The four runs differ only in the switch and the writer.
fn comparable(runs: &[&Run]) -> Result<(), String> {
    for key in ["threads", "pages"] {
        let values: Vec<&str> = runs
            .iter()
            .map(|r| r.fields.get(key).map_or("", String::as_str))
            .collect();
        if values.iter().any(|v| *v != values[0]) {
            return Err(format!(
                "the four runs must use the same {key} (found {values:?}), or they do not compare"
            ));
        }
    }
    Ok(())
}

/// Words under the heading `### NAME` (to the next heading of any level).
fn section<'a>(text: &'a str, heading: &str) -> Option<Vec<&'a str>> {
    let mut lines = text.lines();
    lines.find(|l| {
        l.trim()
            .strip_prefix("### ")
            .is_some_and(|h| h.trim().eq_ignore_ascii_case(heading))
    })?;
    Some(
        lines
            .take_while(|l| !l.trim_start().starts_with('#'))
            .flat_map(str::split_whitespace)
            .collect(),
    )
}

fn explanations(text: &str) -> Result<(), String> {
    let mut wanted: Vec<(&str, usize)> = COUNTERS.iter().map(|c| (*c, MIN_WORDS)).collect();
    wanted.push(("comparison", MIN_COMPARISON_WORDS));
    for (heading, min) in wanted {
        let words = section(text, heading).ok_or_else(|| format!("no section `### {heading}`"))?;
        if words.iter().any(|w| w.contains("TODO")) {
            return Err(format!("section `{heading}` still says TODO"));
        }
        if words.len() < min {
            return Err(format!(
                "section `{heading}` has {} words; explain it in at least {min}",
                words.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: &str, v: &str, success: u64, retry: u64, fallback: u64) -> String {
        let minflt = success + fallback;
        format!(
            "faultbench mode={mode} threads=2 pages=64 faults={minflt} seconds=2.000 \
             faults_per_sec={} writer_ops=0 writer_ops_per_sec=0 minflt={minflt}\n\
             faultbench_kernel success={success} abort=0 retry={retry} miss=0 \
             fallback={fallback} segv=0 per_vma={v}\n",
            minflt / 2
        )
    }

    fn words(n: usize) -> String {
        vec!["word"; n].join(" ")
    }

    fn good() -> String {
        let mut t = String::from("# results\n```\n");
        t += &run("quiet", "on", 1000, 10, 10);
        t += &run("writer", "on", 800, 8, 20);
        t += &run("quiet", "off", 0, 0, 900);
        t += &run("writer", "off", 0, 0, 700);
        t += "```\n";
        for c in COUNTERS {
            t += &format!("### {c}\n{}\n", words(MIN_WORDS));
        }
        t += &format!("### Comparison\n{}\n", words(MIN_COMPARISON_WORDS));
        t
    }

    #[test]
    fn complete_results_pass() {
        assert_eq!(check(&good()), Ok(()));
    }

    #[test]
    fn the_template_fails() {
        let t = good().replace("### miss\nword", "### miss\nTODO");
        assert!(check(&t).unwrap_err().contains("TODO"));
    }

    #[test]
    fn inconsistent_counters_fail() {
        let t = good().replace("per_vma=off", "per_vma=on");
        assert!(check(&t).is_err(), "runs missing");
        let t = good().replacen("minflt=1010", "minflt=1011", 1);
        assert!(check(&t).unwrap_err().contains("success+fallback"));
        let t = good().replacen("success=0 abort=0", "success=5 abort=0", 1);
        assert!(check(&t).is_err(), "success with the path off");
        let t = good().replacen("pages=64", "pages=65", 1);
        assert!(check(&t).unwrap_err().contains("same pages"));
    }

    #[test]
    fn short_explanations_fail() {
        let t = good().replace(
            &format!("### segv\n{}", words(MIN_WORDS)),
            "### segv\nfaults that failed",
        );
        assert!(check(&t).unwrap_err().contains("segv"));
    }
}
