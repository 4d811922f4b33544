//! Bad user faults and CPU exceptions: why one happened, the user fault
//! handler, and the per-CPU fault counters.
//!
//! A *bad* page fault is one the kernel cannot fix by mapping a page: the
//! address is in no VMA, or the access is against the VMA's rights. Every
//! other CPU exception a ring-3 instruction raises (a divide by zero, `ud2`,
//! `int3`, a privileged instruction, a non-canonical address, an unmasked
//! x87/SSE exception, ...) is handled the same way, each with its own
//! [`FaultReason`]. If the faulting thread registered a handler
//! (`SET_FAULT_HANDLER`), the kernel runs it; otherwise the whole process
//! ends with a one-line message.
//!
//! The handler is entered like a thread ([`crate::thread`]) on the stack given
//! at registration, as if called as
//! `extern "C" fn(addr: u64, reason: u64, rip: u64, error_code: u64) -> !`:
//! `addr` is the faulting address for a page fault (CR2) and 0 for every
//! other exception, `reason` a [`FaultReason`] number, `rip` the address the
//! CPU reported (the faulting instruction for a fault; the *next* instruction
//! for the traps [`FaultReason::Debug`], [`FaultReason::Breakpoint`] and
//! [`FaultReason::Overflow`]), `error_code` what the CPU pushed (the page-fault
//! error code, the selector of a #GP/#NP/#SS, else 0). The handler must end
//! with `FAULT_RETURN(resume_rip)`: the kernel restores every register of the
//! faulting context and continues at the reported RIP (`resume_rip = 0`, which
//! faults again unless the handler fixed the cause) or at `resume_rip`. A bad
//! fault inside the handler ends the process.

/// Why a user fault was bad (the `reason` argument of the handler). Numbers
/// 1 to 4 are page faults; the rest name one CPU exception each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum FaultReason {
    /// No VMA covers the address.
    NotMapped = 1,
    /// A write to a VMA without `PROT_WRITE`.
    WriteToReadOnly = 2,
    /// An instruction fetch from a VMA without `PROT_EXEC`.
    ExecNoExec = 3,
    /// A read from a `PROT_NONE` VMA.
    ProtNone = 4,
    /// #DE (0): `div`/`idiv` by zero or with a quotient too large.
    DivideError = 5,
    /// #DB (1): a single-step trap (RFLAGS.TF).
    Debug = 6,
    /// #BP (3): `int3` (or `int 3`).
    Breakpoint = 7,
    /// #OF (4): `int 4` (`into` does not exist in 64-bit mode: it is #UD).
    Overflow = 8,
    /// #BR (5): cannot be raised in 64-bit mode (`bound` is #UD, MPX is off).
    BoundRange = 9,
    /// #UD (6): an undefined or unsupported instruction (`ud2`, `into`).
    InvalidOpcode = 10,
    /// #NM (7): an x87/SSE instruction while the kernel has them off.
    DeviceNotAvailable = 11,
    /// #NP (11): a segment not present (no ring-3 instruction can reach one).
    SegmentNotPresent = 12,
    /// #SS (12): a stack access at a non-canonical address.
    StackFault = 13,
    /// #GP (13): a privileged instruction (`hlt`, `cli`, `in`, `out`), `int n`
    /// to a kernel vector, a non-canonical address, `iretq` of a bad frame.
    GeneralProtection = 14,
    /// #MF (16): an unmasked x87 floating-point exception.
    X87Fp = 15,
    /// #AC (17): a misaligned access with RFLAGS.AC set.
    AlignmentCheck = 16,
    /// #XM (19): an unmasked SSE floating-point exception.
    SimdFp = 17,
    /// Any other exception vector below 32 (none is expected from ring 3).
    OtherException = 18,
}

impl FaultReason {
    /// Every reason, in number order.
    pub const ALL: [FaultReason; 18] = [
        FaultReason::NotMapped,
        FaultReason::WriteToReadOnly,
        FaultReason::ExecNoExec,
        FaultReason::ProtNone,
        FaultReason::DivideError,
        FaultReason::Debug,
        FaultReason::Breakpoint,
        FaultReason::Overflow,
        FaultReason::BoundRange,
        FaultReason::InvalidOpcode,
        FaultReason::DeviceNotAvailable,
        FaultReason::SegmentNotPresent,
        FaultReason::StackFault,
        FaultReason::GeneralProtection,
        FaultReason::X87Fp,
        FaultReason::AlignmentCheck,
        FaultReason::SimdFp,
        FaultReason::OtherException,
    ];

    /// The reason numbered `n`, if any.
    pub fn from_u64(n: u64) -> Option<FaultReason> {
        Self::ALL.into_iter().find(|r| *r as u64 == n)
    }

