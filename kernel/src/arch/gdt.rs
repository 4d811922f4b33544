//! Segments: the per-CPU GDT and TSS.
//!
//! Long mode ignores segment bases and limits, but the CPU still needs a code
//! segment for each privilege level and a TSS, whose interrupt stack table
//! (IST) gives double faults, NMIs and machine checks a known-good stack even
//! when the current one is broken (a kernel stack overflow hits the guard page,
//! and the #PF cannot be delivered on the same stack: the CPU raises #DF, which
//! runs on IST1).

use super::percpu::PerCpu;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
/// `sysret` loads SS = STAR[63:48] + 8 and CS = STAR[63:48] + 16, hence user
/// data before user code.
pub const USER_DS: u16 = 0x18 | 3;
pub const USER_CS: u16 = 0x20 | 3;
const TSS_SEL: u16 = 0x28;

pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

#[repr(C, packed(4))]
pub struct Tss {
    _reserved0: u32,
    pub rsp: [u64; 3],
    _reserved1: u64,
    pub ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}

impl Tss {
    pub const fn new() -> Self {
        Tss {
            _reserved0: 0,
            rsp: [0; 3],
            _reserved1: 0,
            ist: [0; 7],
            _reserved2: 0,
            _reserved3: 0,
            iomap_base: core::mem::size_of::<Tss>() as u16,
        }
    }
}

/// Fill and load this CPU's GDT and TSS. `ist_tops[i]` is the top of the
/// stack for IST entry i+1.
pub fn init_this_cpu(pc: &PerCpu, ist_tops: [u64; 3]) {
    // SAFETY: only this CPU touches its own TSS and GDT, and only here, before
    // they are loaded.
    let (tss, gdt) = unsafe { (&mut *pc.tss.get(), &mut *pc.gdt.get()) };
    for (i, top) in ist_tops.iter().enumerate() {
        tss.ist[i] = *top;
    }
    let base = tss as *const Tss as u64;
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    gdt[0] = 0;
    gdt[1] = 0x00AF_9A00_0000_FFFF; // kernel code, 64-bit
    gdt[2] = 0x00CF_9200_0000_FFFF; // kernel data
    gdt[3] = 0x00CF_F200_0000_FFFF; // user data (DPL 3)
    gdt[4] = 0x00AF_FA00_0000_FFFF; // user code, 64-bit (DPL 3)
    // 16-byte available 64-bit TSS descriptor.
    gdt[5] = (limit & 0xFFFF)
        | ((base & 0xFF_FFFF) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xF) << 48)
        | (((base >> 24) & 0xFF) << 56);
    gdt[6] = base >> 32;

    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let ptr = Pointer {
        limit: (7 * 8 - 1) as u16,
        base: gdt.as_ptr() as u64,
    };
    // SAFETY: the GDT is static per-CPU memory with the code/data selectors
    // the rest of the kernel uses; reloading CS through a far return and the
    // data segments keeps the running code valid. The TSS descriptor is fresh
    // (type 0x9 "available"), as `ltr` requires.
    unsafe {
        core::arch::asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = in(reg) u64::from(KERNEL_CS),
            ds = in(reg) u64::from(KERNEL_DS),
            tss = in(reg) u64::from(TSS_SEL),
            tmp = out(reg) _,
        );
    }
}
