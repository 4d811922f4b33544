//! Argument checks and the VMA budget every operation consults.

use core::ops::Range;

use super::{MAX_MAP_COUNT, Mm, MmError};
use crate::platform::Platform;
use crate::vma::PAGE_SIZE;

/// Validate a user range given as address and length.
pub fn check_range(addr: u64, len: u64) -> Result<(), MmError> {
    if len == 0 {
        return Err(MmError::ZeroLength);
    }
    if !addr.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
        return Err(MmError::Unaligned);
    }
    let end = addr.checked_add(len).ok_or(MmError::Overflow)?;
    if !abi::mman::in_user_range(addr, end) {
        return Err(MmError::OutOfRange);
    }
    Ok(())
}

impl<P: Platform> Mm<P> {
    /// `NoMemory` unless `more` VMAs fit under [`MAX_MAP_COUNT`], and the
    /// kernel has memory to spare for them (`Platform::memory_low`). The
    /// caller holds the mmap write lock.
    pub(super) fn room_for(&self, more: usize) -> Result<(), MmError> {
        let _t = crate::phases::Timer::<P>::start(crate::phases::Phase::RoomCheck);
        if (more > 0 && P::memory_low()) || self.vmas.len() + more > MAX_MAP_COUNT {
            return Err(MmError::NoMemory);
        }
        Ok(())
    }

    /// Whether no VMA overlaps `range` (caller holds the mmap lock).
    pub(super) fn is_free(&self, range: Range<u64>) -> bool {
        let g = P::read_lock();
        self.vmas
            .find_next(range.start, &g)
            .is_none_or(|(r, _)| r.start >= range.end)
    }

    /// Whether some VMA overlaps `span` (caller holds the mmap lock).
    pub(super) fn is_covered(&self, span: Range<u64>) -> bool {
        !self.is_free(span)
    }
}
