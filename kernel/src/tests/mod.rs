//! In-kernel tests (see `ktest.rs`); one file per subsystem.
mod boot;
mod lockdep;
mod locks;
mod memory;
mod rcu;
mod sched;
mod selftest;
mod smp;
mod user;
