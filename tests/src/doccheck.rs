//! Docs that cannot go stale silently.
//!
//! [`check_repo`] reads every `README.md` and every Markdown file under
//! `docs/` and reports:
//!
//! - a backticked repository path (`mm/src/vma_lock.rs`, `kernel/build.rs:14`,
//!   `bench/`, or a bare file name such as `lookup.rs`) that names no file or
//!   folder of the repository;
//! - a backticked Rust path (`mm::lookup::lock_vma_under_rcu`,
//!   `vma_lock::vma_mark_attached`, `Mm::write_lock`) whose crate, module or
//!   type is ours but whose item is defined nowhere there;
//! - a relative Markdown link (`[text](races.md#the-seed)`) whose file, or
//!   heading, does not exist.
//!
//! It also reads every text file of the repository and reports a pointer
//! outside it (the design notes the project began from, next to the
//! repository) and a tracker number ("issue" or "item" followed by a
//! number): a reader of the repository has neither.
//!
//! What is skipped on purpose: fenced code blocks (commands and logs), spans
//! with spaces (commands), placeholders (`<...>`, `NAME`, `*`), absolute and
//! build-output paths (`/proc/...`, `target/...`), and Rust paths into other
//! crates (`core::ptr::eq`, `Ordering::Relaxed`).
//!
//! The test at the bottom runs it on this repository, so `make test` (the
//! host suite) fails when a doc names something that no longer exists.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// One stale or dangling reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the repository root.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// Every problem in the repository at `root`, in file order.
pub fn check_repo(root: &Path) -> Vec<Problem> {
    let repo = Repo::scan(root);
    let mut problems = Vec::new();
    for doc in repo.docs() {
        let Ok(text) = std::fs::read_to_string(root.join(&doc)) else {
            continue;
        };
        check_doc(&repo, &doc, &text, &mut problems);
    }
    for file in &repo.files {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue; // not text
        };
        check_no_outside_refs(file, &text, &mut problems);
    }
    problems
}

// ------------------------------------------------------------ repository --

/// Directories never scanned: build output and version control.
fn skipped_dir(name: &str) -> bool {
    name == "target" || name == ".git"
}

/// The repository's files and folders (relative, `/`-separated) and the Rust
/// items they define.
struct Repo {
    root: PathBuf,
    files: BTreeSet<String>,
    dirs: BTreeSet<String>,
    /// Per Rust file: the names it defines (items, fields, variants,
    /// re-exports).
    defs: BTreeMap<String, BTreeSet<String>>,
    /// Per Rust file: the types and traits it defines itself.
    types: BTreeMap<String, BTreeSet<String>>,
}

impl Repo {
    fn scan(root: &Path) -> Repo {
        let mut repo = Repo {
            root: root.to_path_buf(),
            files: BTreeSet::new(),
            dirs: BTreeSet::new(),
            defs: BTreeMap::new(),
            types: BTreeMap::new(),
        };
        repo.walk(root, "");
        let rust: Vec<String> = repo
            .files
            .iter()
            .filter(|f| f.ends_with(".rs"))
            .cloned()
            .collect();
        for f in rust {
            let text = std::fs::read_to_string(root.join(&f)).unwrap_or_default();
            repo.types.insert(f.clone(), type_definitions(&text));
            repo.defs.insert(f, definitions(&text));
        }
        repo
    }

    fn walk(&mut self, dir: &Path, rel: &str) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                if !skipped_dir(&name) {
                    self.dirs.insert(path.clone());
                    self.walk(&e.path(), &path);
                }
            } else {
                self.files.insert(path);
            }
        }
    }

    /// Every `README.md`, and every Markdown file under `docs/`.
    fn docs(&self) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| {
                *f == "README.md"
                    || f.ends_with("/README.md")
                    || (f.starts_with("docs/") && f.ends_with(".md"))
            })
            .cloned()
            .collect()
    }

    fn exists(&self, rel: &str) -> bool {
        let rel = rel.trim_end_matches('/');
        rel.is_empty() || self.files.contains(rel) || self.dirs.contains(rel)
    }

    /// Whether some file or folder's path ends with `suffix` at a `/`.
    fn has_suffix(&self, suffix: &str) -> bool {
        let suffix = suffix.trim_end_matches('/');
        let tail = format!("/{suffix}");
        self.files
            .iter()
            .chain(&self.dirs)
            .any(|p| p == suffix || p.ends_with(&tail))
    }
}

