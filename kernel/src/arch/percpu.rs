//! Per-CPU data, reached through the GS base.
//!
//! Every CPU's `GS_BASE` MSR points at its own `PerCpu`; the first word of it
//! points at itself, so `this()` is a single `mov rax, gs:[0]`. The structs
//! live in one static array so any CPU can also look at another's (`get`).
//! Fields touched by other CPUs are atomics; fields only the owner touches
//! are `Cell`-like through `UnsafeCell` and documented as owner-only.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::gdt::Tss;

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
    pub cpu_id: u32,
    pub apic_id: AtomicU32,
    pub online: AtomicBool,
    /// Local APIC timer interrupts taken.
    pub ticks: AtomicU64,
    /// CR2 of the last kernel fault fixed up through the exception table.
    pub last_fixup_cr2: AtomicU64,
    /// Cross-CPU function calls queued for this CPU (see `smp::call`).
    pub call_queue: super::smp::CallQueue,
    /// Interrupt nesting depth (owner only).
    pub irq_depth: AtomicUsize,
    /// Preemption-disable nesting (owner only; see `sched::preempt`).
    pub preempt_count: AtomicUsize,
    /// Owner-only: this CPU's TSS and GDT (the TSS descriptor is per CPU).
    pub tss: UnsafeCell<Tss>,
    pub gdt: UnsafeCell<[u64; 7]>,
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
            cpu_id,
            apic_id: AtomicU32::new(u32::MAX),
            online: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            last_fixup_cr2: AtomicU64::new(0),
            call_queue: super::smp::CallQueue::new(),
            irq_depth: AtomicUsize::new(0),
            preempt_count: AtomicUsize::new(0),
            tss: UnsafeCell::new(Tss::new()),
            gdt: UnsafeCell::new([0; 7]),
        }
    }
}

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
    // SAFETY: GS base now points at a static `PerCpu`, which is what every
    // `gs:` access in the kernel expects; KERNEL_GS_BASE is zero until user
    // mode exists (swapgs swaps it in).
    unsafe {
        super::cpu::wrmsr(super::cpu::MSR_GS_BASE, addr);
        super::cpu::wrmsr(super::cpu::MSR_KERNEL_GS_BASE, 0);
    }
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
