//! Address-space operations and the fault path on the host platform.
#![cfg(not(loom))]

use std::sync::Arc;

use mm::counters::FaultStats;
use mm::fault::{Access, FaultOutcome, handle_user_fault};
use mm::host::Host;
use mm::mm::{MapAt, Mm, MmError, MmRef, USER_END, USER_START};
use mm::vma::Prot;
use mm::vma_cache::VmaCache;

const P: u64 = 4096;
const R: u32 = 1;
const W: u32 = 2;
const X: u32 = 4;
const A: u64 = 0x40_0000;

fn new_mm() -> MmRef<Host> {
    Mm::new(Arc::new(VmaCache::new())).unwrap()
}

fn layout(mm: &Mm<Host>) -> Vec<(u64, u64, u32)> {
    mm.vmas()
        .into_iter()
        .map(|(r, p)| (r.start, r.end, p.bits()))
        .collect()
}

#[test]
fn map_validates_arguments() {
    let mm = new_mm();
    assert_eq!(mm.map(MapAt::Fixed(A), 0, R), Err(MmError::ZeroLength));
    assert_eq!(mm.map(MapAt::Fixed(A + 1), P, R), Err(MmError::Unaligned));
    assert_eq!(mm.map(MapAt::Fixed(A), P + 1, R), Err(MmError::Unaligned));
    assert_eq!(
        mm.map(MapAt::Fixed(u64::MAX - P + 1), 2 * P, R),
        Err(MmError::Overflow)
    );
    assert_eq!(mm.map(MapAt::Fixed(0), P, R), Err(MmError::OutOfRange));
    assert_eq!(
        mm.map(MapAt::Fixed(USER_END - P), 2 * P, R),
        Err(MmError::OutOfRange)
    );
    assert_eq!(mm.map(MapAt::Fixed(A), P, 8), Err(MmError::BadFlags));
    assert_eq!(mm.unmap(A, 0), Err(MmError::ZeroLength));
    assert_eq!(mm.protect(A, P, 0x10), Err(MmError::BadFlags));
    assert_eq!(MmError::BadFlags.errno(), 22);
    assert_eq!(MmError::NoMemory.errno(), 12);
    assert_eq!(mm.vma_count(), 0);
}

#[test]
fn map_any_hint_and_fixed() {
    let mm = new_mm();
    assert_eq!(mm.map(MapAt::Any, 2 * P, R | W), Ok(USER_START));
    assert_eq!(mm.map(MapAt::Hint(A), P, R), Ok(A));
    // Hint taken: falls back to the lowest gap.
    assert_eq!(mm.map(MapAt::Hint(A), P, R), Ok(USER_START + 2 * P));
    // Fixed over [A - P, A + P) replaces the part of what was there.
    assert_eq!(mm.map(MapAt::Fixed(A - P), 2 * P, X), Ok(A - P));
    assert_eq!(
        layout(&mm),
        vec![
            (USER_START, USER_START + 2 * P, 3),
            (USER_START + 2 * P, USER_START + 3 * P, 1),
            (A - P, A + P, 4)
        ]
    );
    assert_eq!(mm.find(A), Some((A - P..A + P, Prot::EXEC)));
    assert_eq!(mm.find(A + P), None);
}

#[test]
fn unmap_splits_at_both_edges() {
    let mm = new_mm();
    mm.map(MapAt::Fixed(A), 8 * P, R | W).unwrap();
    mm.unmap(A + 2 * P, 3 * P).unwrap();
    assert_eq!(
        layout(&mm),
        vec![(A, A + 2 * P, 3), (A + 5 * P, A + 8 * P, 3)]
    );
    // Unmapping a hole is fine.
    mm.unmap(A + 2 * P, P).unwrap();
    mm.unmap(A - 4 * P, 20 * P).unwrap();
    assert!(layout(&mm).is_empty());
}

#[test]
fn protect_splits_and_merges() {
    let mm = new_mm();
    mm.map(MapAt::Fixed(A), 6 * P, R).unwrap();
    mm.protect(A + 2 * P, 2 * P, R | W).unwrap();
    assert_eq!(
        layout(&mm),
        vec![
            (A, A + 2 * P, 1),
            (A + 2 * P, A + 4 * P, 3),
            (A + 4 * P, A + 6 * P, 1)
        ]
    );
    mm.protect(A + 2 * P, 2 * P, R).unwrap();
    assert_eq!(
        layout(&mm),
        vec![(A, A + 6 * P, 1)],
        "equal neighbours merge"
    );
    // Separately mapped but equal and adjacent: protect merges them too.
    mm.map(MapAt::Fixed(A + 6 * P), P, R | W).unwrap();
    mm.protect(A + 6 * P, P, R).unwrap();
    assert_eq!(layout(&mm), vec![(A, A + 7 * P, 1)]);
    assert_eq!(mm.protect(A + 6 * P, 2 * P, R), Err(MmError::NotMapped));
    assert_eq!(mm.protect(A - P, 2 * P, R), Err(MmError::NotMapped));
}

