//! Atomics used by the lock protocol.
//!
//! Under `--cfg loom` these are loom's instrumented types, so the model checker
//! sees (and permutes) every access; otherwise they are `core`'s.
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
