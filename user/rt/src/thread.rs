//! Threads: `spawn(closure) -> JoinHandle`, `join`.
//!
//! Each thread gets its own mapping for a stack with a `PROT_NONE` guard page
//! below it, so an overflow faults instead of overwriting other memory. The
//! closure travels to the new thread as a raw pointer in `arg`; the thread
//! enters through an assembly trampoline (no return address was pushed, see
//! [`abi::thread`]), runs the closure, stores its result and exits. `join`
//! waits in the kernel, then unmaps the stack (the thread no longer runs on
//! it) and takes the result. The kernel reaps the thread in that join, so
//! a thread id can be joined once; a second join, or a join racing with
//! another, is an error ([`crate::sys::thread_join`]).

use abi::Errno;
use abi::mman::{PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE};
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::cell::UnsafeCell;

/// Stack size of a spawned thread (plus one guard page).
pub const STACK_SIZE: u64 = 64 * 1024;

core::arch::global_asm!(
    ".pushsection .text.rt_thread_entry, \"ax\"",
    ".global rt_thread_entry",
    "rt_thread_entry:",
    "    xor ebp, ebp",
    "    and rsp, -16",
    "    call {main}", // rdi = arg, untouched so far
    "    ud2",
    ".popsection",
    main = sym thread_main,
);

unsafe extern "C" {
    fn rt_thread_entry();
}

/// Where a thread leaves its result for the joiner.
struct Packet<T> {
    result: UnsafeCell<Option<T>>,
}

// SAFETY: the thread writes `result` before it exits and the joiner reads it
// only after THREAD_JOIN returned, which the kernel orders after the exit
// (the thread's state changes under a kernel lock the joiner also takes).
unsafe impl<T: Send> Sync for Packet<T> {}

type Start = Box<dyn FnOnce() + Send>;

extern "C" fn thread_main(arg: u64) -> ! {
    // SAFETY: `arg` is the `Box<Start>` leaked by `spawn`, given to exactly
    // this thread.
    let start = unsafe { Box::from_raw(arg as *mut Start) };
    start();
    crate::sys::thread_exit(0)
}

/// A running thread; [`JoinHandle::join`] waits for it. Dropping the handle
/// lets the thread run on, but its stack is then never unmapped.
pub struct JoinHandle<T> {
    tid: u64,
    stack: *mut u8,
    packet: Arc<Packet<T>>,
}

impl<T> JoinHandle<T> {
    /// The kernel's id of the thread.
    pub fn tid(&self) -> u64 {
        self.tid
    }

    /// Waits for the thread to finish and returns what its closure returned.
    pub fn join(self) -> T {
        if let Err(e) = crate::sys::thread_join(self.tid) {
            panic!("join of thread {}: {e}", self.tid);
        }
        // SAFETY: the thread has exited, so nothing runs on its stack, which
        // is the mapping `spawn` made for it.
        let _ = unsafe { crate::sys::munmap(self.stack, STACK_SIZE + PAGE_SIZE) };
        // SAFETY: the thread exited, so it no longer touches the packet (see
        // the Sync impl for the ordering).
        unsafe { (*self.packet.result.get()).take() }.expect("thread ended without a result")
    }
}

/// Starts `f` in a new thread of this process.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    try_spawn(f).unwrap_or_else(|e| panic!("spawn: {e}"))
}

/// [`spawn`], reporting failure instead of panicking.
pub fn try_spawn<F, T>(f: F) -> Result<JoinHandle<T>, Errno>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let total = STACK_SIZE + PAGE_SIZE;
    let stack = crate::sys::mmap_anon(0, total, PROT_READ | PROT_WRITE)?;
    // SAFETY: the guard page is the lowest page of our own fresh mapping.
    if let Err(e) = unsafe { crate::sys::mprotect(stack, PAGE_SIZE, PROT_NONE) } {
        // SAFETY: nobody uses the fresh mapping yet.
        let _ = unsafe { crate::sys::munmap(stack, total) };
        return Err(e);
    }
    let packet = Arc::new(Packet {
        result: UnsafeCell::new(None),
    });
    let theirs = packet.clone();
    let start: Start = Box::new(move || {
        let r = f();
        // SAFETY: only this thread writes the packet, and only once.
        unsafe { *theirs.result.get() = Some(r) };
    });
    let arg = Box::into_raw(Box::new(start)) as u64;
    let top = stack as u64 + total;
    // SAFETY: the trampoline never returns and the stack is ours alone.
    match unsafe { crate::sys::thread_spawn(rt_thread_entry as *const () as u64, top, arg) } {
        Ok(tid) => Ok(JoinHandle { tid, stack, packet }),
        Err(e) => {
            // SAFETY: the thread did not start: the box and stack are ours.
            drop(unsafe { Box::from_raw(arg as *mut Start) });
            // SAFETY: as above.
            let _ = unsafe { crate::sys::munmap(stack, total) };
            Err(e)
        }
    }
}
