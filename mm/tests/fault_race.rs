//! Two faults on the same fresh page at once, the race the fault handler's
//! page installation must win exactly once: one frame is installed, zeroed,
//! with the VMA's rights; the loser uses the winner's page and gives its own
//! frame back. Real threads over many pages, counting the frames.
//!
//! Why not loom: the page-table entries are `core` atomics reached through
//! frame pointers, which loom cannot see, so it would run each installation
//! without a switch and never find the race.
//!
//! `cargo test -p mm --test fault_race` (the only test in this binary, so
//! the global frame count is its own).
#![cfg(not(loom))]

use mm::page_table::{ADDR_MASK, PteFlags};

const X: u64 = 0x10_0000;
const PAGE: u64 = 4096;

/// The leaf entry for `va` in the page table whose root is `root`, read
/// through the platform's frame pointers (0 if a table is missing). Call
/// only when no fault is running: it reads the tables without atomics.
fn leaf_value(root: u64, va: u64, frame_ptr: impl Fn(u64) -> *mut u8) -> u64 {
    let mut table = root;
    for level in (1..=4).rev() {
        let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        // SAFETY: `table` is a live page-table frame of the address space
        // (the caller holds the address space and no fault or unmap runs),
        // 4096 bytes, 8-aligned; `index` < 512.
        let entry = unsafe { frame_ptr(table).cast::<u64>().add(index).read_volatile() };
        if level == 1 {
            return entry;
        }
        if !PteFlags::of(entry).contains(PteFlags::PRESENT) {
            return 0;
        }
        table = entry & ADDR_MASK;
    }
    unreachable!("the loop returns at level 1")
}

/// Whether the page of the leaf entry `pte` reads as zeroes.
fn page_is_zero(pte: u64, frame_ptr: impl Fn(u64) -> *mut u8) -> bool {
    // SAFETY: `pte` is a present leaf of a live address space, so its frame
    // is a mapped 4096-byte page; no fault writes it while we read.
    let bytes = unsafe { core::slice::from_raw_parts(frame_ptr(pte & ADDR_MASK), PAGE as usize) };
    bytes.iter().all(|b| *b == 0)
}

mod host {
    use std::sync::{Arc, Barrier};
    use std::thread;

    use mm::fault::{Access, FaultOutcome, handle_user_fault};
    use mm::host::Host;
    use mm::mm::{MapAt, Mm};
    use mm::platform::Platform;
    use mm::vma::Prot;
    use mm::vma_cache::VmaCache;

    use super::{PAGE, X, leaf_value, page_is_zero};

    const THREADS: usize = 4;
    const PAGES: u64 = 64;
    const ROUNDS: usize = 20;

    /// Rounds of `THREADS` threads faulting the same `PAGES` fresh pages in
    /// the same order from a common start, so most faults race with another.
    /// Each round maps, faults, checks and unmaps; freed frames are poisoned
    /// by the host platform, so a frame installed without zeroing shows.
    #[test]
    fn racing_faults_install_each_page_once() {
        let frames_before = Host::frames_in_use();
        let cache = Arc::new(VmaCache::<Host>::new());
        let mm = Arc::new(Mm::new(cache).unwrap());
        for round in 0..ROUNDS {
            assert_eq!(
                mm.map(MapAt::Fixed(X), PAGES * PAGE, Prot::RW.bits()),
                Ok(X)
            );
            let start = Arc::new(Barrier::new(THREADS));
            let threads: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (mm, start) = (mm.clone(), start.clone());
                    thread::spawn(move || {
                        start.wait();
                        for page in 0..PAGES {
                            let access = if (t + page as usize).is_multiple_of(2) {
                                Access::Write
                            } else {
                                Access::Read
                            };
                            let r = handle_user_fault(&mm, X + page * PAGE + t as u64, access);
                            assert_eq!(r, FaultOutcome::Done, "round {round} page {page}");
                        }
                        assert_eq!(Host::held_locks(), 0);
                    })
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
            assert_eq!(mm.rss(), PAGES, "round {round}: one frame per page");
            assert_eq!(mm.census().0, PAGES, "round {round}: present leaves");
            for page in 0..PAGES {
                let pte = leaf_value(mm.page_table_root(), X + page * PAGE, Host::frame_ptr);
                assert!(
                    page_is_zero(pte, Host::frame_ptr),
                    "round {round}: page {page} not zeroed"
                );
            }
            // Frames in use: the pages, the tables and the root, no more (a
            // losing fault that kept its frame leaks one here).
            let tables = mm.page_table_pages() as usize;
            assert_eq!(
                Host::frames_in_use() - frames_before,
                PAGES as usize + tables + 1,
                "round {round}: frames in use beyond pages and tables"
            );
            mm.unmap(X, PAGES * PAGE).unwrap();
        }
        drop(mm);
        assert_eq!(Host::frames_in_use(), frames_before, "frames leaked");
    }
}
