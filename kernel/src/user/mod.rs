//! User processes: an address space (`mm::Mm`), threads running in ring 3,
//! and what happens when one of them faults or exits.
//!
//! Lifetime: a `Process` lives while any of its threads (tasks whose `user`
//! points at it) or a waiter holds it. The address space is torn down when
//! the last thread exits, on that thread, after it switched to the kernel's
//! own page table, so no CPU can still be using the process's tables.
//!
//! A thread's task (and kernel stack) is freed when it is reaped: by the
//! `THREAD_JOIN` that waited for it, or, for threads nobody joined, by
//! whoever waits for the whole process (`run`). Ending a process (`EXIT`, a
//! fatal fault, `kill_process`) wakes every thread wherever it sleeps, so
//! each one reaches its next return to user mode and leaves.

mod elf;
pub mod entry;
pub mod fault;
pub mod syscall;
pub mod uaccess;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};

use abi::errno::Errno;
use mm::mm::{MapAt, Mm, MmRef};
use mm::vma::Prot;
use mm::vma_cache::VmaCache;

use crate::arch::trap::TrapFrame;
use crate::arch::{cpu, percpu};
use crate::memory::{paging, phys_to_virt};
use crate::mm_platform::Kernel;
use crate::sched::{self, Task};
use crate::sync::SpinLock;
use crate::sync::waitqueue::WaitQueue;

mod programs {
    include!(concat!(env!("OUT_DIR"), "/user_programs.rs"));
}
pub use programs::PROGRAMS;

/// Top of the first thread's stack, and its size (demand-faulted).
const STACK_TOP: u64 = 0x7fff_0000_0000;
const STACK_SIZE: u64 = 1 << 20;

pub struct Process {
    pub id: u64,
    pub name: String,
    pub args: String,
    /// Owns the address space; emptied by the last thread out.
    mm: SpinLock<Option<MmRef<Kernel>>>,
    /// The same address space, for the fault and syscall paths without a
    /// lock: valid while any thread has not begun exiting (see `with_mm`).
    mm_ptr: *const Mm<Kernel>,
    /// The page-table root, fixed for the life of the process.
    pub root: u64,
    /// Every thread not yet reaped.
    threads: SpinLock<Vec<Thread>>,
    live: AtomicUsize,
    /// Set by EXIT or a fatal fault: every thread leaves at its next return
    /// to user mode.
    pub killed: AtomicBool,
    pub exit_code: AtomicI32,
    /// The fault that ended the process: `vector << 32 | reason`, 0 if none
    /// (`fault::fatal_fault` decodes it).
    pub fatal_fault: AtomicU64,
    done: AtomicBool,
    exited: WaitQueue,
}

/// A thread as its process lists it.
struct Thread {
    task: Arc<Task>,
    /// Another thread is waiting in `THREAD_JOIN` for this one.
    joining: bool,
}

/// Per-thread user state (touched only by the thread itself).
#[derive(Default)]
pub struct ThreadState {
    /// Where a spawned thread enters user mode: `(rip, rsp, rdi)`.
    start: Option<(u64, u64, u64)>,
    pub fault_handler: u64,
    pub fault_stack: u64,
    /// The interrupted context while the fault handler runs.
    pub saved: Option<SavedFrame>,
}

#[derive(Clone, Copy)]
pub struct SavedFrame(pub [u64; 22]);

static NEXT_PID: AtomicU64 = AtomicU64::new(1);
static VMA_CACHE: spin::Once<Arc<VmaCache<Kernel>>> = spin::Once::new();

impl Process {
    /// The address space, while the process is alive.
    ///
    /// Only for a thread of this process that has not begun exiting (every
    /// caller: syscalls, faults, the loader): that thread keeps `live` above
    /// zero, and the address space is dropped only when `live` reaches zero.
    /// That makes this lock-free, which matters: every user fault comes here.
    pub fn with_mm<R>(&self, f: impl FnOnce(&Mm<Kernel>) -> R) -> Option<R> {
        debug_assert!(!current_thread().left_mm.load(Ordering::Relaxed));
        // SAFETY: see above; the `Mm` stays allocated while its MmRef in
        // `self.mm` is held, which is until the last thread leaves.
        Some(f(unsafe { &*self.mm_ptr }))
    }
}

// SAFETY: `mm_ptr` is only dereferenced under the rule documented on
// `with_mm`; everything else in `Process` is Send + Sync.
unsafe impl Send for Process {}
// SAFETY: as above.
unsafe impl Sync for Process {}

fn current_thread() -> &'static Task {
    sched::current()
}

/// The process of the running thread (panics in a kernel task).
pub fn current_process() -> &'static Arc<Process> {
    current_thread().user.as_ref().expect("not a user thread")
}

