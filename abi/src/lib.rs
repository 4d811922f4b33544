//! The system-call ABI: the one contract the kernel and user programs share.
//!
//! A user program enters the kernel with the `syscall` instruction:
//!
//! | register | meaning |
//! |---|---|
//! | `rax` | syscall number ([`nr`]) |
//! | `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9` | arguments 1 to 6 |
//! | `rax` (on return) | result; a value in `-4095..=-1` is `-errno` ([`errno`]) |
//! | `rcx`, `r11` | clobbered (`syscall` saves RIP and RFLAGS there, `sysret` restores from them) |
//!
//! Every other register is preserved. `docs/syscalls.md` lists each call, what
//! the kernel validates and which error it returns.
//!
//! Reading order: [`nr`], [`errno`], [`mman`] (mapping flags and the user
//! address range), [`fault`] (fault reasons, the handler entry and the per-CPU
//! fault counters), [`thread`] (how threads and handlers are entered).
//!
//! This crate has no dependencies and no `unsafe`, so the kernel, the user
//! runtime and host tests all use the same definitions.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod errno;
pub mod fault;
pub mod mman;
pub mod nr;
pub mod thread;

pub use errno::Errno;
pub use fault::{FaultCounters, FaultReason};