#[test]
fn faults_install_zeroed_pages_and_check_rights() {
    let mm = new_mm();
    mm.map(MapAt::Fixed(A), 4 * P, R | W).unwrap();
    mm.map(MapAt::Fixed(A + 8 * P), P, R).unwrap();
    assert_eq!(
        handle_user_fault(&mm, A + 5, Access::Write),
        FaultOutcome::Done
    );
    assert_eq!(
        handle_user_fault(&mm, A + 5, Access::Write),
        FaultOutcome::Done,
        "already mapped"
    );
    assert_eq!(
        handle_user_fault(&mm, A + P, Access::Read),
        FaultOutcome::Done
    );
    assert_eq!(
        handle_user_fault(&mm, A, Access::Exec),
        FaultOutcome::AccessError
    );
    assert_eq!(
        handle_user_fault(&mm, A + 8 * P, Access::Write),
        FaultOutcome::AccessError
    );
    assert_eq!(
        handle_user_fault(&mm, A + 4 * P, Access::Read),
        FaultOutcome::AccessError,
        "no VMA"
    );
    assert_eq!(mm.rss(), 2);
    assert_eq!(mm.page_table_pages(), 3);
    let s = mm.counters.snapshot();
    // First fault in the VMA: retry (anon setup needs mmap_lock), then
    // fallback. Two more good faults: per-VMA successes. The three refused
    // ones are not counted yet: the caller counts them (`count_bad_fault`).
    assert_eq!(
        s,
        FaultStats {
            success: 2,
            abort: 1,
            retry: 1,
            miss: 0,
            fallback: 1,
            segv: 0
        },
        "the fault outside any VMA aborts the per-VMA path"
    );
    // Unmapping everything frees data pages and page-table pages.
    let before = Host::shootdowns();
    mm.unmap(A, 16 * P).unwrap();
    assert!(Host::shootdowns() > before);
    assert_eq!((mm.rss(), mm.page_table_pages()), (0, 0));
    assert_eq!(Host::held_locks(), 0);
}

#[test]
fn protect_rewrites_present_pages() {
    let mm = new_mm();
    mm.map(MapAt::Fixed(A), 2 * P, R | W).unwrap();
    assert_eq!(handle_user_fault(&mm, A, Access::Write), FaultOutcome::Done);
    mm.protect(A, 2 * P, R).unwrap();
    assert_eq!(
        handle_user_fault(&mm, A, Access::Write),
        FaultOutcome::AccessError
    );
    assert_eq!(handle_user_fault(&mm, A, Access::Read), FaultOutcome::Done);
    mm.protect(A, 2 * P, 0).unwrap();
    assert_eq!(
        handle_user_fault(&mm, A, Access::Read),
        FaultOutcome::AccessError
    );
    assert_eq!(mm.rss(), 1, "PROT_NONE keeps the page");
    mm.protect(A, 2 * P, R | W).unwrap();
    assert_eq!(handle_user_fault(&mm, A, Access::Write), FaultOutcome::Done);
    assert_eq!(mm.rss(), 1);
}

#[test]
fn out_of_memory_is_reported() {
    let mm = new_mm();
    mm.map(MapAt::Fixed(A), P, R | W).unwrap();
    Host::fail_next_frames(1);
    assert_eq!(
        handle_user_fault(&mm, A, Access::Write),
        FaultOutcome::OutOfMemory
    );
    assert_eq!(handle_user_fault(&mm, A, Access::Write), FaultOutcome::Done);
    assert_eq!(mm.rss(), 1);
}

#[test]
fn switch_off_per_vma_path() {
    let mm = new_mm();
    mm.map(MapAt::Fixed(A), 4 * P, R | W).unwrap();
    mm.set_per_vma_lock(false);
    for i in 0..4 {
        assert_eq!(
            handle_user_fault(&mm, A + i * P, Access::Write),
            FaultOutcome::Done
        );
    }
    assert_eq!(
        mm.counters.snapshot(),
        FaultStats {
            fallback: 4,
            ..FaultStats::default()
        }
    );
}

