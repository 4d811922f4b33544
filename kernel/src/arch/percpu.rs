//! Per-CPU data, reached through the GS base.
//!
//! Every CPU's `GS_BASE` MSR points at its own `PerCpu`; the first word of it
//! points at itself, so `this()` is a single `mov rax, gs:[0]`. The structs
//! live in one static array so any CPU can also look at another's (`get`).
//! Fields touched by other CPUs are atomics; fields only the owner touches
//! are `Cell`-like through `UnsafeCell` and documented as owner-only.
//!
//! A task can be preempted between any two instructions and resume on
//! another CPU. So "read `gs:0`, then use the pointer" is only right while
//! the task cannot move (interrupts or preemption off): otherwise the second
//! step touches the CPU it *was* on. The state a preemptible task reads or
//! changes here (its current-task pointer, the preempt count, the interrupt
//! depth, `need_resched`) therefore has its own accessor that is one `gs:`-relative
//! instruction, as Linux's `this_cpu_*` and `current` are: whichever CPU runs
//! that instruction, it reads or changes that CPU's own field. Those
//! accessors are hand-written `asm!` for that reason: the `x86_64` crate
//! writes and reads the GS base MSRs (used here) but has no `gs:`-relative
//! loads and stores.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::{GsBase, KernelGsBase};
use x86_64::structures::gdt::GlobalDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;

pub const MAX_CPUS: usize = 64;

#[repr(C)]
pub struct PerCpu {
    /// gs:0, points at this struct. Offset used by assembly.
    self_ptr: AtomicU64,
    /// gs:8, the stack pointer a `call_on_stack_recoverable` returns to if
    /// the callee overflows its stack (0 = not armed). Offset used by assembly.
    pub recovery_rsp: AtomicU64,
    /// gs:16, the kernel stack top of the running user thread: `syscall`
    /// entry switches to it. Offset used by assembly.
    pub syscall_kernel_rsp: AtomicU64,
    /// gs:24, scratch for the user stack pointer during `syscall` entry.
    pub syscall_user_rsp: AtomicU64,
    /// gs:32, the running task (`*const sched::Task`), written by the context
    /// switch with interrupts off; read by `sched::current()` in one load.
    pub current_task: AtomicUsize,
    /// gs:40, preemption-disable nesting (see `sched::preempt`). Changed only
    /// by this CPU, with one `inc`/`xadd` on `gs:`; other CPUs may read it.
    pub preempt_count: AtomicUsize,
    /// gs:48, interrupt nesting depth. Changed only by this CPU's interrupt
    /// entry and exit (interrupts off); read in one load by `irq_depth()`.
    pub irq_depth: AtomicUsize,
    /// gs:56, set when this CPU should switch tasks at its next chance (a
    /// task is waiting); changed with interrupts off, read as a hint in one
    /// load by `need_resched()`.
    pub need_resched: AtomicBool,
    pub cpu_id: u32,
    pub apic_id: AtomicU32,
    pub online: AtomicBool,
    /// Local APIC timer interrupts taken.
    pub ticks: AtomicU64,
    /// CR2 of the last kernel fault fixed up through the exception table.
    pub last_fixup_cr2: AtomicU64,
    /// Cross-CPU function calls queued for this CPU (see `smp::call`).
    pub call_queue: super::smp::CallQueue,
    /// Owner-only: this CPU's TSS and GDT (the TSS descriptor is per CPU).
    pub tss: UnsafeCell<TaskStateSegment>,
    pub gdt: UnsafeCell<GlobalDescriptorTable>,
}

// SAFETY: cross-CPU fields are atomics; the `UnsafeCell` fields are written
// only by their own CPU during its bring-up, before anything else reads them.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new(cpu_id: u32) -> Self {
        PerCpu {
            self_ptr: AtomicU64::new(0),
            recovery_rsp: AtomicU64::new(0),
            syscall_kernel_rsp: AtomicU64::new(0),
            syscall_user_rsp: AtomicU64::new(0),
            current_task: AtomicUsize::new(0),
            preempt_count: AtomicUsize::new(0),
            irq_depth: AtomicUsize::new(0),
            need_resched: AtomicBool::new(false),
            cpu_id,
            apic_id: AtomicU32::new(u32::MAX),
            online: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            last_fixup_cr2: AtomicU64::new(0),
            call_queue: super::smp::CallQueue::new(),
            tss: UnsafeCell::new(TaskStateSegment::new()),
            gdt: UnsafeCell::new(GlobalDescriptorTable::empty()),
        }
    }
}

