//! In-kernel tests (see `ktest.rs`); one file per subsystem.
mod boot;
mod memory;
mod selftest;
mod locks;
mod sched;
mod smp;
