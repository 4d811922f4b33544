//! In-kernel tests (see `ktest.rs`); one file per subsystem.
mod boot;
mod fuzz;
mod heap_cache;
mod lockdep;
mod locks;
mod memory;
mod percpu_fpu;
mod rcu;
mod sched;
mod selftest;
mod smp;
mod soak;
mod user;
mod user_exceptions;
mod user_memory;
mod user_threads;
