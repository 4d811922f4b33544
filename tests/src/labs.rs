//! The labs of `docs/labs/`: what each one grades and how its starting point
//! is made.
//!
//! A lab is a directory `docs/labs/NAME/` with a handout (`README.md`) and a
//! file `grader.txt`, one directive a line (`#` starts a comment):
//!
//! ```text
//! title   Write vma_start_read
//! start   mm/src/vma_lock.rs  vma-start-read  stub.rs
//! host    mm  lib         vma_lock::tests::read_lock_and_put_balance  5
//! host    mm  fault_race  host::racing_faults_install_each_page_once 10
//! loom    mm  loom        loom_seed_detach_race                       20
//! kernel  4   fault_demand_zero                                       10
//! kernel? 4   replay_seed_put_races_detach                            10
//! results measure  docs/labs/measure/results.md                       60
//! ```
//!
//! `start FILE REGION STUB` makes the starting point: in FILE, the lines
//! between the marker comments `// LAB: REGION BEGIN` and `// LAB: REGION END`
//! are replaced by the lab's file STUB (the markers stay, so the student sees
//! where to write); REGION `*` replaces the whole file. Markers in the code,
//! not a patch, so the starting point still applies after unrelated edits
//! around the solution. `host`/`loom` name a cargo package, a test target
//! (`lib` or an integration test's name) and a test's full name; `kernel`
//! names an SMP count and an in-kernel test (`kernel?`: graded only once the
//! kernel has a test of that name); `results` a checker and the file it
//! reads. The number is the check's points; `host` and `loom` lines may end
//! in `KEY=VALUE` words, set in the environment of that test's run (such as
//! `LOOM_MAX_PREEMPTIONS=3`).

use std::fs;
use std::path::{Path, PathBuf};

/// Where the labs live, relative to the repository root.
pub const LABS_DIR: &str = "docs/labs";
/// Each lab's grading directives, in its directory.
pub const GRADER_FILE: &str = "grader.txt";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    pub name: String,
    pub title: String,
    pub starts: Vec<Start>,
    pub checks: Vec<Check>,
}

/// One replacement that makes the starting point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Relative to the repository root.
    pub file: PathBuf,
    /// The marker name, or `*` for the whole file.
    pub region: String,
    /// Relative to the lab's directory.
    pub stub: PathBuf,
}

/// Where a check's test runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A results file read by a checker (cheapest: runs first).
    Results { checker: String },
    /// `cargo test -p PACKAGE` (`--lib` or `--test TARGET`) on the host,
    /// with `env` set for the tests.
    Host {
        package: String,
        target: String,
        env: Vec<(String, String)>,
    },
    /// The same under `--cfg loom`, in release mode.
    Loom {
        package: String,
        target: String,
        env: Vec<(String, String)>,
    },
    /// An in-kernel test in QEMU with `smp` CPUs (dearest: runs last).
    Kernel { smp: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub kind: Kind,
    /// The test's name (for `results`, the file it reads).
    pub name: String,
    pub points: u32,
    /// `kernel?`: graded only if the kernel has a test of this name.
    pub if_exists: bool,
}

impl Check {
    /// How the check is named in the grader's KTAP output.
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Results { checker } => format!("results:{checker}:{}", self.name),
            Kind::Host { target, .. } => format!("host:{target}:{}", self.name),
            Kind::Loom { target, .. } => format!("loom:{target}:{}", self.name),
            Kind::Kernel { smp } => format!("kernel:smp{smp}:{}", self.name),
        }
    }
}