/// The running thread's own user state, borrowed until the guard drops
/// (its syscall, fault or start path; they do not nest, and a nested borrow
/// would panic).
pub fn thread_state() -> core::cell::RefMut<'static, ThreadState> {
    sched::current_uthread()
}

/// Called by the scheduler before switching to `next` on `cpu`: load its
/// page table and give traps from user mode its kernel stack.
pub fn switch_address_space(next: &Task, cpu_id: usize) {
    let root = match &next.user {
        Some(p) if !next.left_mm.load(Ordering::Acquire) => {
            let top = next.stack.as_ref().map(|s| s.top()).unwrap_or(0);
            let pc = percpu::this();
            pc.syscall_kernel_rsp.store(top, Ordering::Relaxed);
            // SAFETY: this CPU's TSS, written only by this CPU; the CPU reads
            // rsp0 only on the next trap from ring 3, which runs `next`.
            unsafe { (*pc.tss.get()).privilege_stack_table[0] = x86_64::VirtAddr::new(top) };
            // Mark the CPU before loading the table. `note_cpu` ends with a
            // SeqCst fence that pairs with the one in `Mm::cpus_to_flush`
            // (store buffering): either a shootdown that changed entries
            // sees our bit and sends us an IPI, or our table walks after the
            // CR3 load below see its new entries.
            // SAFETY: `next` has not begun exiting, so `live > 0` and the
            // address space is alive (the rule on `with_mm`).
            unsafe { &*p.mm_ptr }.note_cpu(cpu_id);
            p.root
        }
        _ => paging::kernel_pml4(),
    };
    if cpu::read_cr3() & !0xFFF != root {
        crate::mm_platform::note_loaded_root(cpu_id, root);
        // SAFETY: both kinds of table map the whole kernel half (a process's
        // PML4 copies the kernel's entries 256..512 at creation).
        unsafe { cpu::write_cr3(root) };
    }
}

fn new_process(name: &str, args: &str) -> Result<Arc<Process>, &'static str> {
    let cache = VMA_CACHE.call_once(|| Arc::new(VmaCache::new())).clone();
    let mm = Mm::new(cache).map_err(|_| "out of memory for an address space")?;
    // `pervma=off` on the kernel command line: every fault takes mmap_lock
    // (the baseline the benchmark compares with; SET_PER_VMA changes it at
    // run time).
    if crate::BOOT.get().and_then(|b| b.cmdline.get("pervma")) == Some("off") {
        mm.set_per_vma_lock(false);
    }
    // `user.max_frames=N`: no process may have more than N resident pages
    // (a fault past it ends the process as out of memory).
    if let Some(n) = crate::BOOT
        .get()
        .and_then(|b| b.cmdline.get("user.max_frames"))
        .and_then(|v| v.parse().ok())
    {
        mm.set_frame_limit(n);
    }
    let root = mm.page_table_root();
    // Share the kernel half: PDPTs for every kernel slot exist from boot.
    // Plain u64 entries: the kernel's table is an `x86_64` `PageTable`, the
    // process's is `mm`'s table of atomics, and a u64 is what both are in
    // memory.
    let kernel = phys_to_virt(paging::kernel_pml4()) as *const u64;
    let user = phys_to_virt(root) as *mut u64;
    for i in 256..512 {
        // SAFETY: both are page-table frames reached through the direct map;
        // the new table is not yet in use anywhere.
        unsafe { user.add(i).write_volatile(kernel.add(i).read_volatile()) };
    }
    Ok(Arc::new(Process {
        id: NEXT_PID.fetch_add(1, Ordering::Relaxed),
        name: String::from(name),
        args: String::from(args),
        mm_ptr: mm.as_ptr(),
        mm: SpinLock::new(Some(mm)),
        root,
        threads: SpinLock::new(Vec::new()),
        live: AtomicUsize::new(0),
        killed: AtomicBool::new(false),
        exit_code: AtomicI32::new(0),
        fatal_fault: AtomicU64::new(0),
        done: AtomicBool::new(false),
        exited: WaitQueue::new(),
    }))
}

/// Most threads a process may have at once, counting those that exited but
/// were not yet reaped (each keeps its kernel stack until its `THREAD_JOIN`
/// or the end of the process). A process spawning threads in a loop gets
/// `EAGAIN` here, long before kernel stacks or the heap run out.
pub const MAX_THREADS: usize = abi::thread::MAX_THREADS;

