//! Loading a static ELF64 executable into an address space.
//!
//! Each PT_LOAD segment becomes a fixed mapping: mapped writable, filled
//! from the file through the user-copy path (which faults pages in like any
//! user access), then protected to the segment's rights. The rest of the
//! segment (.bss) is demand-zero memory already.

use abi::errno::Errno;
use mm::mm::MapAt;
use mm::vma::Prot;

use super::uaccess::copy_to_user;
use crate::mm_platform::Kernel;

const PT_LOAD: u32 = 1;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Load `image` into `mm` (the current address space); returns the entry.
pub fn load(image: &[u8], mm: &mm::mm::Mm<Kernel>) -> Result<u64, &'static str> {
    if image.len() < 64 || &image[..4] != b"\x7fELF" || image[4] != 2 || u16_at(image, 18) != 62 {
        return Err("not an x86-64 ELF64 file");
    }
    if u16_at(image, 16) != 2 {
        return Err("not a static executable (ET_EXEC)");
    }
    let entry = u64_at(image, 24);
    let phoff = u64_at(image, 32) as usize;
    let phentsize = u16_at(image, 54) as usize;
    let phnum = u16_at(image, 56) as usize;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if ph + 56 > image.len() {
            return Err("truncated program headers");
        }
        if u32_at(image, ph) != PT_LOAD {
            continue;
        }
        let flags = u32_at(image, ph + 4);
        let (off, vaddr, filesz, memsz) = (
            u64_at(image, ph + 8) as usize,
            u64_at(image, ph + 16),
            u64_at(image, ph + 32) as usize,
            u64_at(image, ph + 40),
        );
        if memsz == 0 {
            continue;
        }
        let start = vaddr & !0xFFF;
        let end = (vaddr + memsz).next_multiple_of(4096);
        mm.map(MapAt::Fixed(start), end - start, Prot::RW.bits())
            .map_err(|_| "cannot map a segment")?;
        if filesz > 0 {
            let data = image
                .get(off..off + filesz)
                .ok_or("segment beyond the file")?;
            copy_to_user(vaddr, data).map_err(|_: Errno| "cannot fill a segment")?;
        }
        mm.protect(start, end - start, prot_of(flags).bits())
            .map_err(|_| "cannot protect a segment")?;
    }
    Ok(entry)
}

/// A segment's rights: ELF's `p_flags` (X = 1, W = 2, R = 4) as a `Prot`.
fn prot_of(p_flags: u32) -> Prot {
    let mut prot = Prot::NONE;
    prot.set(Prot::READ, p_flags & 4 != 0);
    prot.set(Prot::WRITE, p_flags & 2 != 0);
    prot.set(Prot::EXEC, p_flags & 1 != 0);
    prot
}