/// Offsets of the fields that assembly reaches through `gs:`. The entry code
/// (`trap.rs`, `user/entry.rs`) writes the first four as literal numbers.
pub const GS_SELF: usize = 0;
pub const GS_RECOVERY_RSP: usize = 8;
pub const GS_SYSCALL_KERNEL_RSP: usize = 16;
pub const GS_SYSCALL_USER_RSP: usize = 24;
pub const GS_CURRENT_TASK: usize = 32;
pub const GS_PREEMPT_COUNT: usize = 40;
pub const GS_IRQ_DEPTH: usize = 48;
pub const GS_NEED_RESCHED: usize = 56;

const _: () = {
    assert!(offset_of!(PerCpu, self_ptr) == GS_SELF);
    assert!(offset_of!(PerCpu, recovery_rsp) == GS_RECOVERY_RSP);
    assert!(offset_of!(PerCpu, syscall_kernel_rsp) == GS_SYSCALL_KERNEL_RSP);
    assert!(offset_of!(PerCpu, syscall_user_rsp) == GS_SYSCALL_USER_RSP);
    assert!(offset_of!(PerCpu, current_task) == GS_CURRENT_TASK);
    assert!(offset_of!(PerCpu, preempt_count) == GS_PREEMPT_COUNT);
    assert!(offset_of!(PerCpu, irq_depth) == GS_IRQ_DEPTH);
    assert!(offset_of!(PerCpu, need_resched) == GS_NEED_RESCHED);
    assert!(size_of::<AtomicBool>() == 1);
    // The single-instruction accessors below work on whole 64-bit words.
    assert!(size_of::<AtomicUsize>() == 8);
};

static CPUS: [PerCpu; MAX_CPUS] = {
    let mut cpus = [const { PerCpu::new(0) }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        cpus[i] = PerCpu::new(i as u32);
        i += 1;
    }
    cpus
};

/// Set when the boot CPU's GS base is installed; before that `this()` would
/// read garbage, so `cpu_id()` answers 0.
static READY: AtomicBool = AtomicBool::new(false);

/// Point this CPU's GS base at `CPUS[cpu]`. Called once per CPU at bring-up.
pub fn install(cpu: usize) {
    let pc = &CPUS[cpu];
    let addr = pc as *const PerCpu as u64;
    pc.self_ptr.store(addr, Ordering::Relaxed);
    // GS base now points at a static `PerCpu`, which is what every `gs:`
    // access in the kernel expects; KERNEL_GS_BASE is zero until user mode
    // exists (swapgs swaps it in).
    GsBase::write(VirtAddr::new(addr));
    KernelGsBase::write(VirtAddr::zero());
    READY.store(true, Ordering::Release);
}

/// This CPU's data.
#[inline]
pub fn this() -> &'static PerCpu {
    if !READY.load(Ordering::Acquire) {
        return &CPUS[0];
    }
    let ptr: u64;
    // SAFETY: gs:0 holds the address of this CPU's static `PerCpu` (see
    // `install`); reading it has no side effects.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags))
    };
    // SAFETY: the pointer is to an element of the static `CPUS` array.
    unsafe { &*(ptr as *const PerCpu) }
}

#[inline]
pub fn cpu_id() -> usize {
    this().cpu_id as usize
}

/// True once this CPU's GS base may be used (see `READY`); before that the
/// accessors below use CPU 0's fields directly (only the boot CPU runs).
#[inline]
fn gs_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// The running task's pointer (0 before the scheduler starts on this CPU).
/// One load, so the answer is the task that executes it, wherever it runs.
#[inline]
pub fn current_task() -> usize {
    if !gs_ready() {
        return CPUS[0].current_task.load(Ordering::Relaxed);
    }
    let v: usize;
    // SAFETY: GS points at this CPU's `PerCpu` (see `install`); the offset
    // is that of `current_task` (checked above). A plain load of an aligned
    // word, which other CPUs only read.
    unsafe {
        asm!("mov {}, gs:[{off}]", out(reg) v, off = const GS_CURRENT_TASK,
             options(nostack, readonly, preserves_flags))
    };
    v
}

