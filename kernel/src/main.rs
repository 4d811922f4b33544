//! A teaching kernel whose page faults take no global lock.
//!
//! Boot order (see `kernel_main`): console, physical memory, the kernel's own
//! page tables, heap, this CPU's tables (GDT/TSS/IDT/APIC), clocks, then the
//! other CPUs from the ACPI MADT. After that the kernel either runs the
//! in-kernel tests (`mode=test`) or the demo, and leaves QEMU.
#![no_std]
#![no_main]
// `Arc::try_new`: a user thread's task is allocated fallibly.
#![feature(allocator_api)]

extern crate alloc;

mod arch;
mod backtrace;
mod bench;
mod cmdline;
mod console;
mod extable;
mod ktest;
mod lockdep;
mod memory;
mod mm_platform;
mod panic;
mod qemu;
#[cfg(feature = "race-inject")]
mod race;
mod rcu;
mod sched;
mod sync;
mod testing;
mod tests;
mod time;
mod user;

use alloc::string::String;

use arch::{acpi, apic, cpu, idt, percpu, smp};
use memory::{bootinfo, frame, heap, paging};

/// What the boot code handed us, kept for the tests.
pub struct Boot {
    pub info: bootinfo::BootInfo,
    pub madt_cpus: usize,
    pub cmdline: cmdline::Cmdline,
}

pub static BOOT: spin::Once<Boot> = spin::Once::new();

#[unsafe(no_mangle)]
extern "C" fn kernel_main(start_info_phys: u64) -> ! {
    sync::spinlock::init_mode(); // before the first lock is taken
    console::init();
    arch::pic::disable();
    idt::init_idt();
    idt::load_idt(); // exceptions are reported from here on

    // SAFETY: __kernel_end is a linker-script symbol, only its address is used.
    let kernel_end = memory::kernel_symbol_phys(unsafe { &boot::__kernel_end as *const u8 as u64 });
    frame::init(&bootinfo::early_memory_map(start_info_phys), kernel_end);
    paging::init(kernel_end);
    heap::init();

    smp::init_this_cpu(0);
    time::calibrate();
    apic::calibrate_timer();
    apic::start_timer();
    sched::init_boot_cpu();
    percpu::this()
        .online
        .store(true, core::sync::atomic::Ordering::Release);
    cpu::enable_interrupts();

    let info = bootinfo::parse(start_info_phys);
    let cmdline = cmdline::Cmdline::parse(&info.cmdline);
    if cmdline.get("loglevel") == Some("debug") {
        console::set_level(console::Level::Debug);
    }
    info!(
        "teaching kernel booting; command line: \"{}\"",
        info.cmdline
    );
    info!(
        "memory: {} MiB usable, {} frames free; TSC {} MHz; {}",
        (frame::total_count() * 4096) >> 20,
        frame::free_count(),
        time::tsc_per_us(),
        if apic::x2apic() { "x2APIC" } else { "xAPIC" }
    );

    let cpus = acpi::cpus(info.rsdp);
    let madt_cpus = cpus.apic_ids.len();
    let started = smp::start_aps(&cpus.apic_ids);
    info!("{} of {} CPUs online", percpu::online_count(), madt_cpus);
    if started + 1 != madt_cpus {
        warn!(
            "only {} of {} application processors started",
            started,
            madt_cpus - 1
        );
    }

    let mode = String::from(cmdline.get("mode").unwrap_or("run"));
    BOOT.call_once(|| Boot {
        info,
        madt_cpus,
        cmdline,
    });
    let boot = BOOT.get().unwrap();
    if let Some(us) = boot
        .cmdline
        .get("idle_poll_us")
        .and_then(|v| v.parse::<u64>().ok())
    {
        sched::idle_poll::set_max_ns(us.saturating_mul(1000));
    }
    rcu::init();

    match mode.as_str() {
        "bench" => {
            bench::run();
            qemu::exit(qemu::SUCCESS)
        }
        "test" => {
            let ok = ktest::run_all(&boot.cmdline);
            qemu::exit(if ok { qemu::SUCCESS } else { qemu::FAILURE });
        }
        _ => {
            // `prog=NAME` (default: the demo); the program's arguments are
            // everything after ` -- ` on the command line.
            let prog = boot.cmdline.get("prog").unwrap_or("demo");
            let args = boot
                .info
                .cmdline
                .split_once(" -- ")
                .map(|(_, a)| a)
                .unwrap_or("");
            info!("running {prog} {args}");
            mm_platform::phases::set_enabled(boot.cmdline.get("phases") == Some("on"));
            // `phases=sched`: the scheduler's statistics alone.
            sched::stats::set_enabled(matches!(boot.cmdline.get("phases"), Some("on" | "sched")));
            match user::run(prog, args) {
                Ok(code) => {
                    info!("{prog} exited with {code}");
                    mm_platform::phases::report();
                    sched::stats::report();
                    qemu::exit(if code == 0 {
                        qemu::SUCCESS
                    } else {
                        qemu::FAILURE
                    });
                }
                Err(e) => {
                    error!("cannot run {prog}: {e}");
                    qemu::exit(qemu::FAILURE);
                }
            }
        }
    }
}