/// Normalise `base/rel` (both `/`-separated, relative to the root); `None`
/// if it climbs out of the repository.
fn join_inside(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn parent_of(file: &str) -> &str {
    file.rsplit_once('/').map_or("", |(d, _)| d)
}

// ------------------------------------------------------------- markdown --

/// The text of a Markdown file outside fenced code blocks (fenced lines are
/// blanked, so offsets still give line numbers).
fn outside_fences(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fenced = false;
    for line in text.split_inclusive('\n') {
        let is_fence = line.trim_start().starts_with("```");
        if is_fence {
            fenced = !fenced;
        }
        if fenced || is_fence {
            out.push_str(&"\n".repeat(line.matches('\n').count()));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Inline code spans: (byte offset of the span, its content). A span opened
/// by N backticks ends at the next run of exactly N; it may cross lines.
fn code_spans(text: &str) -> Vec<(usize, String)> {
    let b = text.as_bytes();
    let run_at = |i: usize| b[i..].iter().take_while(|&&c| c == b'`').count();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'`' {
            i += 1;
            continue;
        }
        let n = run_at(i);
        let start = i + n;
        let mut j = start;
        let mut end = None;
        while j < b.len() {
            if b[j] == b'`' {
                let m = run_at(j);
                if m == n {
                    end = Some(j);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match end {
            Some(e) => {
                spans.push((i, text[start..e].trim().to_string()));
                i = e + n;
            }
            None => i = start,
        }
    }
    spans
}

/// The text with code spans blanked (links inside code are not links).
fn without_spans(text: &str) -> String {
    let mut out: Vec<u8> = text.as_bytes().to_vec();
    for (at, _) in code_spans(text) {
        let open = text[at..].bytes().take_while(|&c| c == b'`').count();
        let rest = &text[at + open..];
        let close = rest
            .find(&"`".repeat(open))
            .map_or(rest.len(), |e| e + open);
        for c in &mut out[at..at + open + close] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Relative link targets `[text](target)`: (byte offset, target).
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(k) = text[from..].find("](") {
        let at = from + k + 2;
        let Some(close) = text[at..].find(')') else {
            break;
        };
        let target = text[at..at + close].trim();
        // A title after the target: `[a](b "title")`.
        let target = target.split_whitespace().next().unwrap_or("");
        if !target.is_empty() {
            out.push((at, target.to_string()));
        }
        from = at + close;
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    outside_fences(text)
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(|h| slug(&without_spans(h.trim_start_matches('#')).replace('`', "")))
        .collect()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

// ---------------------------------------------------------------- checks --

fn check_doc(repo: &Repo, doc: &str, text: &str, problems: &mut Vec<Problem>) {
    let body = outside_fences(text);
    let mut report = |offset: usize, what: String| {
        problems.push(Problem {
            file: doc.to_string(),
            line: line_of(&body, offset),
            what,
        })
    };
    for (at, span) in code_spans(&body) {
        if let Some(why) = check_span(repo, doc, &span) {
            report(at, why);
        }
    }
    for (at, target) in links(&without_spans(&body)) {
        if let Some(why) = check_link(repo, doc, &target) {
            report(at, why);
        }
    }
}

/// Which code spans are paths, and whether they exist.
fn check_span(repo: &Repo, doc: &str, span: &str) -> Option<String> {
    if span.contains(char::is_whitespace) || is_placeholder(span) {
        return None;
    }
    if span.contains("::") {
        return check_rust_path(repo, span);
    }
    let path = strip_line_number(span);
    if !looks_like_path(path) || path.starts_with('/') || path.starts_with("target/") {
        return None;
    }
    if path.starts_with("../") {
        return match join_inside(parent_of(doc), path) {
            Some(p) if repo.exists(&p) => None,
            _ => Some(format!("`{span}` points outside the repository")),
        };
    }
    // A path into a folder the repository does not have (`results/latest/`,
    // inside a build's output folder the text named) is not ours to judge.
    let first = path.split('/').next().unwrap_or("");
    if path.contains('/') && first != ".." && !repo.has_suffix(first) {
        return None;
    }
    if repo.exists(path)
        || repo.has_suffix(path)
        || join_inside(parent_of(doc), path).is_some_and(|p| repo.exists(&p))
    {
        return None;
    }
    Some(format!(
        "`{span}`: no such file or folder in the repository"
    ))
}

fn is_placeholder(span: &str) -> bool {
    span.contains(['<', '>', '*', '{', '}', '$', '[', ']', '=', '|', ','])
        || span.contains("...")
        || span
            .split(['/', '.', '-', '_'])
            .any(|w| matches!(w, "NAME" | "N" | "NN" | "X" | "FILE" | "PROG"))
}

fn strip_line_number(span: &str) -> &str {
    let mut s = span;
    // `file.rs:12` or `file.rs:12:5`.
    for _ in 0..2 {
        if let Some((head, tail)) = s.rsplit_once(':')
            && !tail.is_empty()
            && tail.bytes().all(|c| c.is_ascii_digit())
        {
            s = head;
        }
    }
    s
}

/// Extensions that make a bare name (no folder) a source file of ours.
/// Output files (`summary.md`, `meta.json`) are named bare too, so those
/// extensions count only in a path with a folder.
const SOURCE_EXTENSIONS: &[&str] = &["rs", "sh", "py", "c", "h", "toml", "gdb", "ld", "S"];

/// A repository path: made of path characters, and either with a folder
/// (`a/b`) or a source file extension (`lookup.rs`).
fn looks_like_path(s: &str) -> bool {
    let path_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
    if !path_chars || s.is_empty() || s.starts_with('-') || s.contains("://") {
        return false;
    }
    let has_ext = s
        .rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && SOURCE_EXTENSIONS.contains(&ext));
    let has_dir = s.contains('/') && s.chars().any(|c| c.is_ascii_alphabetic());
    has_ext || has_dir
}

fn check_link(repo: &Repo, doc: &str, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() {
        doc.to_string()
    } else {
        match join_inside(parent_of(doc), path) {
            Some(p) if repo.exists(&p) => p,
            Some(_) => return Some(format!("link `{target}`: no such file")),
            None => return Some(format!("link `{target}` points outside the repository")),
        }
    };
    if anchor.is_empty() || !file.ends_with(".md") {
        return None;
    }
    let text = std::fs::read_to_string(repo.root.join(&file)).unwrap_or_default();
    if anchors(&text).contains(anchor) {
        None
    } else {
        Some(format!("link `{target}`: no heading `#{anchor}` in {file}"))
    }
}

// ----------------------------------------------------------- rust paths --

/// Our crates: name and source folder. `crate` may be any of them.
const CRATES: &[(&str, &str)] = &[
    ("mm", "mm/src"),
    ("abi", "abi/src"),
    ("kernel", "kernel/src"),
    ("tests", "tests/src"),
    ("rt", "user/rt/src"),
    ("programs", "user/src"),
];

/// The names a Rust file defines: items after a keyword, struct fields and
/// enum variants at the start of a line, and names on `pub use` lines.
fn definitions(text: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "fn",
        "struct",
        "enum",
        "trait",
        "type",
        "const",
        "static",
        "mod",
        "union",
        "macro_rules!",
    ];
    let mut defs = BTreeSet::new();
    for line in text.lines() {
        let t = line.trim_start();
        let words: Vec<&str> = t
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '!'))
            .filter(|w| !w.is_empty())
            .collect();
        for w in words.windows(2) {
            if KEYWORDS.contains(&w[0]) {
                defs.insert(w[1].trim_end_matches('!').to_string());
            }
        }
        if t.starts_with("pub use") || t.starts_with("pub(crate) use") {
            defs.extend(words.iter().map(|w| w.to_string()));
        }
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub(super) "))
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        let name: String = t
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = t[name.len()..].trim_start();
        let field = after.starts_with(':') && !after.starts_with("::");
        let variant = name.starts_with(|c: char| c.is_ascii_uppercase())
            && (after.is_empty() || after.starts_with([',', '(', '{', '=']));
        if !name.is_empty() && (field || variant) {
            defs.insert(name);
        }
    }
    defs
}

/// The types and traits a Rust file defines (`struct Mm`, `pub trait X`).
fn type_definitions(text: &str) -> BTreeSet<String> {
    let mut types = BTreeSet::new();
    for line in text.lines() {
        let words: Vec<&str> = line
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        for w in words.windows(2) {
            if matches!(w[0], "struct" | "enum" | "trait" | "type" | "union") {
                types.insert(w[1].to_string());
            }
        }
    }
    types
}

impl Repo {
    fn defines(&self, file: &str, name: &str) -> bool {
        self.defs.get(file).is_some_and(|d| d.contains(name))
    }

    /// The Rust files of the crate whose source folder is `src`.
    fn crate_files<'a>(&'a self, src: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.defs.keys().filter(move |f| f.starts_with(src))
    }

    /// The module `name` inside folder `dir`: `dir/name.rs` or
    /// `dir/name/mod.rs`, and the folder its own submodules live in.
    fn module(&self, dir: &str, name: &str) -> Option<(String, String)> {
        let sub = format!("{dir}/{name}");
        [format!("{sub}.rs"), format!("{sub}/mod.rs")]
            .into_iter()
            .find(|f| self.files.contains(f))
            .map(|f| (f, sub))
    }

    /// The crate source folder a file belongs to.
    fn crate_of(&self, file: &str) -> Option<&'static str> {
        CRATES
            .iter()
            .map(|&(_, src)| src)
            .filter(|src| file.starts_with(&format!("{src}/")))
            .max_by_key(|src| src.len())
    }

    /// Resolve `segs` starting in module file `file` (folder `dir`): modules
    /// first, then an item of the last module, then (methods, variants,
    /// fields) names defined anywhere in the crate.
    fn resolve_in(&self, file: &str, dir: &str, segs: &[&str]) -> bool {
        let Some((first, rest)) = segs.split_first() else {
            return true;
        };
        if let Some((f, d)) = self.module(dir, first)
            && self.resolve_in(&f, &d, rest)
        {
            return true;
        }
        if !self.defines(file, first) {
            return false;
        }
        let src = self.crate_of(file).unwrap_or("");
        rest.iter()
            .all(|name| self.crate_files(src).any(|f| self.defines(f, name)))
    }

    fn root_file(&self, src: &str) -> Option<String> {
        ["lib.rs", "main.rs"]
            .iter()
            .map(|f| format!("{src}/{f}"))
            .find(|f| self.files.contains(f))
    }
}

/// `None` if `span` resolves or is not ours to judge; else the complaint.
fn check_rust_path(repo: &Repo, span: &str) -> Option<String> {
    let path = span.trim_end_matches("()").trim_end_matches('!');
    let ok_chars = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !ok_chars {
        return None; // generics, expressions: not a plain path
    }
    let segs: Vec<&str> = path.split("::").collect();
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    let (first, rest) = (segs[0], &segs[1..]);
    let resolved = if span.ends_with('!') {
        // `#[macro_export]` puts a macro at its crate's root, wherever it
        // is written: any definition in our crates will do.
        let name = segs[segs.len() - 1];
        let ours = first == "crate" || CRATES.iter().any(|(c, _)| *c == first);
        ours.then(|| repo.defs.values().any(|d| d.contains(name)))
    } else if first == "crate" {
        Some(CRATES.iter().any(|&(_, src)| {
            repo.root_file(src)
                .is_some_and(|root| repo.resolve_in(&root, src, rest))
        }))
    } else if let Some(&(_, src)) = CRATES.iter().find(|(name, _)| *name == first) {
        repo.root_file(src)
            .map(|root| repo.resolve_in(&root, src, rest))
    } else {
        resolve_unrooted(repo, &segs)
    };
    match resolved {
        Some(false) => Some(format!(
            "`{span}`: no such item in this repository's crates"
        )),
        _ => None,
    }
}

/// A path that starts with a module name (`vma_lock::vma_start_read`) or a
/// type name (`Mm::write_lock`) of ours: `Some(resolved)`. Anything else
/// (`Ordering::Relaxed`, `core::ptr::eq`) is another crate's: `None`.
fn resolve_unrooted(repo: &Repo, segs: &[&str]) -> Option<bool> {
    let (first, rest) = (segs[0], &segs[1..]);
    let modules: Vec<(String, String)> = repo
        .files
        .iter()
        .filter(|f| f.ends_with(".rs") && repo.crate_of(f).is_some())
        .filter_map(|f| {
            let stem = f.strip_suffix(&format!("/{first}.rs"))?;
            Some((f.clone(), format!("{stem}/{first}")))
        })
        .chain(repo.files.iter().filter_map(|f| {
            let dir = f.strip_suffix("/mod.rs")?;
            (dir.rsplit('/').next() == Some(first)).then(|| (f.clone(), dir.to_string()))
        }))
        .collect();
    if !modules.is_empty() {
        return Some(
            modules
                .iter()
                .any(|(file, dir)| repo.resolve_in(file, dir, rest)),
        );
    }
    let owners: Vec<&String> = repo
        .types
        .iter()
        .filter(|(f, t)| repo.crate_of(f).is_some() && t.contains(first))
        .map(|(f, _)| f)
        .collect();
    if owners.is_empty() || !first.starts_with(|c: char| c.is_ascii_uppercase()) {
        return None;
    }
    Some(owners.iter().any(|owner| {
        let src = repo.crate_of(owner).unwrap_or("");
        rest.iter()
            .all(|name| repo.crate_files(src).any(|f| repo.defines(f, name)))
    }))
}

// ---------------------------------------------------- outside references --

/// Words that point outside the repository. Spelled in pieces so this file
/// does not match itself.
fn outside_markers() -> [String; 3] {
    [
        ["..", "/shared"].concat(),
        ["shared", "/seed"].concat(),
        ["DESIGN", ".md"].concat(),
    ]
}

fn check_no_outside_refs(file: &str, text: &str, problems: &mut Vec<Problem>) {
    let markers = outside_markers();
    for (i, line) in text.lines().enumerate() {
        let mut report = |what: String| {
            problems.push(Problem {
                file: file.to_string(),
                line: i + 1,
                what,
            })
        };
        for m in &markers {
            if line.contains(m.as_str()) {
                report(format!("points outside the repository (`{m}`)"));
            }
        }
        if let Some(t) = tracker_number(line) {
            report(format!(
                "refers to a tracker number (`{t}`): say what it means"
            ));
        }
    }
}

/// A tracker reference: "issue" or "item" (or their plurals) as a word,
/// spaces, maybe a `#`, then a digit.
fn tracker_number(line: &str) -> Option<String> {
    let lower = line.to_lowercase();
    for word in ["issue", "item"] {
        let mut from = 0;
        while let Some(k) = lower[from..].find(word) {
            let at = from + k;
            from = at + word.len();
            let starts_word = lower[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_');
            let rest = lower[from..].strip_prefix('s').unwrap_or(&lower[from..]);
            let spaced = rest.trim_start_matches(' ');
            let gap = rest.len() - spaced.len();
            let number = spaced.strip_prefix('#').unwrap_or(spaced);
            if starts_word && gap >= 1 && number.starts_with(|c: char| c.is_ascii_digit()) {
                let end = (lower.len() - number.len() + 1).min(lower.len());
                return Some(line[at..end].to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository this crate lives in.
    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ has a parent")
            .to_path_buf()
    }

    #[test]
    fn repository_docs_are_current() {
        let problems = check_repo(&repo_root());
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            problems.is_empty(),
            "{} stale or dangling reference(s):\n{}",
            problems.len(),
            list.join("\n")
        );
    }

    /// A throwaway repository with one doc and a small crate.
    struct Fixture(PathBuf);

    impl Fixture {
        fn new(name: &str, doc: &str) -> Fixture {
            let root = std::env::temp_dir().join(format!("doccheck-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            let write = |rel: &str, text: &str| {
                let p = root.join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, text).unwrap();
            };
            write("README.md", "# Top\n\nSee [the guide](docs/guide.md).\n");
            write("docs/guide.md", doc);
            write("mm/src/lib.rs", "pub mod vma_lock;\npub struct Mm;\n");
            write(
                "mm/src/vma_lock.rs",
                "pub fn vma_mark_attached() {}\nimpl Mm {\n    pub fn write_lock(&self) {}\n}\n\
                 #[macro_export]\nmacro_rules! kassert { () => {} }\n",
            );
            Fixture(root)
        }

        fn problems(&self) -> Vec<String> {
            check_repo(&self.0).iter().map(|p| p.to_string()).collect()
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn good_references_pass() {
        let f = Fixture::new(
            "good",
            "# Guide\n\n## The lock\n\n`mm/src/vma_lock.rs:1`, `vma_lock.rs`, `mm/`,\n\
             `mm::vma_lock::vma_mark_attached`, `vma_lock::vma_mark_attached()`,\n\
             `Mm::write_lock`, `core::ptr::eq`, `make run PROG=x`, `target/x`,\n\
             `mm::kassert!`, `std::println!`,\n\
             [up](../README.md#top), [here](#the-lock).\n\n\
             ```\nnot/checked.rs\n```\n",
        );
        assert_eq!(f.problems(), Vec::<String>::new());
    }

    #[test]
    fn missing_file_is_reported() {
        let f = Fixture::new("file", "# G\n\nSee `mm/src/vma_lok.rs`.\n");
        let p = f.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("docs/guide.md:3:"), "{p:?}");
        assert!(p[0].contains("vma_lok.rs"), "{p:?}");
    }

    #[test]
    fn missing_rust_items_are_reported() {
        let f = Fixture::new(
            "rust",
            "# G\n\n`vma_lock::attach`\n`mm::vma_lock::attach`\n`Mm::read_lock`\n`crate::nope`\n\
             `mm::nope!`\n",
        );
        let p = f.problems();
        assert_eq!(p.len(), 5, "{p:?}");
    }

    #[test]
    fn dangling_links_are_reported() {
        let f = Fixture::new("links", "# G\n\n[a](nope.md) [b](../README.md#nowhere)\n");
        let p = f.problems();
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn outside_pointers_and_tracker_numbers_are_reported() {
        let outside = ["`", "..", "/shared/x.md`"].concat();
        let tracker = ["as ", "Issue", " 3 says"].concat();
        let f = Fixture::new("outside", &format!("# G\n\n{outside}\n{tracker}\n"));
        let p = f.problems();
        // The backticked path climbs out (span check) and names the folder
        // (text check); the tracker number is one more.
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().any(|l| l.contains("tracker")), "{p:?}");
    }

    #[test]
    fn tracker_number_forms() {
        assert!(tracker_number(&["see ", "issue", " 4"].concat()).is_some());
        assert!(tracker_number(&["(", "items", " #2)"].concat()).is_some());
        assert!(tracker_number("threads issue calls").is_none());
        assert!(tracker_number("reissue 5").is_none());
        assert!(tracker_number("the item list").is_none());
    }
}