/// Start a thread of `p` that enters user mode at `rip` with `rsp`.
/// `EAGAIN`: `p` has `MAX_THREADS` already; `ENOMEM`: out of memory.
pub fn spawn_thread(
    p: &Arc<Process>,
    rip: u64,
    rsp: u64,
    arg: u64,
    cpu: Option<usize>,
) -> Result<Arc<Task>, Errno> {
    // Cheap refusal first, so a process hammering the limit costs no stack.
    if p.threads.lock().len() >= MAX_THREADS {
        return Err(Errno::EAGAIN);
    }
    let state = ThreadState {
        start: Some((rip, rsp, arg)),
        ..ThreadState::default()
    };
    let t = sched::new_user_task(&p.name, p.clone(), state, start_thread).ok_or(Errno::ENOMEM)?;
    // The check that counts: under the lock, so threads spawning at once
    // cannot all slip under the limit. A task refused here never ran and is
    // dropped (with its stack) after the lock is released.
    add_thread(p, &t, MAX_THREADS)?;
    // Live before it can run and exit. The caller is a live thread of `p`,
    // so `live` is not zero and the address space is still there.
    p.live.fetch_add(1, Ordering::SeqCst);
    sched::start_user(&t, cpu);
    Ok(t)
}

/// List `t` as a thread of `p` unless `p` has `max` threads already.
fn add_thread(p: &Process, t: &Arc<Task>, max: usize) -> Result<(), Errno> {
    let mut threads = p.threads.lock();
    if threads.len() >= max {
        return Err(Errno::EAGAIN);
    }
    threads.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
    threads.push(Thread {
        task: t.clone(),
        joining: false,
    });
    Ok(())
}

/// `THREAD_JOIN`: wait until thread `tid` of `p` has exited, reap it and
/// return its exit code. `ESRCH`: no such thread (or reaped already);
/// `EBUSY`: another thread is joining it; `EINTR`: the process is being
/// killed (the caller leaves before it sees that).
pub fn join_thread(p: &Process, tid: u64) -> Result<i32, Errno> {
    let task = {
        let mut threads = p.threads.lock();
        let t = threads
            .iter_mut()
            .find(|t| t.task.id == tid)
            .ok_or(Errno::ESRCH)?;
        if t.joining {
            return Err(Errno::EBUSY);
        }
        t.joining = true;
        t.task.clone()
    };
    // SeqCst: pairs with `kill_process` (see there).
    let code = sched::join_unless(&task, || p.killed.load(Ordering::SeqCst));
    let mut threads = p.threads.lock();
    // Nobody else removes a thread while it is claimed for joining.
    let i = threads
        .iter()
        .position(|t| t.task.id == tid)
        .expect("a thread being joined left its process's list");
    match code {
        Some(code) => {
            // The reap: the list's reference goes here and ours on return;
            // the CPU that ran the thread drops the last one once it has
            // switched away from it, freeing task and kernel stack.
            threads.swap_remove(i);
            Ok(code as i32)
        }
        None => {
            threads[i].joining = false;
            Err(Errno::EINTR)
        }
    }
}

/// Threads not yet reaped (tests).
pub fn thread_count(p: &Process) -> usize {
    p.threads.lock().len()
}

/// A spawned thread's kernel entry. It never returns, so it captures
/// nothing (its start is in its `ThreadState`), and a kill that came before
/// it ever ran ends it here.
fn start_thread() {
    check_killed();
    let start = thread_state().start.take();
    let (rip, rsp, arg) = start.expect("a thread without a start");
    entry::to_user(rip, rsp, arg, 0, 0)
}

fn program(name: &str) -> Option<&'static [u8]> {
    PROGRAMS.iter().find(|(n, _)| *n == name).map(|p| p.1)
}

/// A program's first thread: load the program, then enter it. Captures
/// nothing, as `start_thread`.
fn start_main_thread() {
    let p = current_process();
    // Running on the new address space (the scheduler loaded it).
    let loaded = p.with_mm(|mm| -> Result<u64, &'static str> {
        let image = program(&p.name).ok_or("no such program")?;
        let entry = elf::load(image, mm)?;
        mm.map(
            MapAt::Fixed(STACK_TOP - STACK_SIZE),
            STACK_SIZE,
            Prot::RW.bits(),
        )
        .map_err(|_| "no room for the stack")?;
        Ok(entry)
    });
    let err = match loaded {
        Some(Ok(entry)) => entry::to_user(entry, STACK_TOP, 0, 0, 0),
        Some(Err(e)) => e,
        None => "the process is gone",
    };
    crate::error!("process {} '{}': cannot start: {}", p.id, p.name, err);
    kill_process(p, abi::thread::EXIT_CODE_CANNOT_START);
    thread_exit(abi::thread::EXIT_CODE_CANNOT_START.into())
}

/// Start program `name` with argument string `args`.
pub fn spawn(name: &str, args: &str) -> Result<Arc<Process>, &'static str> {
    program(name).ok_or("no such program")?;
    let p = new_process(name, args)?;
    let t = sched::new_user_task(name, p.clone(), ThreadState::default(), start_main_thread)
        .ok_or("out of memory for a thread")?;
    add_thread(&p, &t, 1).map_err(|_| "out of memory for a thread")?;
    p.live.fetch_add(1, Ordering::SeqCst);
    sched::start_user(&t, None);
    Ok(p)
}

