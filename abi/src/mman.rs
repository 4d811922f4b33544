//! Memory-mapping flags, the user address range, and the argument checks for
//! `MMAP`, `MUNMAP` and `MPROTECT`.
//!
//! The checks are pure functions so that the kernel, the documentation
//! (`docs/syscalls.md`) and the user test `mmap_bad_arguments` agree on which
//! error each bad argument gets, and so they are tested on the host. Checks
//! that need the address space (is the range free? is there enough memory?)
//! stay in the kernel.

use crate::Errno;

/// The page size: the unit of every mapping.
pub const PAGE_SIZE: u64 = 4096;

/// The lowest user address: the first 64 KiB are never mapped (Linux's
/// default `mmap_min_addr`), so a null pointer faults, and so does a null
/// pointer plus a field or array offset below 64 KiB. Not just page 0: a
/// kernel bug that follows a null pointer with an offset must never land in
/// memory a user program chose.
///
/// This crate is the one definition of the user address range: the kernel's
/// syscall checks, the loader and the `mm` crate all use these two constants.
pub const USER_START: u64 = 0x1_0000;
/// One past the highest user address: the top of the lower canonical half
/// (`0x8000_0000_0000`) minus one guard page that is never mapped (as on
/// Linux), so no user mapping ends at the non-canonical boundary: code
/// running off the end of the last page would fault in user mode rather than
/// leave a non-canonical RIP for `sysret` to fault on in ring 0.
pub const USER_END: u64 = 0x7fff_ffff_f000;

bitflags::bitflags! {
    /// The `prot` argument of `MMAP` and `MPROTECT`. No bit set: no access
    /// (any access faults with [`crate::FaultReason::ProtNone`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Prot: u64 {
        /// Readable.
        const READ = 1;
        /// Writable (implies readable on x86).
        const WRITE = 2;
        /// Executable (without it the pages are mapped NX).
        const EXEC = 4;
    }
}

bitflags::bitflags! {
    /// The `flags` argument of `MMAP`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MapFlags: u64 {
        /// Required: changes are private to the process (there is no
        /// sharing yet).
        const PRIVATE = 0x02;
        /// Place the mapping exactly at `addr`, replacing whatever was
        /// mapped there.
        const FIXED = 0x10;
        /// Required: zero-filled memory not backed by a file.
        const ANONYMOUS = 0x20;
    }
}

// The same values as raw numbers, as a program passes them in a syscall
// register (and as C spells them).

/// No access: see [`Prot`].
pub const PROT_NONE: u64 = 0;
/// [`Prot::READ`].
pub const PROT_READ: u64 = Prot::READ.bits();
/// [`Prot::WRITE`].
pub const PROT_WRITE: u64 = Prot::WRITE.bits();
/// [`Prot::EXEC`].
pub const PROT_EXEC: u64 = Prot::EXEC.bits();
/// Every valid `prot` bit.
pub const PROT_MASK: u64 = Prot::all().bits();

/// [`MapFlags::PRIVATE`].
pub const MAP_PRIVATE: u64 = MapFlags::PRIVATE.bits();
/// [`MapFlags::FIXED`].
pub const MAP_FIXED: u64 = MapFlags::FIXED.bits();
/// [`MapFlags::ANONYMOUS`].
pub const MAP_ANONYMOUS: u64 = MapFlags::ANONYMOUS.bits();

/// Rounds `len` up to whole pages; `None` if that overflows.
pub fn page_align_up(len: u64) -> Option<u64> {
    Some(len.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1))
}

/// Whether `addr` is page-aligned.
pub fn is_page_aligned(addr: u64) -> bool {
    addr.is_multiple_of(PAGE_SIZE)
}

/// Whether `[start, end)` lies inside the user address range.
pub fn in_user_range(start: u64, end: u64) -> bool {
    USER_START <= start && start < end && end <= USER_END
}

/// Where a validated `MMAP` wants its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The kernel picks a free range, trying `hint` first when it is `Some`
    /// (a hint outside user space or overlapping a mapping is ignored).
    Anywhere { hint: Option<u64> },
    /// Exactly at this address (`MAP_FIXED`): existing mappings there are
    /// replaced.
    Fixed(u64),
}

/// A validated `MMAP` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmapRequest {
    pub placement: Placement,
    /// The length rounded up to whole pages (never zero).
    pub len: u64,
    pub prot: Prot,
}

