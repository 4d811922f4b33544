//! Physical and kernel-virtual memory.
//!
//! Kernel virtual layout (upper half; the lower half belongs to user space):
//!
//! | range                                 | what                                 |
//! |---------------------------------------|--------------------------------------|
//! | `0xffff_8000_0000_0000` + phys        | direct map of all physical memory    |
//! | `0xffff_c800_0000_0000` ..            | kernel heap, grows on demand         |
//! | `0xffff_c900_0000_0000` ..            | kernel stacks, each with a guard page|
//! | `0xffff_ffff_8000_0000` + phys        | the kernel image (-2 GiB)            |

pub mod bootinfo;
mod clear;
pub mod frame;
pub mod heap;
mod heap_cache;
pub mod kstack;
pub mod paging;
mod slab;

pub use clear::clear_page;

pub const PAGE_SIZE: u64 = 4096;
pub const DIRECT_MAP_BASE: u64 = 0xFFFF_8000_0000_0000;
pub const HEAP_BASE: u64 = 0xFFFF_C800_0000_0000;
pub const KSTACK_BASE: u64 = 0xFFFF_C900_0000_0000;
pub const KERNEL_VIRT: u64 = 0xFFFF_FFFF_8000_0000;

/// The direct-map address of a physical address.
pub fn phys_to_virt(pa: u64) -> *mut u8 {
    (DIRECT_MAP_BASE + pa) as *mut u8
}

/// Physical address of a kernel-image symbol.
pub fn kernel_symbol_phys(addr: u64) -> u64 {
    if addr >= KERNEL_VIRT {
        addr - KERNEL_VIRT
    } else {
        addr
    }
}