#[test]
fn exit_frees_everything_of_the_mm() {
    let cache = Arc::new(VmaCache::<Host>::new());
    let mm = Mm::new(cache.clone()).unwrap();
    for i in 0..10 {
        mm.map(MapAt::Fixed(A + i * 0x20_0000), 3 * P, R | W)
            .unwrap();
        handle_user_fault(&mm, A + i * 0x20_0000, Access::Write);
    }
    assert_eq!(cache.in_use(), 10);
    let other = mm.clone();
    drop(mm);
    assert_eq!(cache.in_use(), 10, "a second user keeps the address space");
    drop(other);
    assert_eq!(cache.in_use(), 0);
}

/// The user range comes from the ABI: nothing below `USER_START` (64 KiB),
/// nothing in the guard page at `USER_END`, whichever way a mapping is asked
/// for.
#[test]
fn map_never_uses_page_zero_or_the_guard_page() {
    let mm = new_mm();
    assert_eq!(USER_START, 0x1_0000);
    assert_eq!(USER_END, 0x8000_0000_0000 - P);
    for fixed in [0, P, USER_START - P, USER_END, USER_END + P] {
        assert_eq!(
            mm.map(MapAt::Fixed(fixed), P, R),
            Err(MmError::OutOfRange),
            "fixed {fixed:#x}"
        );
    }
    assert_eq!(
        mm.map(MapAt::Fixed(USER_END - P), 2 * P, R),
        Err(MmError::OutOfRange)
    );
    assert_eq!(mm.unmap(USER_END - P, 2 * P), Err(MmError::OutOfRange));
    assert_eq!(mm.protect(0, P, R), Err(MmError::OutOfRange));
    // Hints outside the range are ignored: the mapping goes to the lowest gap.
    assert_eq!(mm.map(MapAt::Hint(0), P, R), Ok(USER_START));
    assert_eq!(mm.map(MapAt::Hint(USER_END), P, R), Ok(USER_START + P));
    // Both end pages can be had explicitly.
    assert_eq!(mm.map(MapAt::Fixed(USER_END - P), P, R), Ok(USER_END - P));
    mm.unmap(USER_START, 2 * P).unwrap();
    assert_eq!(mm.map(MapAt::Fixed(USER_START), P, R), Ok(USER_START));
    mm.unmap(USER_START, P).unwrap();
    mm.unmap(USER_END - P, P).unwrap();

    // Fill the whole space with `Any` mappings, halving the length whenever
    // the current one no longer fits, down to one page.
    let mut len = 1u64 << 40;
    loop {
        match mm.map(MapAt::Any, len, R) {
            Ok(a) => assert!(
                a >= USER_START && a + len <= USER_END,
                "{len:#x} bytes at {a:#x}"
            ),
            Err(MmError::NoMemory) if len > P => len /= 2,
            Err(MmError::NoMemory) => break,
            Err(e) => panic!("map of {len:#x}: {e:?}"),
        }
    }
    let vmas = layout(&mm);
    assert_eq!(vmas.first().map(|v| v.0), Some(USER_START));
    assert_eq!(vmas.last().map(|v| v.1), Some(USER_END));
    let covered: u64 = vmas.iter().map(|(s, e, _)| e - s).sum();
    assert_eq!(covered, USER_END - USER_START, "the space is not full");
    mm.check_invariants();
}