/// Checks the arguments of `MMAP(addr, len, prot, flags)` in the order listed
/// in `docs/syscalls.md`:
/// - `EINVAL`: `len == 0`; `prot` has a bit outside [`PROT_MASK`]; `flags`
///   lacks [`MAP_PRIVATE`] or [`MAP_ANONYMOUS`] or has any bit other than those
///   and [`MAP_FIXED`]; `addr` is not page-aligned (hint or fixed).
/// - `ENOMEM`: `len` rounded up to pages overflows or exceeds the whole user
///   range; with `MAP_FIXED`, `[addr, addr + len)` is not inside user space.
///
/// Not checked here (the kernel's job): room for a non-fixed mapping
/// (`ENOMEM`), and a length beyond the memory the machine has (`ENOMEM`).
pub fn check_mmap(addr: u64, len: u64, prot: u64, flags: u64) -> Result<MmapRequest, Errno> {
    let required = MapFlags::PRIVATE | MapFlags::ANONYMOUS;
    let (Some(prot), Some(flags)) = (Prot::from_bits(prot), MapFlags::from_bits(flags)) else {
        return Err(Errno::EINVAL);
    };
    if len == 0 || !flags.contains(required) || !is_page_aligned(addr) {
        return Err(Errno::EINVAL);
    }
    let len = page_align_up(len).ok_or(Errno::ENOMEM)?;
    if len > USER_END - USER_START {
        return Err(Errno::ENOMEM);
    }
    let placement = if flags.contains(MapFlags::FIXED) {
        if addr < USER_START {
            // Linux's answer below `mmap_min_addr`: page 0 stays unmapped so
            // that null pointers fault.
            return Err(Errno::EPERM);
        }
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        if !in_user_range(addr, end) {
            return Err(Errno::ENOMEM);
        }
        Placement::Fixed(addr)
    } else {
        let fits = addr
            .checked_add(len)
            .is_some_and(|end| in_user_range(addr, end));
        Placement::Anywhere {
            hint: fits.then_some(addr),
        }
    };
    Ok(MmapRequest {
        placement,
        len,
        prot,
    })
}

/// Checks the `(addr, len)` of `MUNMAP` and `MPROTECT` and returns the page
/// range `[start, end)`:
/// - `EINVAL`: `addr` not page-aligned, `len == 0`, `len` rounded up
///   overflows, or the range is not inside user space.
pub fn check_range(addr: u64, len: u64) -> Result<(u64, u64), Errno> {
    if !is_page_aligned(addr) || len == 0 {
        return Err(Errno::EINVAL);
    }
    let end = page_align_up(len)
        .and_then(|len| addr.checked_add(len))
        .ok_or(Errno::EINVAL)?;
    if !in_user_range(addr, end) {
        return Err(Errno::EINVAL);
    }
    Ok((addr, end))
}

