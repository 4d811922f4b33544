//! The memory manager, free of any hardware access.
//!
//! Everything this crate needs from the machine (the current CPU, sleeping and
//! waking, RCU, frames, page tables, TLB flushes, lock annotations) comes in
//! through the traits in [`platform`]. The kernel implements them for real; the
//! host tests implement them with std threads ([`host`]), and the `loom` models
//! with loom's primitives (`loom_platform`). That is what lets the same lock
//! protocol run in all three places.
//!
//! Reading order for a student: [`platform`] (the contract), [`seqcount`],
//! [`vma`], [`vma_cache`], [`vma_lock`] (the protocol), [`mm`] (the address
//! space and its operations), [`lookup`] (`lock_vma_under_rcu`),
//! [`page_table`], [`fault`].
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod counters;
pub mod fault;
#[cfg(all(not(loom), not(target_os = "none")))]
pub mod host;
pub mod lookup;
#[cfg(loom)]
pub mod loom_platform;
pub mod mm;
pub mod page_table;
pub mod phases;
pub mod platform;
pub mod range_tree;
pub mod seqcount;
pub mod sync;
pub mod vma;
pub mod vma_cache;
pub mod vma_lock;
