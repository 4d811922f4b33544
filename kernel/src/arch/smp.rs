//! Multiprocessing: starting the application processors, and running code on
//! other CPUs.
//!
//! Two ways to run code elsewhere:
//! - `call_on_cpus` runs a function in interrupt context on chosen CPUs and
//!   waits for all of them (TLB shootdown is built on it). Each target has
//!   one request slot per *calling* CPU, so the slots never overflow: a
//!   caller waits for its request before it can post another. While waiting,
//!   the caller answers requests posted to itself, so two CPUs calling each
//!   other at once (even with interrupts off) cannot deadlock.
//!
//! (To run code in task context on chosen CPUs, see `sched::run_on_cpus`.)

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use super::idt::VECTOR_CALL_FUNCTION;
use super::percpu::{self, MAX_CPUS};
use super::{apic, cpu, gdt, idt};
use crate::memory::{kstack::KernelStack, paging, phys_to_virt};

pub struct CallRequest<'a> {
    func: &'a (dyn Fn() + Sync),
    remaining: AtomicUsize,
}

pub struct CallQueue {
    /// Slot c holds the request posted by CPU c, if any.
    slots: [AtomicPtr<CallRequest<'static>>; MAX_CPUS],
}

impl CallQueue {
    pub const fn new() -> Self {
        CallQueue {
            slots: [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS],
        }
    }
}

/// Run every request posted to this CPU (from the IPI handler, or while
/// waiting for our own request).
pub fn handle_call_ipi() {
    for slot in &percpu::this().call_queue.slots {
        // Acquire pairs with the Release in `call_on_cpus`: the request's
        // fields are visible before we use them.
        let req = slot.swap(core::ptr::null_mut(), Ordering::Acquire);
        if req.is_null() {
            continue;
        }
        // SAFETY: the caller keeps the request alive until `remaining` is 0,
        // and we decrement it only after the last use.
        let req = unsafe { &*req };
        (req.func)();
        // Release: our side effects of `func` happen before the caller sees
        // the count drop (it loads with Acquire).
        req.remaining.fetch_sub(1, Ordering::Release);
    }
}

/// Run `func` on every CPU in `cpus` (a bitmask) and wait; the calling CPU
/// runs it directly if it is in the set. Must not be called from an
/// interrupt handler.
pub fn call_on_cpus(cpus: u64, func: &(dyn Fn() + Sync)) {
    // Stay on this CPU: our request slot on each target is indexed by it.
    let _no_preempt = crate::sched::preempt::guard();
    let me = percpu::cpu_id();
    let targets = cpus & !(1 << me);
    let req = CallRequest {
        func,
        remaining: AtomicUsize::new(targets.count_ones() as usize),
    };
    // SAFETY (lifetime): we wait below until every target has finished with
    // `req`, so the 'static the slot type claims is never relied on.
    let ptr = &req as *const CallRequest as *mut CallRequest<'static>;
    for cpu in (0..MAX_CPUS).filter(|c| targets & (1 << c) != 0) {
        let target = percpu::get(cpu);
        // Release pairs with the Acquire swap in `handle_call_ipi`.
        let prev = target.call_queue.slots[me].swap(ptr, Ordering::Release);
        assert!(prev.is_null(), "cpu{me} posted a second call to cpu{cpu}");
        apic::send_ipi(target.apic_id.load(Ordering::Relaxed), VECTOR_CALL_FUNCTION);
    }
    if cpus & (1 << me) != 0 {
        func();
    }
    while req.remaining.load(Ordering::Acquire) != 0 {
        handle_call_ipi();
        cpu::pause();
    }
}

/// Bitmask of the online CPUs.
pub fn online_mask() -> u64 {
    percpu::online_cpus().fold(0, |m, c| m | (1 << c.cpu_id))
}

pub fn call_on_all_cpus(func: &(dyn Fn() + Sync)) {
    call_on_cpus(online_mask() | (1 << percpu::cpu_id()), func);
}

/// Per-CPU setup shared by the boot CPU and the APs.
pub fn init_this_cpu(cpu: usize) {
    percpu::install(cpu);
    let ist = core::array::from_fn(|_| {
        KernelStack::with_size(16 << 10)
            .expect("no memory for IST stacks")
            .leak()
    });
    gdt::init_this_cpu(percpu::this(), ist);
    idt::load_idt();
    apic::init_this_cpu();
    crate::user::entry::init_this_cpu();
    cpu::enable_user_fpu();
    percpu::this().apic_id.store(apic::id(), Ordering::Relaxed);
}

/// Entry of each AP, from the trampoline, on its own kernel stack.
extern "C" fn ap_entry(cpu: u64) -> ! {
    init_this_cpu(cpu as usize);
    apic::start_timer();
    crate::debug!("online (APIC ID {})", apic::id());
    percpu::this().online.store(true, Ordering::Release);
    crate::sched::init_ap_and_idle()
}

/// Start every AP listed in the MADT; returns how many came up.
pub fn start_aps(apic_ids: &[u32]) -> usize {
    assert!(apic_ids.len() <= MAX_CPUS, "more than {MAX_CPUS} CPUs");
    // SAFETY: the trampoline section is `__trampoline_end - __trampoline_start`
    // bytes of position-fixed code for 0x8000; 0x8000.. is below 1 MiB, never
    // handed out by the frame allocator, and direct-mapped.
    let (start, len) = unsafe {
        let s = &boot::__trampoline_start as *const u8;
        (
            s,
            (&boot::__trampoline_end as *const u8).offset_from(s) as usize,
        )
    };
    let dest = phys_to_virt(boot::AP_TRAMPOLINE_PHYS);
    // SAFETY: see above; the destination does not overlap the kernel image.
    unsafe { core::ptr::copy_nonoverlapping(start, dest, len) };
    let field = |sym: &u8| {
        let off = sym as *const u8 as usize - start as usize;
        dest.wrapping_add(off) as *mut u64
    };
    // SAFETY: the four data words lie inside the copied trampoline.
    let (cr3, stack, entry, arg) = unsafe {
        (
            field(&boot::ap_tramp_cr3),
            field(&boot::ap_tramp_stack),
            field(&boot::ap_tramp_entry),
            field(&boot::ap_tramp_arg),
        )
    };

    let mut started = 0;
    for (cpu, &apic_id) in apic_ids.iter().enumerate().skip(1) {
        let top = KernelStack::new().expect("no memory for AP stacks").leak();
        // SAFETY: plain stores to the trampoline's data words; the AP reads
        // them only after the STARTUP IPI below (the IPI orders them).
        unsafe {
            cr3.write_volatile(paging::kernel_pml4());
            stack.write_volatile(top);
            entry.write_volatile(ap_entry as *const () as u64);
            arg.write_volatile(cpu as u64);
        }
        percpu::get(cpu).apic_id.store(apic_id, Ordering::Relaxed);
        apic::start_ap(apic_id, (boot::AP_TRAMPOLINE_PHYS >> 12) as u8);
        let deadline = crate::time::uptime_ns() + 1_000_000_000;
        while !percpu::get(cpu).online.load(Ordering::Acquire)
            && crate::time::uptime_ns() < deadline
        {
            cpu::pause();
        }
        if percpu::get(cpu).online.load(Ordering::Acquire) {
            started += 1;
        } else {
            crate::error!("cpu{cpu} (APIC ID {apic_id}) did not come up");
        }
    }
    // Every AP runs on the kernel tables now: drop the identity map.
    paging::drop_identity_map();
    call_on_all_cpus(&paging::flush_tlb_local);
    started
}