/// Checks the `prot` of `MPROTECT`: `EINVAL` for unknown bits.
pub fn check_prot(prot: u64) -> Result<Prot, Errno> {
    Prot::from_bits(prot).ok_or(Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: u64 = PROT_READ | PROT_WRITE;
    const PA: u64 = MAP_PRIVATE | MAP_ANONYMOUS;

    #[test]
    fn good_requests() {
        assert_eq!(
            check_mmap(0, 1, RW, PA),
            Ok(MmapRequest {
                placement: Placement::Anywhere { hint: None },
                len: PAGE_SIZE,
                prot: Prot::READ | Prot::WRITE
            })
        );
        let r = check_mmap(0x1000_0000, 3 * PAGE_SIZE, PROT_READ, PA | MAP_FIXED).unwrap();
        assert_eq!(r.placement, Placement::Fixed(0x1000_0000));
        assert_eq!(r.len, 3 * PAGE_SIZE);
        let r = check_mmap(USER_END - PAGE_SIZE, PAGE_SIZE, PROT_NONE, PA | MAP_FIXED);
        assert_eq!(r.unwrap().placement, Placement::Fixed(USER_END - PAGE_SIZE));
    }

    /// The same table as the user test `mmap_bad_arguments` (minus the cases
    /// only the kernel can judge).
    #[test]
    fn bad_requests() {
        let cases: [(&str, u64, u64, u64, u64, Errno); 11] = [
            ("zero length", 0, 0, RW, PA, Errno::EINVAL),
            (
                "unaligned fixed",
                0x1000_0001,
                4096,
                RW,
                PA | MAP_FIXED,
                Errno::EINVAL,
            ),
            ("unaligned hint", 0x1000_0001, 4096, RW, PA, Errno::EINVAL),
            ("length overflow", 0, u64::MAX - 100, RW, PA, Errno::ENOMEM),
            ("longer than user space", 0, 1 << 47, RW, PA, Errno::ENOMEM),
            (
                "kernel-half fixed",
                0xffff_8000_0000_0000,
                4096,
                RW,
                PA | MAP_FIXED,
                Errno::ENOMEM,
            ),
            (
                "fixed over kernel",
                USER_END - 4096,
                8192,
                RW,
                PA | MAP_FIXED,
                Errno::ENOMEM,
            ),
            ("fixed at page 0", 0, 4096, RW, PA | MAP_FIXED, Errno::EPERM),
            ("shared", 0, 4096, RW, 0x01 | MAP_ANONYMOUS, Errno::EINVAL),
            ("unknown flag", 0, 4096, RW, PA | 0x100, Errno::EINVAL),
            ("unknown prot", 0, 4096, 8, PA, Errno::EINVAL),
        ];
        for (what, addr, len, prot, flags, err) in cases {
            assert_eq!(check_mmap(addr, len, prot, flags), Err(err), "{what}");
        }
    }

    #[test]
    fn a_hint_outside_user_space_is_dropped_not_refused() {
        let r = check_mmap(0xffff_8000_0000_0000, 4096, RW, PA).unwrap();
        assert_eq!(r.placement, Placement::Anywhere { hint: None });
        let r = check_mmap(USER_END - 4096, 8192, RW, PA).unwrap();
        assert_eq!(r.placement, Placement::Anywhere { hint: None });
    }

    #[test]
    fn ranges() {
        let s = USER_START;
        assert_eq!(check_range(s, 1), Ok((s, s + 0x1000)));
        assert_eq!(check_range(s + 1, 1), Err(Errno::EINVAL));
        assert_eq!(check_range(s, 0), Err(Errno::EINVAL));
        assert_eq!(check_range(0, 4096), Err(Errno::EINVAL));
        assert_eq!(check_range(s, u64::MAX), Err(Errno::EINVAL));
        assert_eq!(check_range(USER_END, 4096), Err(Errno::EINVAL));
        assert_eq!(
            check_range(USER_END - 4096, 4096),
            Ok((USER_END - 4096, USER_END))
        );
        assert_eq!(check_prot(PROT_MASK), Ok(Prot::all()));
        assert_eq!(check_prot(8), Err(Errno::EINVAL));
    }

    /// The range is Linux's: nothing below 64 KiB, and the last page below
    /// the non-canonical hole is a guard page that is never mapped.
    #[test]
    fn user_range_is_64k_to_below_the_guard_page() {
        assert_eq!(USER_START, 0x1_0000);
        assert_eq!(USER_END, 0x8000_0000_0000 - PAGE_SIZE);
        // The lowest and the highest page are user space; one page further
        // either way is not.
        assert!(in_user_range(USER_START, USER_START + PAGE_SIZE));
        assert!(!in_user_range(USER_START - PAGE_SIZE, USER_START));
        assert!(in_user_range(USER_END - PAGE_SIZE, USER_END));
        assert!(!in_user_range(USER_END, USER_END + PAGE_SIZE));
        assert!(!in_user_range(USER_END - PAGE_SIZE, USER_END + PAGE_SIZE));
        assert!(!in_user_range(0, PAGE_SIZE));
    }

    #[test]
    fn mmap_at_both_ends() {
        let fixed = |addr, len| check_mmap(addr, len, RW, PA | MAP_FIXED);
        // Page zero and everything below 64 KiB: EPERM, as on Linux.
        for addr in [0, PAGE_SIZE, USER_START - PAGE_SIZE] {
            assert_eq!(fixed(addr, PAGE_SIZE), Err(Errno::EPERM), "{addr:#x}");
        }
        assert_eq!(
            fixed(USER_START, PAGE_SIZE).map(|r| r.placement),
            Ok(Placement::Fixed(USER_START))
        );
        // The guard page, and anything reaching into it or past the top.
        assert_eq!(fixed(USER_END, PAGE_SIZE), Err(Errno::ENOMEM));
        assert_eq!(
            fixed(USER_END - PAGE_SIZE, 2 * PAGE_SIZE),
            Err(Errno::ENOMEM)
        );
        assert_eq!(fixed(0x8000_0000_0000, PAGE_SIZE), Err(Errno::ENOMEM));
        assert_eq!(
            fixed(USER_END - PAGE_SIZE, PAGE_SIZE).map(|r| r.placement),
            Ok(Placement::Fixed(USER_END - PAGE_SIZE))
        );
        // A hint there is dropped, never honoured.
        let hint = |addr| check_mmap(addr, PAGE_SIZE, RW, PA).map(|r| r.placement);
        for addr in [
            PAGE_SIZE,
            USER_START - PAGE_SIZE,
            USER_END,
            0x8000_0000_0000,
        ] {
            assert_eq!(
                hint(addr),
                Ok(Placement::Anywhere { hint: None }),
                "{addr:#x}"
            );
        }
        assert_eq!(
            hint(USER_START),
            Ok(Placement::Anywhere {
                hint: Some(USER_START)
            })
        );
        // munmap/mprotect ranges: the same bounds.
        assert_eq!(
            check_range(USER_START - PAGE_SIZE, PAGE_SIZE),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_range(USER_END - PAGE_SIZE, 2 * PAGE_SIZE),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn page_rounding() {
        assert_eq!(page_align_up(0), Some(0));
        assert_eq!(page_align_up(1), Some(4096));
        assert_eq!(page_align_up(4096), Some(4096));
        assert_eq!(page_align_up(u64::MAX - 4094), None);
        assert_eq!(page_align_up(u64::MAX - 4095), Some(u64::MAX - 4095));
    }
}
