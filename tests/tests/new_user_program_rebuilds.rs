//! Adding `user/src/bin/NEW.rs` is enough for an incremental kernel build to
//! embed the new program: the kernel's build script must rerun when a file
//! appears in that folder.
//!
//! Building the kernel twice would take minutes, so this builds a tiny probe
//! package instead, in a scratch directory that plays the repository root.
//! Its build script watches the scratch tree with the kernel build script's
//! own code (`kernel/build_user_inputs.rs`, included by both) and logs each
//! run. Cargo decides when to rerun it exactly as it decides for the
//! kernel's; the probe builds in a few seconds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

include!("../../kernel/build_user_inputs.rs");

const INPUTS_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../kernel/build_user_inputs.rs"
);
const KERNEL_BUILD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../kernel/build.rs");

/// The scratch root: every user input exists (a missing watched path would
/// make cargo rerun the script every time, and prove nothing), plus the
/// probe package under `probe/`.
fn scratch() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("new_user_program_rebuilds");
    let _ = fs::remove_dir_all(&root);
    for p in USER_INPUTS {
        let path = root.join(p);
        if Path::new(p).extension().is_some() {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, "").unwrap();
        } else {
            fs::create_dir_all(&path).unwrap();
        }
    }
    fs::create_dir_all(root.join("user/src/bin")).unwrap();
    fs::write(root.join("user/src/bin/hello.rs"), "").unwrap();

    let probe = root.join("probe");
    fs::create_dir_all(probe.join("src")).unwrap();
    fs::write(
        probe.join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    fs::write(probe.join("src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(
        probe.join("build.rs"),
        format!(
            "include!({INPUTS_FILE:?});\n\
             fn main() {{\n\
             \x20   let root = std::path::Path::new({root:?});\n\
             \x20   watch_user_inputs(root);\n\
             \x20   use std::io::Write;\n\
             \x20   let mut log = std::fs::OpenOptions::new().create(true).append(true)\n\
             \x20       .open(root.join(\"runs.log\")).unwrap();\n\
             \x20   writeln!(log, \"ran\").unwrap();\n\
             }}\n",
            root = root.display().to_string(),
        ),
    )
    .unwrap();
    root
}

/// Build the probe; how many times its build script has run so far.
fn build(root: &Path) -> usize {
    // The toolchain running this test, not whatever rustup picks for the
    // scratch directory.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    if let Some(rustc) = Path::new(&cargo).parent().map(|d| d.join("rustc"))
        && rustc.is_file()
    {
        cmd.env("RUSTC", rustc);
    }
    // The outer `cargo test`'s settings are not the probe's.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if (key.starts_with("CARGO_") && key != "CARGO_HOME") || key == "RUSTFLAGS" {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["build", "--offline", "-q", "--target-dir"])
        .arg(root.join("target"))
        .current_dir(root.join("probe"))
        .output()
        .expect("cannot run cargo");
    assert!(
        out.status.success(),
        "probe build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::read_to_string(root.join("runs.log"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn new_program_file_reruns_the_build_script() {
    let root = scratch();
    assert_eq!(build(&root), 1, "first build runs the build script");
    assert_eq!(
        build(&root),
        1,
        "nothing changed: the script must not rerun"
    );
    fs::write(root.join("user/src/bin/new_program.rs"), "").unwrap();
    assert_eq!(
        build(&root),
        2,
        "a new user/src/bin/NAME.rs must rerun the build script"
    );
    fs::create_dir_all(root.join("user/src/bin/dir_program")).unwrap();
    fs::write(root.join("user/src/bin/dir_program/main.rs"), "").unwrap();
    assert_eq!(build(&root), 3, "so must a new user/src/bin/NAME/main.rs");
}

/// The kernel's build script watches through that same code.
#[test]
fn kernel_build_script_uses_the_watched_list() {
    let build_rs = fs::read_to_string(KERNEL_BUILD).unwrap();
    let has_line = |want: &str| build_rs.lines().any(|l| l.trim() == want);
    assert!(
        has_line("include!(\"build_user_inputs.rs\");") && has_line("watch_user_inputs(root);"),
        "kernel/build.rs must watch the user inputs through {INPUTS_FILE}"
    );
}
