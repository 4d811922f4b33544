//! The memory manager, free of any hardware access.
//!
//! Everything this crate needs from the machine (the current CPU, sleeping and
//! waking, RCU, frames, page tables, TLB flushes, lock annotations) comes in
//! through the traits in [`platform`]. The kernel implements them for real; the
//! host tests implement them with std threads, and the `loom` models with loom's
//! primitives. That is what lets the same lock protocol run in all three places.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

extern crate alloc;

pub mod platform;
pub mod range_tree;
pub mod sync;
