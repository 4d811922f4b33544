//! User page faults: why one was bad, the user fault handler, and the per-CPU
//! fault counters.
//!
//! A *bad* fault is one the kernel cannot fix by mapping a page: the address is
//! in no VMA, or the access is against the VMA's rights. If the faulting
//! thread registered a handler (`SET_FAULT_HANDLER`), the kernel runs it;
//! otherwise the whole process ends with a one-line message.
//!
//! The handler is entered like a thread ([`crate::thread`]) on the stack given
//! at registration, as if called as
//! `extern "C" fn(addr: u64, reason: u64, rip: u64) -> !`:
//! `addr` is the faulting address (CR2), `reason` a [`FaultReason`] number,
//! `rip` the address of the faulting instruction. The handler must end with
//! `FAULT_RETURN(resume_rip)`: the kernel restores every register of the
//! faulting context and continues at the faulting instruction (`resume_rip =
//! 0`, which faults again unless the handler fixed the mapping) or at
//! `resume_rip`. A bad fault inside the handler ends the process.

/// Why a user fault was bad (the `reason` argument of the handler).
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
}

impl FaultReason {
    /// Every reason, in number order.
    pub const ALL: [FaultReason; 4] = [
        FaultReason::NotMapped,
        FaultReason::WriteToReadOnly,
        FaultReason::ExecNoExec,
        FaultReason::ProtNone,
    ];

    /// The reason numbered `n`, if any.
    pub fn from_u64(n: u64) -> Option<FaultReason> {
        Self::ALL.into_iter().find(|r| *r as u64 == n)
    }

    /// A short phrase for messages.
    pub fn describe(self) -> &'static str {
        match self {
            FaultReason::NotMapped => "not mapped",
            FaultReason::WriteToReadOnly => "write to read-only",
            FaultReason::ExecNoExec => "execute of no-exec",
            FaultReason::ProtNone => "read of PROT_NONE",
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
        assert_eq!(FaultReason::from_u64(5), None);
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
