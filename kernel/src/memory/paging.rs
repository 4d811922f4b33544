//! The kernel's page tables.
//!
//! The kernel half (PML4 slots 256..512) is built once at boot and shared by
//! every address space: each slot gets its PDPT now, so later changes below
//! the PML4 (heap growth, new stacks) are seen by all address spaces without
//! touching their PML4s. Changes are serialized by `KERNEL_PT_LOCK`. Tables,
//! entries and flags are the `x86_64` crate's; user address spaces use the
//! `mm` crate's own atomic entries instead (they change under concurrent
//! walks, which plain entries do not allow).

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::structures::paging::page_table::{PageTableEntry, PageTableLevel};
use x86_64::structures::paging::{PageTable, PageTableFlags as Flags};
use x86_64::{PhysAddr, VirtAddr};

use super::{DIRECT_MAP_BASE, KERNEL_VIRT, PAGE_SIZE, frame, phys_to_virt};
use crate::arch::cpu;
use crate::sync::SpinLock;

const TWO_MIB: u64 = 2 << 20;

/// Physical address of the kernel's PML4.
static KERNEL_PML4: AtomicU64 = AtomicU64::new(0);
static KERNEL_PT_LOCK: SpinLock<()> = SpinLock::new(());

pub fn kernel_pml4() -> u64 {
    KERNEL_PML4.load(Ordering::Relaxed)
}

fn table(pa: u64) -> &'static mut PageTable {
    // SAFETY: `pa` is a page-table frame (allocated by us or by the boot
    // code) reached through the direct map; callers hold KERNEL_PT_LOCK or
    // run before other CPUs exist.
    unsafe { &mut *(phys_to_virt(pa) as *mut PageTable) }
}

/// Kernel page-table pages allocated since boot (never freed).
static TABLE_FRAMES: AtomicU64 = AtomicU64::new(0);

pub fn kernel_table_frames() -> usize {
    TABLE_FRAMES.load(Ordering::Relaxed) as usize
}

/// The next-level table under `entry`, allocating it if absent.
fn next_table(entry: &mut PageTableEntry) -> Option<u64> {
    if entry.is_unused() {
        let pa = frame::alloc_zeroed()?;
        TABLE_FRAMES.fetch_add(1, Ordering::Relaxed);
        entry.set_addr(PhysAddr::new(pa), Flags::PRESENT | Flags::WRITABLE);
    }
    assert!(
        !entry.flags().contains(Flags::HUGE_PAGE),
        "kernel mapping collides with a huge page"
    );
    Some(entry.addr().as_u64())
}

fn index(va: u64, level: PageTableLevel) -> usize {
    usize::from(VirtAddr::new(va).page_table_index(level))
}

/// Build the kernel page tables and switch to them (boot CPU, once).
pub fn init(kernel_end_phys: u64) {
    let pml4 = frame::alloc_zeroed().expect("no memory for the kernel PML4");
    // APs load this table from 32-bit code through the trampoline.
    assert!(pml4 < (1 << 32), "kernel PML4 above 4 GiB");
    let top = table(pml4);
    for slot in top.iter_mut().skip(256) {
        let pdpt = frame::alloc_zeroed().expect("no memory for kernel PDPTs");
        slot.set_addr(PhysAddr::new(pdpt), Flags::PRESENT | Flags::WRITABLE);
    }

    // Direct map: all RAM, and at least the 4 GiB below, which holds the
    // local APIC and IOAPIC registers (uncached: 3 GiB .. 4 GiB is MMIO).
    let end = frame::max_phys().max(1 << 32).next_multiple_of(TWO_MIB);
    let mut pa = 0;
    while pa < end {
        let mut flags =
            Flags::PRESENT | Flags::WRITABLE | Flags::HUGE_PAGE | Flags::GLOBAL | Flags::NO_EXECUTE;
        if (0xC000_0000..0x1_0000_0000).contains(&pa) {
            flags |= Flags::NO_CACHE | Flags::WRITE_THROUGH;
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
            Flags::PRESENT | Flags::WRITABLE | Flags::HUGE_PAGE | Flags::GLOBAL,
        );
        pa += TWO_MIB;
    }

    // Keep the boot identity map while APs start (their trampoline turns
    // paging on while running at 0x8000); `drop_identity_map` removes it.
    // SAFETY: boot_pml4 is the boot code's static table in low memory.
    let boot_pml4 = super::kernel_symbol_phys(unsafe { &boot::boot_pml4 as *const u8 as u64 });
    top[0] = table(boot_pml4)[0].clone();

    KERNEL_PML4.store(pml4, Ordering::Relaxed);
    // SAFETY: the new table maps the kernel image (code, stack in .bss), the
    // direct map and the identity map exactly as the boot tables did.
    unsafe { cpu::write_cr3(pml4) };
}