/// The names of the labs under `root`, sorted.
pub fn list(root: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root.join(LABS_DIR)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(GRADER_FILE).is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The directory of lab `name` under `root`.
pub fn dir(root: &Path, name: &str) -> PathBuf {
    root.join(LABS_DIR).join(name)
}

/// Reads and parses lab `name`.
pub fn load(root: &Path, name: &str) -> Result<Lab, String> {
    let path = dir(root, name).join(GRADER_FILE);
    let text = fs::read_to_string(&path).map_err(|e| {
        format!(
            "no lab `{name}` ({}: {e}); labs: {}",
            path.display(),
            list(root).join(", ")
        )
    })?;
    parse(name, &text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses a `grader.txt`.
pub fn parse(name: &str, text: &str) -> Result<Lab, String> {
    let mut lab = Lab {
        name: name.to_string(),
        title: name.to_string(),
        starts: Vec::new(),
        checks: Vec::new(),
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        parse_line(&mut lab, line).map_err(|e| format!("line {}: {e}", n + 1))?;
    }
    if lab.checks.is_empty() {
        return Err("no checks".into());
    }
    if lab.starts.is_empty() {
        return Err("no `start` line: the lab has no starting point".into());
    }
    Ok(lab)
}

fn parse_line(lab: &mut Lab, line: &str) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let points = |w: &str| -> Result<u32, String> {
        w.parse()
            .map_err(|_| format!("`{w}` is not a number of points"))
    };
    let check = |kind: Kind, name: &str, p: &str, if_exists: bool| -> Result<Check, String> {
        Ok(Check {
            kind,
            name: name.to_string(),
            points: points(p)?,
            if_exists,
        })
    };
    let c = match words.as_slice() {
        ["title", ..] => {
            lab.title = line["title".len()..].trim().to_string();
            return Ok(());
        }
        ["start", file, region, stub] => {
            lab.starts.push(Start {
                file: PathBuf::from(file),
                region: region.to_string(),
                stub: PathBuf::from(stub),
            });
            return Ok(());
        }
        [kw @ ("host" | "loom"), package, target, name, p, env @ ..] => {
            let env = env
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| format!("`{kv}` is not KEY=VALUE"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (package, target) = (package.to_string(), target.to_string());
            let kind = if *kw == "host" {
                Kind::Host {
                    package,
                    target,
                    env,
                }
            } else {
                Kind::Loom {
                    package,
                    target,
                    env,
                }
            };
            check(kind, name, p, false)?
        }
        [kw @ ("kernel" | "kernel?"), smp, name, p] => {
            let smp = smp.parse().map_err(|_| format!("bad SMP `{smp}`"))?;
            check(Kind::Kernel { smp }, name, p, *kw == "kernel?")?
        }
        ["results", checker, file, p] => {
            let kind = Kind::Results {
                checker: checker.to_string(),
            };
            check(kind, file, p, false)?
        }
        _ => return Err(format!("cannot read `{line}`")),
    };
    lab.checks.push(c);
    Ok(())
}

/// The marker comment lines of region `name`.
fn markers(name: &str) -> (String, String) {
    (
        format!("// LAB: {name} BEGIN"),
        format!("// LAB: {name} END"),
    )
}

/// `text` with the lines between region `name`'s markers replaced by
/// `stub`. Exactly one pair of markers must be there, in order.
pub fn replace_region(text: &str, name: &str, stub: &str) -> Result<String, String> {
    if name == "*" {
        return Ok(stub.to_string());
    }
    let (begin, end) = markers(name);
    let lines: Vec<&str> = text.lines().collect();
    let find = |marker: &str| -> Result<usize, String> {
        let at: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].trim() == marker)
            .collect();
        match at.as_slice() {
            [i] => Ok(*i),
            [] => Err(format!("no line `{marker}`")),
            _ => Err(format!("{} lines `{marker}`", at.len())),
        }
    };
    let (b, e) = (find(&begin)?, find(&end)?);
    if e < b {
        return Err(format!("`{end}` comes before `{begin}`"));
    }
    let mut out: Vec<&str> = lines[..=b].to_vec();
    out.extend(stub.lines());
    out.extend(&lines[e..]);
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    Ok(joined)
}

/// Turns the tree at `root` into lab `lab`'s starting point (in place).
pub fn apply_start(root: &Path, lab: &Lab) -> Result<Vec<PathBuf>, String> {
    let lab_dir = dir(root, &lab.name);
    let mut changed = Vec::new();
    for s in &lab.starts {
        let path = root.join(&s.file);
        let stub_path = lab_dir.join(&s.stub);
        let stub =
            fs::read_to_string(&stub_path).map_err(|e| format!("{}: {e}", stub_path.display()))?;
        let text = if s.region == "*" {
            String::new()
        } else {
            fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?
        };
        let new = replace_region(&text, &s.region, &stub)
            .map_err(|e| format!("{} (region `{}`): {e}", s.file.display(), s.region))?;
        fs::write(&path, new).map_err(|e| format!("{}: {e}", path.display()))?;
        changed.push(s.file.clone());
    }
    Ok(changed)
}

/// Whether the kernel in `root` has an in-kernel test called `name`.
pub fn kernel_has_test(root: &Path, name: &str) -> bool {
    let needle = format!("fn {name}(");
    any_rs_file(&root.join("kernel/src"), &|text| text.contains(&needle))
}

fn any_rs_file(dir: &Path, pred: &dyn Fn(&str) -> bool) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let p = e.path();
        if p.is_dir() {
            any_rs_file(&p, pred)
        } else {
            p.extension().is_some_and(|x| x == "rs")
                && fs::read_to_string(&p).is_ok_and(|t| pred(&t))
        }
    })
}

