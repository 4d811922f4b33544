//! The exception table: kernel instructions that are allowed to fault.
//!
//! Each entry pairs the address of an instruction that may fault (a probe of
//! a possibly-unmapped address, later a copy from user memory) with the
//! address of its fixup code. The page-fault handler looks the faulting RIP
//! up here; on a hit it resumes at the fixup instead of panicking, and the
//! fixup returns an error to the caller. This is Linux's `__ex_table`.

#[repr(C)]
struct Entry {
    insn: u64,
    fixup: u64,
}

fn table() -> &'static [Entry] {
    // SAFETY: the linker script collects every `.extable` entry (pairs of
    // u64, 8-aligned) between these two symbols.
    unsafe {
        let start = &boot::__extable_start as *const u8 as *const Entry;
        let end = &boot::__extable_end as *const u8 as *const Entry;
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

/// The fixup address for a faulting kernel instruction, if it has one.
pub fn fixup_for(rip: u64) -> Option<u64> {
    table().iter().find(|e| e.insn == rip).map(|e| e.fixup)
}

#[repr(C)]
struct ProbeResult {
    value: u64,
    faulted: u64,
}

core::arch::global_asm!(
    r#"
    .section .text
    .global probe_read_u64_raw
probe_read_u64_raw:
1:  mov (%rdi), %rax
    xor %edx, %edx
    ret
2:  xor %eax, %eax
    mov $1, %edx
    ret
    .pushsection .extable, "a"
    .balign 8
    .quad 1b, 2b
    .popsection
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn probe_read_u64_raw(addr: u64) -> ProbeResult;
}

/// Read 8 bytes at a kernel address that may be unmapped. A page fault is
/// turned into `None` by the exception table instead of a panic.
pub fn probe_read_u64(addr: u64) -> Option<u64> {
    if !addr.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the read instruction has an exception-table fixup, so an
    // unmapped address returns `faulted = 1`; a mapped one is a plain read
    // of kernel memory, which has no side effects we rely on.
    let r = unsafe { probe_read_u64_raw(addr) };
    if r.faulted == 0 { Some(r.value) } else { None }
}
