//! Boot: the memory map and the CPUs.
use core::sync::atomic::Ordering;

use crate::arch::percpu;
use crate::memory::bootinfo::E820_RAM;
use crate::memory::frame;
use crate::{BOOT, kassert, kassert_eq, ktest};

ktest!(
    fn boot_memory_map_sane() {
        let boot = BOOT.get().unwrap();
        let map = &boot.info.memory_map;
        kassert!(!map.is_empty(), "empty memory map");
        let mut ram: alloc::vec::Vec<_> = map
            .iter()
            .filter(|r| r.kind == E820_RAM)
            .map(|r| (r.addr, r.addr + r.size))
            .collect();
        ram.sort();
        for w in ram.windows(2) {
            kassert!(
                w[0].1 <= w[1].0,
                "RAM regions overlap: {:x?} and {:x?}",
                w[0],
                w[1]
            );
        }
        let ram_bytes: u64 = ram.iter().map(|r| r.1 - r.0).sum();
        kassert!(ram_bytes >= 16 << 20, "only {} bytes of RAM", ram_bytes);
        kassert!(ram.iter().any(|r| r.1 > 0x10_0000), "no RAM above 1 MiB");
        // The allocator manages RAM only, minus the low 1 MiB and the kernel.
        let managed = frame::total_count() as u64 * 4096;
        kassert!(
            managed <= ram_bytes && managed + (64 << 20) >= ram_bytes,
            "allocator manages {} bytes of {} bytes of RAM",
            managed,
            ram_bytes
        );
        kassert!(frame::free_count() <= frame::total_count());
        // If the runner told us the size (-m), the map must agree to within the
        // firmware's reservations.
        if let Some(mib) = boot
            .cmdline
            .get("expect_mem_mib")
            .and_then(|v| v.parse::<u64>().ok())
        {
            kassert!(
                ram_bytes <= mib << 20 && ram_bytes + (16 << 20) >= mib << 20,
                "memory map has {} MiB of RAM, QEMU was given {} MiB",
                ram_bytes >> 20,
                mib
            );
        }
        Ok(())
    }
);

ktest!(
    fn smp_all_cpus_online() {
        let boot = BOOT.get().unwrap();
        let online = percpu::online_count();
        kassert_eq!(online, boot.madt_cpus, "CPUs online vs CPUs in the MADT");
        if let Some(n) = boot
            .cmdline
            .get("expect_cpus")
            .and_then(|v| v.parse::<usize>().ok())
        {
            kassert_eq!(online, n, "CPUs online vs QEMU -smp");
        }
        // Online CPUs are numbered 0..n with no gaps, each with its own APIC ID.
        for (i, c) in percpu::online_cpus().enumerate() {
            kassert_eq!(c.cpu_id as usize, i);
            for d in percpu::online_cpus().skip(i + 1) {
                kassert!(
                    c.apic_id.load(Ordering::Relaxed) != d.apic_id.load(Ordering::Relaxed),
                    "two CPUs share an APIC ID"
                );
            }
        }
        Ok(())
    }
);

ktest!(all_cpus fn percpu_data_distinct(cpu) {
    // Through GS, each CPU must find its own struct, whose number matches
    // the CPU the runner started this on, and whose APIC ID is this CPU's.
    let me = percpu::this();
    kassert_eq!(me.cpu_id as usize, cpu);
    kassert!(core::ptr::eq(me, percpu::get(cpu)), "GS base of cpu{} points at another CPU's data", cpu);
    kassert_eq!(me.apic_id.load(Ordering::Relaxed), crate::arch::apic::id());
    Ok(())
});
