//! The user runtime: everything a program of this OS needs before `main`.
//!
//! Reading order for a student:
//! - [`syscall`]: the `syscall` instruction, in one place;
//! - [`sys`]: one typed wrapper per syscall, returning `Result<_, Errno>`;
//! - [`start`]: `_start`, the `main!` convention, the panic handler;
//! - [`console`]: `print!` and `println!`;
//! - [`heap`]: the global allocator over `mmap`'d chunks;
//! - [`sync`]: a spin lock for the heap and for programs;
//! - [`thread`]: `spawn` and `join` on `mmap`'d stacks;
//! - [`fault`]: catching bad faults (`try_read`, `try_write`, a hook);
//! - [`args`], [`fmt`]: argument parsing and fixed-point output (pure, tested
//!   on the host).
//!
//! Built for the host (`cargo test -p rt --lib`) only the pure parts and the
//! types compile; everything that enters the kernel is for the user target.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod args;
pub mod fmt;
pub mod sync;

#[cfg(not(test))]
pub mod console;
#[cfg(not(test))]
pub mod fault;
#[cfg(not(test))]
pub mod heap;
#[cfg(not(test))]
pub mod start;
#[cfg(not(test))]
pub mod sys;
#[cfg(not(test))]
pub mod syscall;
#[cfg(not(test))]
pub mod thread;

pub use abi::{Errno, FaultCounters, FaultReason};
pub use args::Args;
#[cfg(not(test))]
pub use sys::*;
#[cfg(not(test))]
pub use thread::{JoinHandle, spawn};
