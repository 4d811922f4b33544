//! Locks and sleeping primitives.
//!
//! | primitive | waits by | use |
//! |---|---|---|
//! | `SpinLock` | spinning (preemption off) | short sections, interrupt handlers |
//! | `WaitQueue` | sleeping | "sleep until this condition holds" |
//! | `Mutex` | sleeping | long sections in task context |
//! | `RwSem` | sleeping | readers share, writers exclude: the `mmap_lock` |
//! | `RcuWait` | sleeping | one waiter, e.g. a VMA writer waiting for readers |
pub mod mutex;
pub mod rcuwait;
pub mod rwsem;
pub mod spinlock;
pub mod waitqueue;

pub use mutex::Mutex;
pub use rcuwait::RcuWait;
pub use rwsem::RwSem;
pub use spinlock::SpinLock;
