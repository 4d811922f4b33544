//! Segments: the per-CPU GDT and TSS.
//!
//! Long mode ignores segment bases and limits, but the CPU still needs a code
//! segment for each privilege level and a TSS, whose interrupt stack table
//! (IST) gives double faults, NMIs and machine checks a known-good stack even
//! when the current one is broken (a kernel stack overflow hits the guard page,
//! and the #PF cannot be delivered on the same stack: the CPU raises #DF, which
//! runs on its IST stack). The descriptors, selectors and the TSS layout are
//! the `x86_64` crate's.

use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::{PrivilegeLevel, VirtAddr};

use super::percpu::PerCpu;

pub const KERNEL_CS: SegmentSelector = SegmentSelector::new(1, PrivilegeLevel::Ring0);
pub const KERNEL_DS: SegmentSelector = SegmentSelector::new(2, PrivilegeLevel::Ring0);
/// `sysret` loads SS = STAR[63:48] + 8 and CS = STAR[63:48] + 16, hence user
/// data before user code.
pub const USER_DS: SegmentSelector = SegmentSelector::new(3, PrivilegeLevel::Ring3);
pub const USER_CS: SegmentSelector = SegmentSelector::new(4, PrivilegeLevel::Ring3);
const TSS_SEL: SegmentSelector = SegmentSelector::new(5, PrivilegeLevel::Ring0);

/// Slots in the TSS's interrupt stack table (0-based, as the crate's
/// `set_stack_index` and `interrupt_stack_table` count them).
pub const IST_DOUBLE_FAULT: u16 = 0;
pub const IST_NMI: u16 = 1;
pub const IST_MACHINE_CHECK: u16 = 2;

/// Fill and load this CPU's GDT and TSS. `ist_tops[i]` is the top of the
/// stack for IST slot i.
pub fn init_this_cpu(pc: &'static PerCpu, ist_tops: [u64; 3]) {
    // SAFETY: only this CPU touches its own TSS and GDT, and only here, before
    // they are loaded.
    let (tss, gdt) = unsafe { (&mut *pc.tss.get(), &mut *pc.gdt.get()) };
    // The TSS is packed: build the table, then store it whole.
    let mut ist = tss.interrupt_stack_table;
    for (slot, top) in ist.iter_mut().zip(ist_tops) {
        *slot = VirtAddr::new(top);
    }
    tss.interrupt_stack_table = ist;
    *gdt = GlobalDescriptorTable::new();
    let selectors = [
        gdt.append(Descriptor::kernel_code_segment()),
        gdt.append(Descriptor::kernel_data_segment()),
        gdt.append(Descriptor::user_data_segment()),
        gdt.append(Descriptor::user_code_segment()),
        // SAFETY: the TSS lives in the static per-CPU array, so it outlives
        // the GDT entry that points at it.
        gdt.append(unsafe { Descriptor::tss_segment_unchecked(pc.tss.get()) }),
    ];
    assert_eq!(
        selectors,
        [KERNEL_CS, KERNEL_DS, USER_DS, USER_CS, TSS_SEL],
        "GDT layout differs from the selectors the kernel uses"
    );
    // SAFETY: the GDT is static per-CPU memory holding the code/data
    // selectors the rest of the kernel uses; reloading CS (a far return) and
    // the data segments keeps the running code valid. The TSS descriptor is
    // fresh ("available"), as `ltr` requires.
    unsafe {
        gdt.load_unsafe();
        CS::set_reg(KERNEL_CS);
        DS::set_reg(KERNEL_DS);
        ES::set_reg(KERNEL_DS);
        SS::set_reg(KERNEL_DS);
        load_tss(TSS_SEL);
    }
}
