//! Host side of the kernel tests: boots the kernel in QEMU, echoes its serial
//! output, reads the KTAP results and decides pass or fail.
//!
//! Read in this order: `ktap` (the result format), `verdict` (what counts as
//! a pass), `config` (the QEMU command line), `process` (running a child with
//! a deadline), `symbolize` (backtraces), `guest` (all of it together), and
//! `cargo_tests` and `pyunit` (counting `cargo test` and Python `unittest`
//! results for `make test`), and `must_fail` (the known bugs `make test`
//! puts back, each with the test that must catch it). The labs
//! (`docs/labs/`): `labs` (what a lab grades, its starting point), `measure`
//! (a results-file checker), `grade` (running a lab's checks) and `labcheck`
//! (what `make test` checks of them).

pub mod cargo_tests;
pub mod config;
pub mod doccheck;
pub mod grade;
pub mod guest;
pub mod ktap;
pub mod labcheck;
pub mod labs;
pub mod measure;
pub mod must_fail;
pub mod process;
pub mod pyunit;
pub mod symbolize;
pub mod verdict;
