//! What the PVH boot protocol hands us: `hvm_start_info`.
//!
//! Layout from Xen's `arch-x86/hvm/start_info.h` (version 1 adds the memory
//! map). QEMU fills it from its e820 table and ACPI tables.

use alloc::string::String;
use alloc::vec::Vec;

use super::phys_to_virt;

const MAGIC: u32 = 0x336E_C578;

#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MemoryRegion {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
    reserved: u32,
}

pub const E820_RAM: u32 = 1;

pub struct BootInfo {
    pub memory_map: Vec<MemoryRegion>,
    pub rsdp: u64,
    pub cmdline: String,
}

/// Copy of the memory map, taken before the heap exists (so no allocation).
pub struct EarlyMemoryMap {
    pub regions: [MemoryRegion; 64],
    pub len: usize,
}

fn start_info(phys: u64) -> &'static StartInfo {
    // SAFETY: QEMU passes the physical address of a valid start_info in low
    // memory, which the boot page tables direct-map; it is never freed.
    let si = unsafe { &*(phys_to_virt(phys) as *const StartInfo) };
    assert!(
        si.magic == MAGIC,
        "PVH start_info has a bad magic number {:#x}",
        si.magic
    );
    assert!(
        si.version >= 1,
        "PVH start_info version {} has no memory map",
        si.version
    );
    si
}

pub fn early_memory_map(phys: u64) -> EarlyMemoryMap {
    let si = start_info(phys);
    let mut map = EarlyMemoryMap {
        regions: [MemoryRegion {
            addr: 0,
            size: 0,
            kind: 0,
            reserved: 0,
        }; 64],
        len: 0,
    };
    let n = (si.memmap_entries as usize).min(map.regions.len());
    // SAFETY: the loader guarantees `memmap_entries` entries at memmap_paddr.
    let entries = unsafe {
        core::slice::from_raw_parts(phys_to_virt(si.memmap_paddr) as *const MemoryRegion, n)
    };
    map.regions[..n].copy_from_slice(entries);
    map.len = n;
    map
}

pub fn parse(phys: u64) -> BootInfo {
    let si = start_info(phys);
    let early = early_memory_map(phys);
    let mut cmdline = String::new();
    if si.cmdline_paddr != 0 {
        let p = phys_to_virt(si.cmdline_paddr);
        let mut i = 0;
        loop {
            // SAFETY: a NUL-terminated string in low memory, as the protocol says.
            let b = unsafe { *p.add(i) };
            if b == 0 || i >= 4096 {
                break;
            }
            cmdline.push(b as char);
            i += 1;
        }
    }
    BootInfo {
        memory_map: early.regions[..early.len].to_vec(),
        rsdp: si.rsdp_paddr,
        cmdline,
    }
}