    /// The reason for CPU exception `vector` other than a page fault (whose
    /// reason depends on the VMA), NMI, #DF and #MC (never a process's
    /// doing): `None` for those and for interrupts (32 and up).
    pub fn for_vector(vector: u64) -> Option<FaultReason> {
        Some(match vector {
            0 => FaultReason::DivideError,
            1 => FaultReason::Debug,
            3 => FaultReason::Breakpoint,
            4 => FaultReason::Overflow,
            5 => FaultReason::BoundRange,
            6 => FaultReason::InvalidOpcode,
            7 => FaultReason::DeviceNotAvailable,
            11 => FaultReason::SegmentNotPresent,
            12 => FaultReason::StackFault,
            13 => FaultReason::GeneralProtection,
            16 => FaultReason::X87Fp,
            17 => FaultReason::AlignmentCheck,
            19 => FaultReason::SimdFp,
            2 | 8 | 14 | 18 => return None,
            v if v < 32 => FaultReason::OtherException,
            _ => return None,
        })
    }

    /// The exception vector this reason comes from (`None` for
    /// [`FaultReason::OtherException`], which covers several).
    pub fn vector(self) -> Option<u64> {
        Some(match self {
            FaultReason::NotMapped
            | FaultReason::WriteToReadOnly
            | FaultReason::ExecNoExec
            | FaultReason::ProtNone => 14,
            FaultReason::DivideError => 0,
            FaultReason::Debug => 1,
            FaultReason::Breakpoint => 3,
            FaultReason::Overflow => 4,
            FaultReason::BoundRange => 5,
            FaultReason::InvalidOpcode => 6,
            FaultReason::DeviceNotAvailable => 7,
            FaultReason::SegmentNotPresent => 11,
            FaultReason::StackFault => 12,
            FaultReason::GeneralProtection => 13,
            FaultReason::X87Fp => 16,
            FaultReason::AlignmentCheck => 17,
            FaultReason::SimdFp => 19,
            FaultReason::OtherException => return None,
        })
    }

    /// True for the traps: the CPU reports the instruction *after* the one
    /// that raised them, so resuming at the reported RIP goes on.
    pub fn is_trap(self) -> bool {
        matches!(
            self,
            FaultReason::Debug | FaultReason::Breakpoint | FaultReason::Overflow
        )
    }

    /// A short phrase for messages.
    pub fn describe(self) -> &'static str {
        match self {
            FaultReason::NotMapped => "not mapped",
            FaultReason::WriteToReadOnly => "write to read-only",
            FaultReason::ExecNoExec => "execute of no-exec",
            FaultReason::ProtNone => "read of PROT_NONE",
            FaultReason::DivideError => "divide error",
            FaultReason::Debug => "debug trap",
            FaultReason::Breakpoint => "breakpoint",
            FaultReason::Overflow => "overflow",
            FaultReason::BoundRange => "bound range exceeded",
            FaultReason::InvalidOpcode => "invalid opcode",
            FaultReason::DeviceNotAvailable => "FPU not available",
            FaultReason::SegmentNotPresent => "segment not present",
            FaultReason::StackFault => "stack fault",
            FaultReason::GeneralProtection => "general protection",
            FaultReason::X87Fp => "x87 floating-point exception",
            FaultReason::AlignmentCheck => "alignment check",
            FaultReason::SimdFp => "SIMD floating-point exception",
            FaultReason::OtherException => "unexpected exception",
        }
    }
}

/// One CPU's fault counters, as `FAULT_COUNTERS` copies them (48 bytes, six
/// `u64` in this order). They count since boot and are never reset, so a
/// program measures with the difference of two reads ([`FaultCounters::delta`]).
///
/// **Every page fault on a user address is counted exactly once, as
/// `success`, `fallback` or `segv`**, so `total()` is the number of faults;
/// `abort`, `retry` and `miss` count events on the way (any number per fault,
/// or none). A refused fault that the kernel looks at again (the mapping
/// changed under it) is still one fault, counted by how it finally ended.
/// Other exceptions than page faults are not counted here.
/// - `success`: the page was mapped (or found mapped: another CPU won, or a
///   stale TLB entry) holding only the VMA read lock (the per-VMA path);
/// - `abort`: the per-VMA path gave up (no VMA found, or the VMA read lock not
///   taken: a writer holds or waits for it) and fell back;
/// - `retry`: the per-VMA handler needed something only `mmap_lock` gives and
///   fell back;
/// - `miss`: the VMA was detached under the reader, which restarted the walk;
/// - `fallback`: the page was mapped under `mmap_lock` for read (after an
///   abort or retry, for every fault while the per-VMA path is switched off,
///   and for the kernel's own faults on user memory while copying syscall
///   arguments);
/// - `segv`: the fault was not resolved, whichever path found out: a bad
///   fault (see [`FaultReason`]; delivered to the handler or ending the
///   process), no memory for the page (the process is ended), or a kernel
///   copy that failed (the syscall returns `EFAULT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FaultCounters {
    pub success: u64,
    pub abort: u64,
    pub retry: u64,
    pub miss: u64,
    pub fallback: u64,
    pub segv: u64,
}