/// Wait for a process to end; its exit code.
pub fn wait(p: &Process) -> i32 {
    p.exited.wait_until(|| p.done.load(Ordering::Acquire));
    p.exit_code.load(Ordering::Relaxed)
}

/// `wait`, giving up after `timeout_ns` (None): for tests, where a process
/// that does not end is a failure with a name, not a hang.
pub fn wait_timeout(p: &Process, timeout_ns: u64) -> Option<i32> {
    let deadline = crate::time::uptime_ns().saturating_add(timeout_ns);
    while !p.done.load(Ordering::Acquire) {
        if crate::time::uptime_ns() >= deadline {
            return None;
        }
        sched::sleep_ns(1_000_000);
    }
    Some(p.exit_code.load(Ordering::Relaxed))
}

/// After the process has ended (`wait`): reap the threads nobody joined.
/// Their kernel stacks go when the last `Arc` does; this also breaks the
/// cycle between a process and the tasks that point back at it.
pub fn reap(p: &Process) {
    debug_assert!(p.done.load(Ordering::Acquire));
    let threads = core::mem::take(&mut *p.threads.lock());
    for t in &threads {
        sched::join(&t.task);
    }
}

/// Run a program to completion; its exit code.
pub fn run(name: &str, args: &str) -> Result<i32, &'static str> {
    let p = spawn(name, args)?;
    let code = wait(&p);
    reap(&p);
    Ok(code)
}

/// End the whole process with `code` (EXIT, a fatal fault, the kernel).
///
/// Every thread is woken wherever it sleeps. A thread in `THREAD_JOIN` or
/// `NANOSLEEP` tests `killed` and returns, and leaves on its way back to
/// user mode; one in any other kernel wait (a lock) takes it as a spurious
/// wakeup, which every wait loop tolerates, sleeps again until that short
/// wait ends, and then leaves. A running thread leaves at its next return to
/// user mode (the timer tick makes sure there is one). Task context only:
/// it takes the thread list's lock, which interrupts never take.
pub fn kill_process(p: &Process, code: i32) {
    if !p.killed.swap(true, Ordering::SeqCst) {
        p.exit_code.store(code, Ordering::Relaxed);
    }
    // The swap above (SeqCst) before each `wake` (a SeqCst compare-exchange
    // of the thread's state) pairs with the sleeper's store of Blocked and
    // its SeqCst load of `killed`: either the sleeper sees `killed`, or we
    // see it Blocked and wake it. A thread spawned after this loop has not
    // slept yet, and tests `killed` before it does.
    for t in p.threads.lock().iter() {
        sched::wake(&t.task);
    }
}

/// End the current user thread. The last thread out tears the address
/// space down.
pub fn thread_exit(code: i64) -> ! {
    let me = current_thread();
    let p = current_process().clone();
    // Leave the address space first: from here on this thread runs on the
    // kernel's table wherever it is scheduled, so once every thread has done
    // this (`live` reaches zero) no CPU can be using the process's tables.
    me.left_mm.store(true, Ordering::SeqCst);
    // Interrupts off so no switch sees a half-done change (the scheduler
    // reloads CR3).
    let irq = cpu::irq_save();
    crate::mm_platform::note_loaded_root(percpu::cpu_id(), paging::kernel_pml4());
    // SAFETY: the kernel's table maps everything kernel code uses.
    unsafe { cpu::write_cr3(paging::kernel_pml4()) };
    cpu::irq_restore(irq);
    if p.live.fetch_sub(1, Ordering::SeqCst) == 1 {
        let mm = p.mm.lock().take();
        drop(mm);
        p.done.store(true, Ordering::Release);
        p.exited.wake_all();
    }
    drop(p);
    sched::exit(code)
}

/// On every return to user mode: leave if the process is being killed.
pub fn check_killed() {
    if let Some(p) = &current_thread().user
        && p.killed.load(Ordering::Relaxed)
    {
        cpu::enable_interrupts();
        thread_exit(-1);
    }
}

/// The `TrapFrame` as an array, to save and restore a whole user context.
pub fn save_frame(f: &TrapFrame) -> SavedFrame {
    // SAFETY: TrapFrame is repr(C) with 22 u64 fields.
    SavedFrame(unsafe { core::mem::transmute_copy(f) })
}

pub fn restore_frame(f: &mut TrapFrame, s: &SavedFrame) {
    // SAFETY: as above.
    *f = unsafe { core::mem::transmute_copy(&s.0) };
}

/// Like [`run`], but keeps the ended process for a look at how it ended
/// (its exit code, `fault::fatal_fault`).
pub fn run_process(name: &str, args: &str) -> Result<Arc<Process>, &'static str> {
    let p = spawn(name, args)?;
    wait(&p);
    reap(&p);
    Ok(p)
}