/// Makes `dst` a copy of the source tree at `src` (everything but build
/// output and `.git`), writing only files whose contents differ, so cargo
/// does not rebuild what did not change, and deleting files `src` lacks.
pub fn sync_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let mut wanted = Vec::new();
    collect(src, Path::new(""), &mut wanted)?;
    for rel in &wanted {
        let (from, to) = (src.join(rel), dst.join(rel));
        let data = fs::read(&from)?;
        if fs::read(&to).ok().as_deref() != Some(&data[..]) {
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&to, &data)?;
            fs::set_permissions(&to, fs::metadata(&from)?.permissions())?;
        }
    }
    let mut present = Vec::new();
    if dst.is_dir() {
        collect(dst, Path::new(""), &mut present)?;
    }
    for rel in present {
        if !wanted.contains(&rel) {
            fs::remove_file(dst.join(rel))?;
        }
    }
    Ok(())
}

/// Build output and version control: never part of a copy.
fn skipped(name: &str) -> bool {
    name == "target" || name == ".git"
}

fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in fs::read_dir(root.join(rel))? {
        let e = e?;
        let name = e.file_name();
        if skipped(&name.to_string_lossy()) {
            continue;
        }
        let rel = rel.join(&name);
        if e.file_type()?.is_dir() {
            collect(root, &rel, out)?;
        } else if e.file_type()?.is_file() {
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "fn f() {\n    // LAB: x BEGIN\n    solution();\n    // LAB: x END\n}\n";

    #[test]
    fn region_is_replaced_and_markers_stay() {
        let out = replace_region(CODE, "x", "    todo!()\n").unwrap();
        assert_eq!(
            out,
            "fn f() {\n    // LAB: x BEGIN\n    todo!()\n    // LAB: x END\n}\n"
        );
    }

    #[test]
    fn missing_doubled_or_reversed_markers_are_errors() {
        assert!(replace_region(CODE, "y", "").is_err());
        let twice = format!("{CODE}{CODE}");
        assert!(replace_region(&twice, "x", "").is_err());
        let reversed = "// LAB: x END\n// LAB: x BEGIN\n";
        assert!(replace_region(reversed, "x", "").is_err());
    }

    #[test]
    fn nested_regions_of_other_labs_go_with_the_outer_one() {
        let code = "// LAB: a BEGIN\n1\n// LAB: b BEGIN\n2\n// LAB: b END\n// LAB: a END\n";
        let inner = replace_region(code, "b", "stub").unwrap();
        assert!(inner.contains("// LAB: a BEGIN") && inner.contains("stub"));
        let outer = replace_region(code, "a", "stub").unwrap();
        assert_eq!(outer, "// LAB: a BEGIN\nstub\n// LAB: a END\n");
    }

    #[test]
    fn grader_file_parses() {
        let lab = parse(
            "demo",
            "title Demo lab  # a comment\n\
             start mm/src/a.rs r stub.rs\n\
             host mm lib a::b 5\n\
             loom mm loom m 10 LOOM_MAX_PREEMPTIONS=3\n\
             kernel? 4 k 7\n\
             results measure docs/x.md 3\n",
        )
        .unwrap();
        assert_eq!(lab.title, "Demo lab");
        assert_eq!(lab.starts.len(), 1);
        assert_eq!(lab.checks.len(), 4);
        assert!(lab.checks[2].if_exists);
        assert_eq!(lab.checks[2].kind, Kind::Kernel { smp: 4 });
        assert_eq!(lab.checks.iter().map(|c| c.points).sum::<u32>(), 25);
        let Kind::Loom { env, .. } = &lab.checks[1].kind else {
            panic!("not a loom check: {:?}", lab.checks[1]);
        };
        assert_eq!(env, &[("LOOM_MAX_PREEMPTIONS".into(), "3".into())]);
    }

    #[test]
    fn bad_grader_files_are_refused() {
        assert!(parse("x", "host mm lib a\n").is_err(), "missing points");
        assert!(parse("x", "start a b c\n").is_err(), "no checks");
        assert!(parse("x", "host mm lib a 5\n").is_err(), "no start");
        assert!(parse("x", "start a b c\nkernel many t 5\n").is_err());
        assert!(parse("x", "start a b c\nloom mm loom t 5 NOEQUALS\n").is_err());
    }
}
