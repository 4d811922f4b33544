//! Error codes and how they travel in `rax`.
//!
//! A syscall that fails returns `-errno` (two's complement, so `rax` holds
//! `2^64 - errno`). The numbers are Linux's, so a student can look them up in
//! `errno(3)`. As on Linux, only `-4095..=-1` means "error": every successful
//! result (addresses, lengths, thread ids, zero-extended exit codes, times) is
//! below `2^63` and can never be mistaken for one.

use core::fmt;

/// A positive error number, as in `errno(3)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub u16);

impl Errno {
    /// Operation not permitted.
    pub const EPERM: Errno = Errno(1);
    /// No such thread (`THREAD_JOIN` of a thread not in this process, or
    /// joined already).
    pub const ESRCH: Errno = Errno(3);
    /// Interrupted: a call cut short because its process is being killed.
    /// A program never sees it (the thread leaves before it returns).
    pub const EINTR: Errno = Errno(4);
    /// Try again later: `THREAD_SPAWN` when the process has
    /// [`crate::thread::MAX_THREADS`] threads already.
    pub const EAGAIN: Errno = Errno(11);
    /// Out of memory, or no room in the address space.
    pub const ENOMEM: Errno = Errno(12);
    /// A user pointer argument points at memory the caller may not access.
    pub const EFAULT: Errno = Errno(14);
    /// The object is in use (`THREAD_JOIN` of a thread another thread is
    /// joining).
    pub const EBUSY: Errno = Errno(16);
    /// Already exists (reserved).
    pub const EEXIST: Errno = Errno(17);
    /// An argument is invalid.
    pub const EINVAL: Errno = Errno(22);
    /// No such syscall.
    pub const ENOSYS: Errno = Errno(38);

    /// The largest error number a result can carry (Linux's `MAX_ERRNO`).
    pub const MAX: u64 = 4095;

    /// The symbolic name, for messages (`"EFAULT"`), or `None` if unknown.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Errno::EPERM => "EPERM",
            Errno::ESRCH => "ESRCH",
            Errno::EINTR => "EINTR",
            Errno::EAGAIN => "EAGAIN",
            Errno::ENOMEM => "ENOMEM",
            Errno::EFAULT => "EFAULT",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::EINVAL => "EINVAL",
            Errno::ENOSYS => "ENOSYS",
            _ => return None,
        })
    }

    /// The value the kernel puts in `rax` for this error: `-errno`.
    pub fn to_ret(self) -> u64 {
        (-i64::from(self.0)) as u64
    }
}

/// Encodes a syscall result for `rax` (the kernel side).
pub fn encode(result: Result<u64, Errno>) -> u64 {
    match result {
        Ok(v) => {
            debug_assert!(decode(v).is_ok(), "result {v:#x} would read as an error");
            v
        }
        Err(e) => e.to_ret(),
    }
}

/// Decodes `rax` after a syscall (the user side).
pub fn decode(rax: u64) -> Result<u64, Errno> {
    // -4095..=-1 as unsigned is the top 4095 values.
    if rax > u64::MAX - Errno::MAX {
        Err(Errno((rax as i64).unsigned_abs() as u16))
    } else {
        Ok(rax)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_numbers() {
        let expect = [
            (Errno::EPERM, 1),
            (Errno::ESRCH, 3),
            (Errno::EINTR, 4),
            (Errno::EAGAIN, 11),
            (Errno::ENOMEM, 12),
            (Errno::EFAULT, 14),
            (Errno::EBUSY, 16),
            (Errno::EEXIST, 17),
            (Errno::EINVAL, 22),
            (Errno::ENOSYS, 38),
        ];
        for (e, n) in expect {
            assert_eq!(e.0, n, "{e}");
        }
    }

    #[test]
    fn round_trip() {
        for e in [Errno::EPERM, Errno::EFAULT, Errno::ENOSYS, Errno(4095)] {
            assert_eq!(e.to_ret() as i64, -i64::from(e.0));
            assert_eq!(decode(encode(Err(e))), Err(e));
        }
        for v in [0, 1, 0x7fff_ffff_f000, (1 << 63) - 1, u64::MAX - 4095] {
            assert_eq!(decode(encode(Ok(v))), Ok(v));
        }
    }

    #[test]
    fn only_the_top_4095_values_are_errors() {
        assert_eq!(decode(u64::MAX), Err(Errno(1)));
        assert_eq!(decode(u64::MAX - 4094), Err(Errno(4095)));
        assert_eq!(decode(u64::MAX - 4095), Ok(u64::MAX - 4095));
    }

    #[test]
    fn names_for_messages() {
        assert_eq!(format!("{}", Errno::EFAULT), "EFAULT");
        assert_eq!(format!("{:?}", Errno(99)), "Errno(99)");
    }
}
