//! ACPI tables, read with the `acpi` crate: which CPUs exist (the MADT) and
//! where the local APICs are.

use alloc::vec::Vec;
use core::ptr::NonNull;

use acpi::{AcpiHandler, AcpiTables, PhysicalMapping, platform::ProcessorState};

use crate::memory::phys_to_virt;

/// All of physical memory is direct-mapped, so "mapping" a table is pointer
/// arithmetic and unmapping is nothing.
#[derive(Clone, Copy)]
struct DirectMap;

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt =
            NonNull::new(phys_to_virt(physical_address as u64) as *mut T).expect("null ACPI table");
        // SAFETY: the direct map covers all RAM and the low 4 GiB, where
        // firmware places ACPI tables; the mapping is valid for `size` bytes
        // for as long as the kernel runs.
        unsafe { PhysicalMapping::new(physical_address, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

pub struct Cpus {
    /// Local APIC IDs, boot CPU first, then the APs in MADT order.
    pub apic_ids: Vec<u32>,
}

pub fn cpus(rsdp: u64) -> Cpus {
    // SAFETY: `rsdp` is the RSDP address the PVH loader gave us.
    let tables = unsafe { AcpiTables::from_rsdp(DirectMap, rsdp as usize) }
        .expect("cannot read ACPI tables");
    let info = tables.platform_info().expect("cannot read the MADT");
    let procs = info.processor_info.expect("MADT lists no processors");
    let mut apic_ids = alloc::vec![procs.boot_processor.local_apic_id];
    for p in procs.application_processors.iter() {
        if p.state != ProcessorState::Disabled {
            apic_ids.push(p.local_apic_id);
        }
    }
    Cpus { apic_ids }
}