impl FaultCounters {
    /// Faults that mapped a page or found it mapped: the figure to compare
    /// with Linux's minor-fault count.
    pub fn handled(&self) -> u64 {
        self.success + self.fallback
    }

    /// Every fault counted, good or bad (each exactly once).
    pub fn total(&self) -> u64 {
        self.success + self.fallback + self.segv
    }

    /// Field-wise `self - earlier` (wrapping: counters are monotonic, so the
    /// difference is right even across a wrap).
    pub fn delta(&self, earlier: &FaultCounters) -> FaultCounters {
        FaultCounters {
            success: self.success.wrapping_sub(earlier.success),
            abort: self.abort.wrapping_sub(earlier.abort),
            retry: self.retry.wrapping_sub(earlier.retry),
            miss: self.miss.wrapping_sub(earlier.miss),
            fallback: self.fallback.wrapping_sub(earlier.fallback),
            segv: self.segv.wrapping_sub(earlier.segv),
        }
    }

    /// Field-wise sum (wrapping), for totals over CPUs.
    pub fn sum(&self, other: &FaultCounters) -> FaultCounters {
        FaultCounters {
            success: self.success.wrapping_add(other.success),
            abort: self.abort.wrapping_add(other.abort),
            retry: self.retry.wrapping_add(other.retry),
            miss: self.miss.wrapping_add(other.miss),
            fallback: self.fallback.wrapping_add(other.fallback),
            segv: self.segv.wrapping_add(other.segv),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_six_u64_in_order() {
        assert_eq!(core::mem::size_of::<FaultCounters>(), 48);
        assert_eq!(core::mem::align_of::<FaultCounters>(), 8);
        assert_eq!(core::mem::offset_of!(FaultCounters, success), 0);
        assert_eq!(core::mem::offset_of!(FaultCounters, abort), 8);
        assert_eq!(core::mem::offset_of!(FaultCounters, retry), 16);
        assert_eq!(core::mem::offset_of!(FaultCounters, miss), 24);
        assert_eq!(core::mem::offset_of!(FaultCounters, fallback), 32);
        assert_eq!(core::mem::offset_of!(FaultCounters, segv), 40);
    }

    #[test]
    fn reasons_round_trip() {
        for (i, r) in FaultReason::ALL.into_iter().enumerate() {
            assert_eq!(r as u64, i as u64 + 1);
            assert_eq!(FaultReason::from_u64(r as u64), Some(r));
        }
        assert_eq!(FaultReason::from_u64(0), None);
        assert_eq!(FaultReason::from_u64(19), None);
    }

    #[test]
    fn vectors_round_trip() {
        for r in FaultReason::ALL {
            match r.vector() {
                Some(14) => assert!((r as u64) <= 4, "{r:?}"),
                Some(v) => assert_eq!(FaultReason::for_vector(v), Some(r)),
                None => assert_eq!(r, FaultReason::OtherException),
            }
        }
        // Never a process's doing: NMI, #DF, #MC; #PF needs the VMA.
        for v in [2, 8, 14, 18, 32, 255] {
            assert_eq!(FaultReason::for_vector(v), None, "vector {v}");
        }
        for v in [9, 10, 15, 20, 21, 31] {
            assert_eq!(
                FaultReason::for_vector(v),
                Some(FaultReason::OtherException)
            );
        }
    }

    #[test]
    fn delta_sum_and_totals() {
        let a = FaultCounters {
            success: 10,
            abort: 1,
            retry: 2,
            miss: 3,
            fallback: 4,
            segv: 5,
        };
        let mut b = a;
        b.success = 15;
        b.fallback = 6;
        let d = b.delta(&a);
        assert_eq!(
            d,
            FaultCounters {
                success: 5,
                fallback: 2,
                ..Default::default()
            }
        );
        assert_eq!(d.handled(), 7);
        assert_eq!(a.total(), 19);
        assert_eq!(a.sum(&d).success, 15);
        let wrapped = FaultCounters {
            success: 2,
            ..Default::default()
        };
        let before = FaultCounters {
            success: u64::MAX,
            ..Default::default()
        };
        assert_eq!(wrapped.delta(&before).success, 3);
    }
}
