//! `map`: a new anonymous private mapping (Linux's `mmap`).

use super::{MapAt, Mm, MmError, USER_END, USER_START, check_range};
use crate::phases::{Phase, Timer};
use crate::platform::Platform;
use crate::vma::{PAGE_SIZE, Prot};

impl<P: Platform> Mm<P> {
    /// Map `len` bytes of anonymous private memory with protection `prot`.
    /// Returns the address.
    pub fn map(&self, at: MapAt, len: u64, prot: u32) -> Result<u64, MmError> {
        let _t = Timer::<P>::start(Phase::MapTotal);
        let prot = Prot::from_bits(prot).ok_or(MmError::BadFlags)?;
        if len == 0 {
            return Err(MmError::ZeroLength);
        }
        if !len.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::Unaligned);
        }
        if let MapAt::Fixed(addr) = at {
            check_range(addr, len)?;
        }
        let w = self.write_lock();
        // A fixed mapping in the middle of a VMA splits it: two more.
        self.room_for(if matches!(at, MapAt::Fixed(_)) { 2 } else { 1 })?;
        let start = match at {
            MapAt::Fixed(addr) => {
                self.unmap_locked(&w, addr..addr + len);
                addr
            }
            MapAt::Hint(h) if check_range(h, len).is_ok() && self.is_free(h..h + len) => h,
            _ => self.find_gap(len)?,
        };
        self.edit(&w, &[], &[(start..start + len, prot, false)]);
        Ok(start)
    }

    /// The lowest free range of `len` bytes (caller holds the mmap lock).
    fn find_gap(&self, len: u64) -> Result<u64, MmError> {
        let g = P::read_lock();
        self.vmas
            .find_gap(len, USER_START..USER_END, &g)
            .ok_or(MmError::NoMemory)
    }
}
