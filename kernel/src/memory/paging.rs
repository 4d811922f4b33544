//! The kernel's page tables.
//!
//! The kernel half (PML4 slots 256..512) is built once at boot and shared by
//! every address space: each slot gets its PDPT now, so later changes below
//! the PML4 (heap growth, new stacks) are seen by all address spaces without
//! touching their PML4s. Changes are serialized by `KERNEL_PT_LOCK`.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{DIRECT_MAP_BASE, KERNEL_VIRT, PAGE_SIZE, frame, phys_to_virt};
use crate::arch::cpu;
use crate::sync::SpinLock;

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
pub const WRITE_THROUGH: u64 = 1 << 3;
pub const NO_CACHE: u64 = 1 << 4;
pub const HUGE: u64 = 1 << 7;
pub const GLOBAL: u64 = 1 << 8;
pub const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

const TWO_MIB: u64 = 2 << 20;

/// Physical address of the kernel's PML4.
static KERNEL_PML4: AtomicU64 = AtomicU64::new(0);
static KERNEL_PT_LOCK: SpinLock<()> = SpinLock::new(());

pub fn kernel_pml4() -> u64 {
    KERNEL_PML4.load(Ordering::Relaxed)
}

fn table(pa: u64) -> &'static mut [u64; 512] {
    // SAFETY: `pa` is a page-table frame (allocated by us or by the boot
    // code) reached through the direct map; callers hold KERNEL_PT_LOCK or
    // run before other CPUs exist.
    unsafe { &mut *(phys_to_virt(pa) as *mut [u64; 512]) }
}

/// Kernel page-table pages allocated since boot (never freed).
static TABLE_FRAMES: AtomicU64 = AtomicU64::new(0);

pub fn kernel_table_frames() -> usize {
    TABLE_FRAMES.load(Ordering::Relaxed) as usize
}

/// The next-level table under `entry`, allocating it if absent.
fn next_table(entry: &mut u64) -> u64 {
    if *entry & PRESENT == 0 {
        let pa = frame::alloc_zeroed().expect("out of memory for kernel page tables");
        TABLE_FRAMES.fetch_add(1, Ordering::Relaxed);
        *entry = pa | PRESENT | WRITABLE;
    }
    assert!(
        *entry & HUGE == 0,
        "kernel mapping collides with a huge page"
    );
    *entry & ADDR_MASK
}

fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 0x1FF) as usize
}

/// Build the kernel page tables and switch to them (boot CPU, once).
pub fn init(kernel_end_phys: u64) {
    let pml4 = frame::alloc_zeroed().expect("no memory for the kernel PML4");
    // APs load this table from 32-bit code through the trampoline.
    assert!(pml4 < (1 << 32), "kernel PML4 above 4 GiB");
    let top = table(pml4);
    for slot in top.iter_mut().skip(256) {
        *slot = frame::alloc_zeroed().expect("no memory for kernel PDPTs") | PRESENT | WRITABLE;
    }

    // Direct map: all RAM, and at least the 4 GiB below, which holds the
    // local APIC and IOAPIC registers (uncached: 3 GiB .. 4 GiB is MMIO).
    let end = frame::max_phys().max(1 << 32).next_multiple_of(TWO_MIB);
    let mut pa = 0;
    while pa < end {
        let mut flags = PRESENT | WRITABLE | HUGE | GLOBAL | NO_EXECUTE;
        if (0xC000_0000..0x1_0000_0000).contains(&pa) {
            flags |= NO_CACHE | WRITE_THROUGH;
        }
        map_2m(pml4, DIRECT_MAP_BASE + pa, pa, flags);
        pa += TWO_MIB;
    }

    // The kernel image at -2 GiB (the low 1 MiB too: it holds the boot code).
    let mut pa = 0;
    while pa < kernel_end_phys.next_multiple_of(TWO_MIB) {
        map_2m(
            pml4,
            KERNEL_VIRT + pa,
            pa,
            PRESENT | WRITABLE | HUGE | GLOBAL,
        );
        pa += TWO_MIB;
    }

    // Keep the boot identity map while APs start (their trampoline turns
    // paging on while running at 0x8000); `drop_identity_map` removes it.
    // SAFETY: boot_pml4 is the boot code's static table in low memory.
    let boot_pml4 = super::kernel_symbol_phys(unsafe { &boot::boot_pml4 as *const u8 as u64 });
    top[0] = table(boot_pml4)[0];

    KERNEL_PML4.store(pml4, Ordering::Relaxed);
    // SAFETY: the new table maps the kernel image (code, stack in .bss), the
    // direct map and the identity map exactly as the boot tables did.
    unsafe { cpu::write_cr3(pml4) };
}

/// Remove the low identity map once every AP is up. The caller must flush
/// every CPU's TLB afterwards (CR3 reload: the identity map is not global).
pub fn drop_identity_map() {
    let _g = KERNEL_PT_LOCK.lock_irqsave();
    table(kernel_pml4())[0] = 0;
}

fn map_2m(pml4: u64, va: u64, pa: u64, flags: u64) {
    let pdpt = next_table(&mut table(pml4)[index(va, 3)]);
    let pd = next_table(&mut table(pdpt)[index(va, 2)]);
    table(pd)[index(va, 1)] = pa | flags;
}

/// Map one 4 KiB kernel page. Panics if it is already mapped.
pub fn map_4k(va: u64, pa: u64, flags: u64) {
    assert!(va >= DIRECT_MAP_BASE && va.is_multiple_of(PAGE_SIZE));
    let _g = KERNEL_PT_LOCK.lock_irqsave();
    let pdpt = next_table(&mut table(kernel_pml4())[index(va, 3)]);
    let pd = next_table(&mut table(pdpt)[index(va, 2)]);
    let pt = next_table(&mut table(pd)[index(va, 1)]);
    let pte = &mut table(pt)[index(va, 0)];
    assert!(*pte & PRESENT == 0, "kernel page {va:#x} mapped twice");
    *pte = pa | flags | PRESENT;
}

/// Unmap one 4 KiB kernel page on this CPU; returns the frame it mapped.
/// Other CPUs may still cache the translation: see `kstack` for the flush.
pub fn unmap_4k(va: u64) -> Option<u64> {
    let _g = KERNEL_PT_LOCK.lock_irqsave();
    let pte = leaf_entry(va)?;
    let old = *pte;
    *pte = 0;
    cpu::invlpg(va);
    (old & PRESENT != 0).then_some(old & ADDR_MASK)
}

fn leaf_entry(va: u64) -> Option<&'static mut u64> {
    let mut t = kernel_pml4();
    for level in (1..=3).rev() {
        let e = table(t)[index(va, level)];
        if e & PRESENT == 0 || e & HUGE != 0 {
            return None;
        }
        t = e & ADDR_MASK;
    }
    Some(&mut table(t)[index(va, 0)])
}

/// Flush this CPU's non-global TLB entries.
pub fn flush_tlb_local() {
    // SAFETY: reloading CR3 with its own value only drops cached entries.
    unsafe { cpu::write_cr3(cpu::read_cr3()) };
}