/// Set the running task. Interrupts must be off (the context switch), so the
/// CPU that stores is the one that runs `task` next.
#[inline]
pub fn set_current_task(task: usize) {
    debug_assert!(!super::cpu::interrupts_enabled());
    this().current_task.store(task, Ordering::Release);
}

/// This CPU's preempt count, in one load.
#[inline]
pub fn preempt_count() -> usize {
    if !gs_ready() {
        return CPUS[0].preempt_count.load(Ordering::Relaxed);
    }
    let v: usize;
    // SAFETY: as in `current_task`; the field is `preempt_count`.
    unsafe {
        asm!("mov {}, gs:[{off}]", out(reg) v, off = const GS_PREEMPT_COUNT,
             options(nostack, readonly, preserves_flags))
    };
    v
}

/// Raise this CPU's preempt count: one `inc` on `gs:`, so an interrupt (and
/// a migration) can come before or after it, never between a read of the
/// CPU and the increment. No `lock`: only this CPU writes its count. The asm
/// is also a compiler barrier (no `nomem`), so the protected code cannot be
/// moved above it.
#[inline]
pub fn preempt_count_inc() {
    if !gs_ready() {
        CPUS[0].preempt_count.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // SAFETY: as in `current_task`; an aligned word only this CPU writes.
    unsafe {
        asm!("inc qword ptr gs:[{off}]", off = const GS_PREEMPT_COUNT,
             options(nostack))
    };
}

/// Lower this CPU's preempt count in one `xadd` on `gs:`; returns the value
/// before. A compiler barrier, like `preempt_count_inc`.
#[inline]
pub fn preempt_count_dec() -> usize {
    if !gs_ready() {
        return CPUS[0].preempt_count.fetch_sub(1, Ordering::Relaxed);
    }
    let mut v: usize = usize::MAX; // -1
    // SAFETY: as in `preempt_count_inc`.
    unsafe {
        asm!("xadd qword ptr gs:[{off}], {v}", v = inout(reg) v,
             off = const GS_PREEMPT_COUNT, options(nostack))
    };
    v
}

/// This CPU's interrupt nesting depth, in one load (non-zero: in an
/// interrupt handler). Interrupt entry and exit change it with interrupts
/// off, so they may use `this()`.
#[inline]
pub fn irq_depth() -> usize {
    if !gs_ready() {
        return CPUS[0].irq_depth.load(Ordering::Relaxed);
    }
    let v: usize;
    // SAFETY: as in `current_task`; the field is `irq_depth`.
    unsafe {
        asm!("mov {}, gs:[{off}]", out(reg) v, off = const GS_IRQ_DEPTH,
             options(nostack, readonly, preserves_flags))
    };
    v
}

/// This CPU's `need_resched`, in one load. A task that may move can only
/// use it as a hint (it may be stale the moment after), to decide whether
/// to look again with interrupts off.
#[inline]
pub fn need_resched() -> bool {
    if !gs_ready() {
        return CPUS[0].need_resched.load(Ordering::Relaxed);
    }
    let v: u32;
    // SAFETY: as in `current_task`; the field is the byte `need_resched`.
    unsafe {
        asm!("movzx {:e}, byte ptr gs:[{off}]", out(reg) v, off = const GS_NEED_RESCHED,
             options(nostack, readonly, preserves_flags))
    };
    v != 0
}

pub fn get(cpu: usize) -> &'static PerCpu {
    &CPUS[cpu]
}

/// CPUs that have finished bring-up.
pub fn online_cpus() -> impl Iterator<Item = &'static PerCpu> {
    CPUS.iter().filter(|c| c.online.load(Ordering::Acquire))
}

pub fn online_count() -> usize {
    online_cpus().count()
}
