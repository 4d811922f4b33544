// What the user programs are built from, for `kernel/build.rs`: the build
// script reruns (and rebuilds the programs) when any of these changes. Its
// own file so that a host test (tests/tests/new_user_program_rebuilds.rs)
// can watch the same list with the same code.

/// Paths relative to the repository root. For a directory cargo watches
/// everything below it, new files included: listing `user/src` (not the
/// files in it) is what makes adding `user/src/bin/NEW.rs` enough.
pub const USER_INPUTS: [&str; 8] = [
    "user/src",
    "user/rt",
    "user/Cargo.toml",
    "user/Cargo.lock",
    "user/build.rs",
    "user/x86_64-user.json",
    "user/link.ld",
    "abi",
];

/// Tell cargo to rerun the build script when a user input under `root`
/// changes.
pub fn watch_user_inputs(root: &std::path::Path) {
    for p in USER_INPUTS {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
}
