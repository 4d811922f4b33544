//! Locks.
pub mod spinlock;
pub use spinlock::SpinLock;
