//! Kernel panics: report loudly, stop every CPU, fail the run.
//!
//! The report names the CPU, what it was running (the in-kernel test, until
//! there are tasks) and a backtrace. Other CPUs are stopped with an NMI so
//! they cannot scribble over the report. If a test was running it is marked
//! `not ok` in the KTAP output before QEMU exits with the failure status.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::{apic, cpu, percpu};
use crate::{backtrace, ktest, println_raw, qemu};

static PANICKING: AtomicBool = AtomicBool::new(false);

pub fn panicking() -> bool {
    PANICKING.load(Ordering::Relaxed)
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cpu::disable_interrupts();
    let first = !PANICKING.swap(true, Ordering::SeqCst);
    println_raw!(
        "KERNEL PANIC on cpu{} while running {}: {}",
        percpu::cpu_id(),
        ktest::current_name().unwrap_or("the kernel"),
        info
    );
    if !first {
        // A panic while reporting a panic: say so and leave.
        qemu::exit(qemu::FAILURE);
    }
    backtrace::print_here();
    fail_and_stop("panic");
}

/// Stop the other CPUs, fail the running test, exit QEMU with failure.
pub fn fail_and_stop(reason: &str) -> ! {
    PANICKING.store(true, Ordering::SeqCst);
    if percpu::online_count() > 1 {
        apic::send_nmi_all_but_self();
    }
    ktest::fail_current(reason);
    qemu::exit(qemu::FAILURE)
}
