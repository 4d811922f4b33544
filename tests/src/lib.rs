//! Host side of the kernel tests: boots the kernel in QEMU, echoes its serial
//! output, reads the KTAP results and decides pass or fail.
//!
//! Read in this order: `ktap` (the result format), `verdict` (what counts as
//! a pass), `config` (the QEMU command line), `process` (running a child with
//! a deadline), `symbolize` (backtraces), `guest` (all of it together), and
//! `cargo_tests` and `pyunit` (counting `cargo test` and Python `unittest`
//! results for `make test`).

pub mod cargo_tests;
pub mod config;
pub mod doccheck;
pub mod guest;
pub mod ktap;
pub mod process;
pub mod pyunit;
pub mod symbolize;
pub mod verdict;
