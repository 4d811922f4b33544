//! `memcpy` and `memset` for the whole kernel, written for emulated CPUs.
//!
//! `compiler_builtins` (built with the `mem` feature) supplies these with
//! `rep movsq` / `rep stosq`, which real CPUs with fast string instructions
//! run well. QEMU's software emulation (TCG), where this kernel runs by
//! default, translates each iteration of a `rep` instruction as a separate
//! trip through a translated block: copying a 576-byte range-tree node
//! costs 72 such trips. Plain 8-byte moves in an unrolled loop run inside
//! one block. Linux chooses the same way on CPUs without `REP_GOOD`/`ERMS`
//! (`memcpy_orig` in `arch/x86/lib/memcpy_64.S`). The `compiler_builtins`
//! versions are weak symbols, so these strong definitions replace them;
//! `memmove` and `memcmp` stay theirs (rare on hot paths).
//!
//! The loops are in assembly so the compiler cannot recognise them as a copy
//! and turn them back into a call to `memcpy` (which would recurse).

use core::arch::asm;

/// Copy `n` bytes from `src` to `dst`; the ranges must not overlap.
///
/// # Safety
/// The C contract: `src` readable and `dst` writable for `n` bytes, no
/// overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract covers every byte touched: 64-byte
    // blocks while at least 64 remain, then 8-byte words, then bytes, each
    // load and store inside `src[..n]` / `dst[..n]`. Unaligned 8-byte moves
    // are allowed on x86-64. No stack, flags clobbered (default).
    unsafe {
        asm!(
            "cmp {n}, 64",
            "jb 3f",
            "2:",
            "mov {a}, [{s}]",
            "mov {b}, [{s} + 8]",
            "mov [{d}], {a}",
            "mov [{d} + 8], {b}",
            "mov {a}, [{s} + 16]",
            "mov {b}, [{s} + 24]",
            "mov [{d} + 16], {a}",
            "mov [{d} + 24], {b}",
            "mov {a}, [{s} + 32]",
            "mov {b}, [{s} + 40]",
            "mov [{d} + 32], {a}",
            "mov [{d} + 40], {b}",
            "mov {a}, [{s} + 48]",
            "mov {b}, [{s} + 56]",
            "mov [{d} + 48], {a}",
            "mov [{d} + 56], {b}",
            "add {s}, 64",
            "add {d}, 64",
            "sub {n}, 64",
            "cmp {n}, 64",
            "jae 2b",
            "3:",
            "cmp {n}, 8",
            "jb 5f",
            "4:",
            "mov {a}, [{s}]",
            "mov [{d}], {a}",
            "add {s}, 8",
            "add {d}, 8",
            "sub {n}, 8",
            "cmp {n}, 8",
            "jae 4b",
            "5:",
            "test {n}, {n}",
            "jz 7f",
            "6:",
            "mov {a:l}, [{s}]",
            "mov [{d}], {a:l}",
            "inc {s}",
            "inc {d}",
            "dec {n}",
            "jnz 6b",
            "7:",
            d = inout(reg) dst => _,
            s = inout(reg) src => _,
            n = inout(reg) n => _,
            a = out(reg) _,
            b = out(reg) _,
            options(nostack),
        );
    }
    dst
}

/// Set `n` bytes at `dst` to `c` (its low byte).
///
/// # Safety
/// The C contract: `dst` writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    let word = (c as u8 as u64) * 0x0101_0101_0101_0101;
    // SAFETY: as in `memcpy`: every store is inside `dst[..n]`.
    unsafe {
        asm!(
            "cmp {n}, 64",
            "jb 3f",
            "2:",
            "mov [{d}], {w}",
            "mov [{d} + 8], {w}",
            "mov [{d} + 16], {w}",
            "mov [{d} + 24], {w}",
            "mov [{d} + 32], {w}",
            "mov [{d} + 40], {w}",
            "mov [{d} + 48], {w}",
            "mov [{d} + 56], {w}",
            "add {d}, 64",
            "sub {n}, 64",
            "cmp {n}, 64",
            "jae 2b",
            "3:",
            "cmp {n}, 8",
            "jb 5f",
            "4:",
            "mov [{d}], {w}",
            "add {d}, 8",
            "sub {n}, 8",
            "cmp {n}, 8",
            "jae 4b",
            "5:",
            "test {n}, {n}",
            "jz 7f",
            "6:",
            "mov [{d}], {w:l}",
            "inc {d}",
            "dec {n}",
            "jnz 6b",
            "7:",
            d = inout(reg) dst => _,
            n = inout(reg) n => _,
            w = in(reg) word,
            options(nostack),
        );
    }
    dst
}