/// Remove the low identity map once every AP is up. The caller must flush
/// every CPU's TLB afterwards (CR3 reload: the identity map is not global).
pub fn drop_identity_map() {
    let _g = KERNEL_PT_LOCK.lock_irqsave();
    table(kernel_pml4())[0].set_unused();
}

/// Boot only: no memory for the direct map is a dead end.
fn map_2m(pml4: u64, va: u64, pa: u64, flags: Flags) {
    const BOOT_OOM: &str = "no memory for the kernel page tables";
    let pdpt = next_table(&mut table(pml4)[index(va, PageTableLevel::Four)]).expect(BOOT_OOM);
    let pd = next_table(&mut table(pdpt)[index(va, PageTableLevel::Three)]).expect(BOOT_OOM);
    table(pd)[index(va, PageTableLevel::Two)].set_addr(PhysAddr::new(pa), flags);
}

/// Map one 4 KiB kernel page (PRESENT is added to `flags`). Panics if it is
/// already mapped.
#[must_use = "the page is not mapped when no frame was left for a page table"]
pub fn map_4k(va: u64, pa: u64, flags: Flags) -> bool {
    assert!(va >= DIRECT_MAP_BASE && va.is_multiple_of(PAGE_SIZE));
    let _g = KERNEL_PT_LOCK.lock_irqsave();
    // A table taken before a later level ran out stays in place: it is
    // empty, and the next mapping in this region uses it.
    let Some(pt) = next_table(&mut table(kernel_pml4())[index(va, PageTableLevel::Four)])
        .and_then(|pdpt| next_table(&mut table(pdpt)[index(va, PageTableLevel::Three)]))
        .and_then(|pd| next_table(&mut table(pd)[index(va, PageTableLevel::Two)]))
    else {
        return false;
    };
    let pte = &mut table(pt)[index(va, PageTableLevel::One)];
    assert!(pte.is_unused(), "kernel page {va:#x} mapped twice");
    pte.set_addr(PhysAddr::new(pa), flags | Flags::PRESENT);
    true
}

/// Unmap one 4 KiB kernel page on this CPU; returns the frame it mapped.
/// Other CPUs may still cache the translation: see `kstack` for the flush.
pub fn unmap_4k(va: u64) -> Option<u64> {
    let _g = KERNEL_PT_LOCK.lock_irqsave();
    let pte = leaf_entry(va)?;
    let old = pte.clone();
    pte.set_unused();
    cpu::invlpg(va);
    old.flags()
        .contains(Flags::PRESENT)
        .then(|| old.addr().as_u64())
}

fn leaf_entry(va: u64) -> Option<&'static mut PageTableEntry> {
    let mut t = kernel_pml4();
    for level in [
        PageTableLevel::Four,
        PageTableLevel::Three,
        PageTableLevel::Two,
    ] {
        let e = &table(t)[index(va, level)];
        if !e.flags().contains(Flags::PRESENT) || e.flags().contains(Flags::HUGE_PAGE) {
            return None;
        }
        t = e.addr().as_u64();
    }
    Some(&mut table(t)[index(va, PageTableLevel::One)])
}

/// Flush this CPU's non-global TLB entries.
pub fn flush_tlb_local() {
    // SAFETY: reloading CR3 with its own value only drops cached entries.
    unsafe { cpu::write_cr3(cpu::read_cr3()) };
}