/// Every fault is counted once, as success, fallback or segv, whichever path
/// it takes and however it ends (the rule in `counters.rs`).
#[test]
fn each_fault_is_counted_once() {
    use mm::fault::handle_fault_mmap_locked;
    let mm = new_mm();
    mm.map(MapAt::Fixed(A), 8 * P, R | W).unwrap();
    mm.map(MapAt::Fixed(A + 8 * P), P, R).unwrap();
    let (mut good, mut bad) = (0, 0);
    let mut fault = |addr, access, per_vma| {
        mm.set_per_vma_lock(per_vma);
        match handle_user_fault(&mm, addr, access) {
            FaultOutcome::Done => good += 1,
            FaultOutcome::AccessError => {
                // What the kernel does when it gives up on the fault.
                mm.count_bad_fault(0);
                bad += 1;
            }
            o => panic!("{o:?}"),
        }
    };
    for per_vma in [true, false] {
        for i in 0..8 {
            fault(A + i * P, Access::Write, per_vma); // good, first time
            fault(A + i * P, Access::Read, per_vma); // good, already mapped
        }
        fault(A + 8 * P, Access::Write, per_vma); // read-only VMA
        fault(A + 8 * P, Access::Exec, per_vma); // no exec
        fault(A + 9 * P, Access::Read, per_vma); // no VMA
        fault(USER_START - P, Access::Read, per_vma); // below user space
    }
    let s = mm.counters.snapshot();
    assert_eq!((good, bad), (32, 8));
    assert_eq!(s.success + s.fallback, good, "{s:?}");
    assert_eq!(s.segv, bad, "{s:?}");
    // Kernel-mode faults count themselves, refused ones as segv.
    assert_eq!(
        handle_fault_mmap_locked(&mm, A + 9 * P, Access::Read),
        FaultOutcome::AccessError
    );
    assert_eq!(
        handle_fault_mmap_locked(&mm, A, Access::Write),
        FaultOutcome::Done
    );
    // No memory: the fault ends as segv, counted by `mm` itself.
    mm.map(MapAt::Fixed(A + 16 * P), P, R | W).unwrap();
    Host::fail_next_frames(1);
    assert_eq!(
        handle_user_fault(&mm, A + 16 * P, Access::Write),
        FaultOutcome::OutOfMemory
    );
    let s2 = mm.counters.snapshot();
    assert_eq!(s2.faults(), s.faults() + 3, "{s2:?}");
    assert_eq!(s2.segv, s.segv + 2, "{s2:?}");
}

/// `set_frame_limit` caps the resident pages: the next fault is out of
/// memory, and nothing else changes.
#[test]
fn frame_limit_ends_faults_with_out_of_memory() {
    let mm = new_mm();
    mm.set_frame_limit(3);
    mm.map(MapAt::Fixed(A), 8 * P, R | W).unwrap();
    for i in 0..3 {
        assert_eq!(
            handle_user_fault(&mm, A + i * P, Access::Write),
            FaultOutcome::Done
        );
    }
    assert_eq!(
        handle_user_fault(&mm, A + 3 * P, Access::Write),
        FaultOutcome::OutOfMemory
    );
    // Pages already there still fault in fine (a stale TLB entry).
    assert_eq!(handle_user_fault(&mm, A, Access::Read), FaultOutcome::Done);
    assert_eq!(mm.rss(), 3);
    mm.set_frame_limit(u64::MAX);
    assert_eq!(
        handle_user_fault(&mm, A + 3 * P, Access::Write),
        FaultOutcome::Done
    );
}

/// No address space grows past `MAX_MAP_COUNT` VMAs: map, a splitting
/// munmap and a splitting mprotect fail with `NoMemory` at the limit, and
/// unmapping whole VMAs still works there.
#[test]
fn vma_count_is_bounded() {
    use mm::mm::MAX_MAP_COUNT;
    let mm = new_mm();
    // Alternate rights so neighbours never merge: one VMA per page.
    // Bounded, so a missing limit fails instead of running for ever.
    let mut n = 0;
    let mut err = None;
    while n <= MAX_MAP_COUNT {
        match mm.map(MapAt::Any, P, if n % 2 == 0 { R } else { 0 }) {
            Ok(_) => n += 1,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert_eq!(err, Some(MmError::NoMemory));
    assert_eq!(n, MAX_MAP_COUNT);
    assert_eq!(mm.vma_count(), MAX_MAP_COUNT);
    let base = USER_START + 0x1000_0000;
    assert_eq!(mm.map(MapAt::Fixed(base), P, R), Err(MmError::NoMemory));
    // Make room for one 3-page VMA, then try to split it.
    mm.unmap(USER_START, 3 * P).unwrap();
    mm.map(MapAt::Fixed(base), 3 * P, R).unwrap();
    assert_eq!(mm.vma_count(), MAX_MAP_COUNT - 2);
    mm.map(MapAt::Any, P, R).unwrap();
    assert_eq!(mm.vma_count(), MAX_MAP_COUNT - 1);
    // A protect in the middle would add two.
    assert_eq!(mm.protect(base + P, P, W), Err(MmError::NoMemory));
    mm.map(MapAt::Any, P, R).unwrap();
    assert_eq!(mm.vma_count(), MAX_MAP_COUNT);
    // A hole in the middle would add one.
    assert_eq!(mm.unmap(base + P, P), Err(MmError::NoMemory));
    assert_eq!(mm.find(base + P), Some((base..base + 3 * P, Prot::READ)));
    mm.unmap(base, 3 * P).unwrap();
    assert_eq!(mm.vma_count(), MAX_MAP_COUNT - 1);
}
