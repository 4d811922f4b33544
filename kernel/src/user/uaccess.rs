//! Copying to and from user memory.
//!
//! A user pointer may be anything: unmapped, read-only, in the kernel half.
//! The range check keeps the copy inside user space; the page fault a bad
//! (or not yet faulted-in) address causes is handled like a user fault on
//! the process's behalf, and if that fails, the exception table turns it into
//! an error instead of a kernel crash.

use abi::errno::Errno;
use abi::mman::{USER_END, USER_START};

core::arch::global_asm!(
    r#"
    .section .text
    .global copy_user_raw
/* copy_user_raw(dst, src, len) -> bytes not copied (0 = all) */
copy_user_raw:
    mov %rdx, %rcx
1:  rep movsb
    xor %eax, %eax
    ret
2:  mov %rcx, %rax
    ret
    .pushsection .extable, "a"
    .balign 8
    .quad 1b, 2b
    .popsection
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn copy_user_raw(dst: *mut u8, src: *const u8, len: usize) -> usize;
}

fn check(addr: u64, len: usize) -> Result<(), Errno> {
    let end = addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
    if len == 0 || (addr >= USER_START && end <= USER_END) {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

pub fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), Errno> {
    check(src, dst.len())?;
    // SAFETY: `dst` is kernel memory we own; `src..src+len` is in user space
    // (checked), and a fault there ends the copy through the exception table.
    let left = unsafe { copy_user_raw(dst.as_mut_ptr(), src as *const u8, dst.len()) };
    if left == 0 {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

pub fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), Errno> {
    check(dst, src.len())?;
    // SAFETY: as in `copy_from_user`, the other way round.
    let left = unsafe { copy_user_raw(dst as *mut u8, src.as_ptr(), src.len()) };
    if left == 0 {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}
