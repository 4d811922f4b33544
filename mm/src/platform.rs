//! What `mm` needs from the platform.
//!
//! All methods are associated functions (no `self`): the kernel implements the
//! traits on a zero-sized type, so every call compiles to a direct call.

use alloc::boxed::Box;

/// Read-copy-update, as `mm` uses it: lockless readers of the VMA tree, and
/// deferred freeing of what they might still be looking at.
pub trait Rcu {
    /// Held for the duration of a read-side critical section; dropping it ends
    /// the section. Must not be sent to another thread.
    type ReadGuard;

    /// Begin a read-side critical section (may nest).
    fn read_lock() -> Self::ReadGuard;

    /// Run `callback` once every read-side section that might have begun
    /// before this call has ended (after a grace period).
    fn call_rcu(callback: Box<dyn FnOnce() + Send>);

    /// Sleep until a full grace period has elapsed.
    fn synchronize();
}
