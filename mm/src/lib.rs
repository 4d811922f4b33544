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

/// A race-injection point (see [`inject`]): calls the platform's hook with
/// the point and what it is about (`mm`, `vma`, `addr`). Expands to nothing
/// without the feature `race-inject`.
macro_rules! race_point {
    ($point:ident $(, $field:ident = $value:expr)* $(,)?) => {
        #[cfg(feature = "race-inject")]
        {
            #[allow(unused_mut)]
            let mut site = $crate::inject::Site::default();
            $(site.$field = $crate::inject::SiteKey::site_key($value) as _;)*
            $crate::inject::reached($crate::inject::Point::$point, site);
        }
    };
}

pub mod counters;
pub mod fault;
#[cfg(all(not(loom), not(target_os = "none")))]
pub mod host;
#[cfg(feature = "race-inject")]
pub mod inject;
pub mod lookup;
#[cfg(loom)]
pub mod loom_platform;
pub mod mm;
pub mod page_table;
pub mod percpu_counter;
pub mod phases;
pub mod platform;
pub mod range_tree;
pub mod seqcount;
pub mod sync;
pub mod vma;
pub mod vma_cache;
pub mod vma_lock;
