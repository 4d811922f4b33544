//! Deterministic replays of five more races in the VMA lock protocol and the
//! memory it protects: the `mm_lock_seq` wrap, an `mprotect` that changes a
//! VMA in place while a fault holds it, the failure path LTP's `mtest06`
//! caught, a fault next to an unmap that frees page-table pages, and stale
//! pointers into memory that leaves the VMA cache and the tree.
//! Each arms race-injection points (`race.rs`) so that one exact
//! interleaving happens on two real CPUs, then asserts its outcome.
//!
//! As in `replay.rs`, the replays drive the real `mm` code from kernel tasks
//! pinned to different CPUs, on address spaces made for the test with their
//! own VMA cache. The CPU that waits at a point spins (it may be in an RCU
//! read section), so the one it waits for must be another CPU: a replay
//! needs two and reports itself skipped on one.
#![cfg(feature = "race-inject")]

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use mm::fault::{Access, FaultOutcome, handle_user_fault};
use mm::mm::{MapAt, Mm, MmRef};
use mm::page_table::{ADDR_MASK, PteFlags};
use mm::vma::Prot;
use mm::vma_cache::{VmaCache, vma_objects};

use crate::memory::{frame, heap, paging, phys_to_virt};
use crate::mm_platform::Kernel;
use crate::race::{Point, Session, at};
use crate::sched::{self, State, Task};
use crate::sync::SpinLock;
use crate::{kassert, kassert_eq, ktest, lockdep, race, rcu};

use super::replay::{
    JOIN_TIMEOUT_NS, NEEDS_TWO, PAGE, READER, READER_CPU, WRITER, X, Y, join, spawn_writer, vma_at,
};

/// How a reader's fault ended, and how many locks it still held then.
type Ended = Arc<SpinLock<Option<(FaultOutcome, usize)>>>;

/// An address space with its own VMA cache and `lock_seq` starting at `seq`.
fn new_mm(seq: u32) -> Result<MmRef<Kernel>, String> {
    Mm::<Kernel>::with_lock_seq(Arc::new(VmaCache::new()), seq)
        .map_err(|e| format!("no address space: {e:?}"))
}

fn map(mm: &Mm<Kernel>, addr: u64, len: u64, prot: Prot) -> Result<(), String> {
    mm.map(MapAt::Fixed(addr), len, prot.bits())
        .map(|_| ())
        .map_err(|e| format!("map {addr:#x}+{len:#x}: {e:?}"))
}

fn unmap(mm: &Mm<Kernel>, addr: u64, len: u64) -> Result<(), String> {
    mm.unmap(addr, len)
        .map_err(|e| format!("unmap {addr:#x}+{len:#x}: {e:?}"))
}

/// A fault taken by the test itself, outside any replay; it must succeed.
fn fault(mm: &Mm<Kernel>, addr: u64, access: Access) -> Result<(), String> {
    match handle_user_fault(mm, addr, access) {
        FaultOutcome::Done => Ok(()),
        other => Err(format!("fault at {addr:#x}: {other:?}")),
    }
}

/// Spawn a reader: one user fault at `addr`; its outcome and the number of
/// locks the task held afterwards are kept.
fn spawn_fault(mm: &MmRef<Kernel>, addr: u64, access: Access) -> (Arc<Task>, Ended) {
    let out: Ended = Arc::new(SpinLock::new(None));
    let (mm, o) = (mm.clone(), out.clone());
    let t = sched::spawn(READER, Some(READER_CPU), move || {
        let outcome = handle_user_fault(&mm, addr, access);
        *o.lock() = Some((outcome, lockdep::held_count()));
    });
    (t, out)
}

fn exited(t: &Task) -> bool {
    t.state() == State::Exited
}

/// Sleep until `cond` holds, failing (not hanging) after `JOIN_TIMEOUT_NS`.
fn wait_until(what: &str, cond: impl Fn() -> bool) -> Result<(), String> {
    let deadline = crate::time::uptime_ns() + JOIN_TIMEOUT_NS;
    while !cond() {
        if crate::time::uptime_ns() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        sched::sleep_ns(100_000);
    }
    Ok(())
}

/// The reader's outcome and the locks it held at its end.
fn ended(o: &Ended) -> Result<(FaultOutcome, usize), String> {
    o.lock()
        .ok_or_else(|| String::from("the fault did not finish"))
}

/// Free frames plus the frames the kernel's own growing structures (heap,
/// kernel page tables) took, once deferred frees have landed: flat across
/// an address space that gave everything back.
fn frames_baseline() -> usize {
    rcu::rcu_barrier();
    frame::free_count() + heap::mapped_frames() + paging::kernel_table_frames()
}

/// The hardware walk of `va` in the page table rooted at `root`: for each
/// level from the PML4 down, the table's frame and its entry for `va`,
/// stopping after the first entry that is not present.
fn walk(root: u64, va: u64) -> Vec<(u64, u64)> {
    let mut path = Vec::new();
    let mut table = root;
    for level in (1..=4u32).rev() {
        let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        // SAFETY: `table` is the root or was reached through present entries
        // of an address space the test holds, with no writer running: a
        // live page-table frame, covered by the direct map; its entries are
        // atomics (faults install them with compare-exchange).
        let entry = unsafe { AtomicU64::from_ptr(phys_to_virt(table).cast::<u64>().add(index)) };
        let e = entry.load(Ordering::Acquire);
        path.push((table, e));
        if !PteFlags::of(e).contains(PteFlags::PRESENT) {
            break;
        }
        table = e & ADDR_MASK;
    }
    path
}

// `mm_lock_seq` wrap. Y is write-locked in the mm's last cycle before the
// count wraps (u32::MAX) and never again; after 2^31 cycles the count is
// back at u32::MAX, while a writer protects X. Now X (really write-locked)
// and Y (not locked: its value is 2^32 old) both hold the mm's value. A
// fault in X must not enter it while the writer holds it (a false
// "unlocked"); a fault in Y sees a false "locked", which only sends it to the
// mmap_lock. Both pages are installed only after the writer is done, and the
// unlock (wrapping the count to 0) ends Y's false "locked".
ktest!(
    fn replay_lock_seq_wrap() {
        if !race::enough_cpus() {
            return crate::ktest::skip(NEEDS_TWO);
        }
        let mm = new_mm(u32::MAX - 1)?;
        map(&mm, Y, 2 * PAGE, Prot::RW)?; // cycle u32::MAX; the unlock wraps to 0
        map(&mm, X, 2 * PAGE, Prot::RW)?; // cycle 1
        // First faults (under the mmap_lock) set up both VMAs' anonymous
        // memory, so the replay's faults need only the VMA lock.
        fault(&mm, Y + PAGE, Access::Write)?;
        fault(&mm, X + PAGE, Access::Write)?;
        let y = vma_at(&mm, Y)?;
        // SAFETY: Y stays attached to `mm`, which the test holds, until the
        // end of the test (nothing unmaps it).
        let y_vma = unsafe { &*y };
        kassert_eq!(y_vma.lock_seq(), u32::MAX, "Y locked before the wrap");
        kassert_eq!(mm.lock_seq(), 2);
        // 2^31 - 2 cycles on: the next write lock takes the count to u32::MAX.
        mm.fast_forward_lock_seq((u32::MAX - 3) / 2);
        kassert_eq!(mm.lock_seq(), u32::MAX - 1);

        let x_old = vma_at(&mm, X)?;
        let reports = lockdep::total_reports();
        let before = mm.counters.snapshot();
        let s = Session::begin()?;
        let reader = |p: Point| at(p).mm(&*mm).task(READER);
        // Protect changes X's VMA in place (it covers all of it); stop the
        // writer there, X write-locked in this cycle, before its entries are
        // rewritten.
        let holding = s.stop_until_released(at(Point::ProtectInPlace).vma(x_old).task(WRITER));
        let x_fell = s.watch(reader(Point::FaultFallback).addr(X));
        let y_fell = s.watch(reader(Point::FaultFallback).addr(Y));
        let x_page = s.watch(reader(Point::FaultLeafFound).addr(X));
        let y_page = s.watch(reader(Point::FaultLeafFound).addr(Y));
        let w = {
            let mm = mm.clone();
            spawn_writer(move || mm.protect(X, 2 * PAGE, Prot::READ.bits()).expect("protect"))
        };
        holding.wait_parked()?;
        kassert_eq!(mm.lock_seq(), u32::MAX, "the writer's cycle");
        let (rx, out_x) = spawn_fault(&mm, X, Access::Read);
        wait_until("the fault in X to fall back or end", || {
            x_fell.hits() > 0 || exited(&rx)
        })?;
        let (ry, out_y) = spawn_fault(&mm, Y, Access::Read);
        wait_until("the fault in Y to fall back or end", || {
            y_fell.hits() > 0 || exited(&ry)
        })?;
        holding.release();
        join(&w)?;
        join(&rx)?;
        join(&ry)?;
        s.finish()?;

        let after = mm.counters.snapshot();
        kassert_eq!(ended(&out_x)?, (FaultOutcome::Done, 0), "the fault in X");
        kassert_eq!(ended(&out_y)?, (FaultOutcome::Done, 0), "the fault in Y");
        kassert!(
            x_page.first_hit() > holding.released_at(),
            "the fault entered X while the writer held it (a false \"unlocked\"): page at {:?}, writer done at {:?}",
            x_page.first_hit(),
            holding.released_at()
        );
        kassert!(
            y_page.first_hit() > holding.released_at(),
            "the fault in Y went on although Y looked write-locked: page at {:?}, writer done at {:?}",
            y_page.first_hit(),
            holding.released_at()
        );
        kassert_eq!(after.success, before.success, "a per-VMA success");
        kassert_eq!(after.abort - before.abort, 2, "both lookups gave up");
        kassert_eq!(after.fallback - before.fallback, 2, "both faults fell back");
        kassert_eq!(mm.lock_seq(), 0, "the writer's unlock wrapped the count");
        // Y's "locked" was false: nobody wrote its value or waited on it.
        kassert_eq!(y_vma.lock_seq(), u32::MAX);
        kassert_eq!(y_vma.refcnt(), 1);
        // The unlock ended it: the per-VMA path takes Y again.
        fault(&mm, Y, Access::Read)?;
        kassert_eq!(mm.counters.snapshot().success, after.success + 1);
        kassert_eq!(mm.find(X).map(|(_, p)| p), Some(Prot::READ));
        kassert_eq!(vma_at(&mm, X)?, x_old, "X's VMA was replaced");
        kassert_eq!(lockdep::total_reports(), reports, "lockdep reports");
        Ok(())
    }
);

// `mprotect` of a whole VMA changes its protection in place (as Linux's
// `vm_flags_reset`), so only the VMA write lock keeps a fault from acting on
// the old protection. A fault in X holds X read-locked and has found its
// leaf (it has read X's protection: read-write) when a writer makes X
// read-only. The writer must wait for it: the fault installs its page
// writable, then the writer changes the protection and rewrites that entry
// read-only. A writer that did not wait would change X and rewrite no entry
// (there is none yet), and the fault would then put a writable page into a
// read-only VMA.
ktest!(
    fn replay_protect_in_place_waits_for_reader() {
        if !race::enough_cpus() {
            return crate::ktest::skip(NEEDS_TWO);
        }
        let mm = new_mm(0)?;
        map(&mm, X, 2 * PAGE, Prot::RW)?;
        // The first fault sets up X's anonymous memory, so the replay's fault
        // needs only the VMA lock.
        fault(&mm, X + PAGE, Access::Write)?;
        let x = vma_at(&mm, X)?;
        let reports = lockdep::total_reports();
        let s = Session::begin()?;
        let found = s.stop_until_released(at(Point::FaultLeafFound).mm(&*mm).addr(X).task(READER));
        let waiting = s.watch(at(Point::WriterOffsetAdded).vma(x).task(WRITER));
        let changed = s.watch(at(Point::ProtectInPlace).vma(x).task(WRITER));
        let (r, out) = spawn_fault(&mm, X, Access::Write);
        found.wait_parked()?;
        let w = {
            let mm = mm.clone();
            spawn_writer(move || mm.protect(X, 2 * PAGE, Prot::READ.bits()).expect("protect"))
        };
        wait_until("the writer to wait for the fault, or to finish", || {
            waiting.hits() > 0 || changed.hits() > 0 || exited(&w)
        })?;
        found.release();
        join(&w)?;
        join(&r)?;
        s.finish()?;

        kassert_eq!(ended(&out)?, (FaultOutcome::Done, 0), "the fault");
        kassert!(
            changed.first_hit() > found.released_at(),
            "the protection changed while a fault held the VMA: changed at {:?}, fault let go at {:?}",
            changed.first_hit(),
            found.released_at()
        );
        let leaf = walk(mm.page_table_root(), X)
            .last()
            .map(|&(_, e)| e)
            .unwrap_or(0);
        kassert!(
            PteFlags::of(leaf).contains(PteFlags::PRESENT),
            "no page at X: {leaf:#x}"
        );
        kassert!(
            !PteFlags::of(leaf).contains(PteFlags::WRITABLE),
            "a writable page in a read-only VMA: {leaf:#x}"
        );
        kassert_eq!(vma_at(&mm, X)?, x, "X's VMA was replaced, not changed");
        kassert_eq!(mm.find(X).map(|(_, p)| p), Some(Prot::READ));
        kassert_eq!(lockdep::total_reports(), reports, "lockdep reports");
        Ok(())
    }
);

// LTP mtest06's failure path: a lookup that fails while its VMA is being
// unmapped must own nothing. The reader passes its pre-check, then the
// writer write-locks X's VMA and takes it out of the tree; the reader takes
// its reference (stopped there) and, seeing the write lock, fails. Before
// detach runs, the count must be back at the attach reference alone and the
// reader must have left the lookup with no lock; detach then has no one to
// wait for, the VMA is freed, and the fault falls back and finds X unmapped.
ktest!(
    fn replay_mtest06_failure_path() {
        if !race::enough_cpus() {
            return crate::ktest::skip(NEEDS_TWO);
        }
        let mm = new_mm(0)?;
        map(&mm, X, PAGE, Prot::RW)?;
        let v = vma_at(&mm, X)?;
        // SAFETY: the memory belongs to `mm`'s VMA cache, which the test
        // holds: attached or on the cache's free list, it stays a `Vma`.
        let vma = unsafe { &*v };
        let base = vma.refcnt();
        kassert_eq!(base, 1, "only the attach reference");
        let reports = lockdep::total_reports();
        let before = mm.counters.snapshot();
        let s = Session::begin()?;
        let reader = |p: Point| at(p).vma(v).task(READER);
        let checked = s.stop(
            reader(Point::ReadPrecheckPassed),
            at(Point::DetachStart).vma(v),
        );
        let detaching = s.stop_until_released(at(Point::DetachStart).vma(v));
        let taken = s.stop_until_released(reader(Point::ReadAfterInc));
        let fell = s.stop_until_released(at(Point::FaultFallback).mm(&*mm).task(READER));
        let put = s.watch(reader(Point::PutAfterDec));
        let waited = s.watch(at(Point::DetachAfterWait).vma(v));
        let freed = s.watch(at(Point::VmaFree).vma(v));

        let (r, out) = spawn_fault(&mm, X, Access::Read);
        checked.wait_parked()?;
        let w = {
            let mm = mm.clone();
            spawn_writer(move || mm.unmap(X, PAGE).expect("unmap"))
        };
        taken.wait_parked()?;
        kassert!(detaching.is_parked(), "the writer is not at detach");
        kassert_eq!(vma.refcnt(), base + 1, "the reader's reference");
        taken.release();
        fell.wait_parked()?;
        // The lookup has failed and returned: it must own nothing now.
        kassert_eq!(
            vma.refcnt(),
            base,
            "the failed lookup left a reference behind"
        );
        detaching.release();
        fell.release();
        join(&w)?;
        join(&r)?;
        s.finish()?;

        let after = mm.counters.snapshot();
        kassert_eq!(
            ended(&out)?,
            (FaultOutcome::AccessError, 0),
            "the fault fell back, found X unmapped, and held no lock"
        );
        kassert_eq!(lockdep::total_reports(), reports, "lockdep reports");
        kassert_eq!(put.hits(), 1, "the failed lookup did not put its reference");
        kassert_eq!(
            waited.hits(),
            0,
            "detach waited for a reference the failed lookup left"
        );
        kassert_eq!(freed.hits(), 1, "the VMA was not freed");
        kassert_eq!(vma.refcnt(), 0, "the freed VMA has references");
        kassert!(
            !cfg!(debug_assertions) || vma.is_poisoned(),
            "the freed VMA was written after its free"
        );
        kassert_eq!(after.abort - before.abort, 1, "the lookup gave up once");
        kassert_eq!(after.success, before.success, "a per-VMA success");
        kassert_eq!(mm.vma_count(), 0);
        Ok(())
    }
);

/// A: one page, entry 16 of the page table for [4 MiB, 6 MiB).
const A: u64 = X + 16 * PAGE;
/// The start of the next page table's range.
const NEXT_PT: u64 = X + 0x20_0000;
/// B: A's neighbour, from A's end into the next page table's range.
const B: core::ops::Range<u64> = A + PAGE..NEXT_PT + PAGE;

// A fault in A while the unmap of its neighbour B frees page-table pages.
// A and B share a page table (B's first part lies in it); B's last page has
// a table of its own. The fault holds A read-locked and has its leaf entry in
// the shared table, nothing installed yet, while B's unmap clears B's
// entries, frees what only B used, shoots down and gives the frames back.
// The shared table must survive (A covers it): the fault's page lands in a
// live table, reachable from the root, and every frame comes back at the end.
ktest!(
    fn replay_pt_free_vs_neighbour_fault() {
        if !race::enough_cpus() {
            return crate::ktest::skip(NEEDS_TWO);
        }
        let frames = frames_baseline();
        replay_pt_free()?;
        kassert_eq!(
            frames_baseline(),
            frames,
            "frames (free plus the kernel's own) before and after"
        );
        Ok(())
    }
);

/// The replay itself; everything it made is gone when it returns.
fn replay_pt_free() -> Result<(), String> {
    let mm = new_mm(0)?;
    // One VMA over A and B, faulted in both page tables, then split by
    // protection: A keeps no page, both have their anonymous memory set up.
    map(&mm, A, B.end - A, Prot::RW)?;
    fault(&mm, NEXT_PT - PAGE, Access::Write)?;
    fault(&mm, NEXT_PT, Access::Write)?;
    mm.protect(B.start, B.end - B.start, Prot::READ.bits())
        .map_err(|e| format!("protect B: {e:?}"))?;
    kassert_eq!(
        mm.vmas(),
        vec![(A..A + PAGE, Prot::RW), (B.clone(), Prot::READ)]
    );
    let root = mm.page_table_root();
    let shared = walk(root, A);
    kassert_eq!(shared.len(), 4, "A's page table exists");
    let shared = shared[3].0;
    kassert_eq!(walk(root, NEXT_PT - PAGE)[3].0, shared, "B uses A's table");
    kassert_eq!(mm.page_table_pages(), 4, "PDPT, PD and two page tables");

    let a = vma_at(&mm, A)?;
    let reports = lockdep::total_reports();
    let before = mm.counters.snapshot();
    let s = Session::begin()?;
    let freed = at(Point::UnmapFreed).mm(&*mm).addr(B.start);
    let holding = s.stop(at(Point::FaultLeafFound).vma(a).addr(A).task(READER), freed);
    let cleared = s.watch(at(Point::UnmapPtCleared).mm(&*mm).addr(B.start));
    let (r, out) = spawn_fault(&mm, A, Access::Write);
    holding.wait_parked()?;
    let w = {
        let mm = mm.clone();
        spawn_writer(move || mm.unmap(B.start, B.end - B.start).expect("unmap B"))
    };
    join(&w)?;
    join(&r)?;
    s.finish()?;

    let after = mm.counters.snapshot();
    kassert_eq!(ended(&out)?, (FaultOutcome::Done, 0), "the fault in A");
    kassert_eq!(cleared.hits(), 1, "B's unmap did not run during the fault");
    kassert_eq!(after.success - before.success, 1, "not a per-VMA success");
    // The page went into the shared table, which is still hooked: a fault
    // that wrote into a freed table would leave A unmapped here.
    let path = walk(root, A);
    kassert_eq!(path.len(), 4, "no page table for A any more");
    let (table, leaf) = path[3];
    kassert_eq!(table, shared, "A's page is not in the shared table");
    let want = PteFlags::PRESENT | PteFlags::USER | PteFlags::WRITABLE | PteFlags::NX;
    kassert_eq!(PteFlags::of(leaf), want, "A's page entry");
    // SAFETY: the frame is A's page, mapped in `mm` (held by the test); the
    // direct map covers it; nothing writes it now.
    let page =
        unsafe { core::slice::from_raw_parts(phys_to_virt(leaf & ADDR_MASK).cast::<u64>(), 512) };
    kassert!(page.iter().all(|&w| w == 0), "A's new page is not zeroed");
    let next = walk(root, NEXT_PT);
    kassert_eq!(next.len(), 3, "B's own table is still hooked");
    kassert_eq!(next[2].1, 0, "B's own table is still hooked");
    kassert_eq!(
        mm.page_table_pages(),
        3,
        "B's own table freed, the shared one kept"
    );
    kassert_eq!(mm.rss(), 1, "A's page");
    kassert_eq!(
        mm.census(),
        (1, 3),
        "pages and tables reachable from the root"
    );
    mm.check_invariants();
    kassert_eq!(lockdep::total_reports(), reports, "lockdep reports");
    Ok(())
}

/// Single-page VMAs kept mapped next to X, so a walk passes a branch.
const KEPT: u64 = 32;
/// VMAs freed before X's: more than the cache keeps (64), so it is full and
/// X's VMA leaves it when freed.
const SPILL: u64 = 100;

// Stale pointers into memory that leaves the caches. A reader walks the tree
// for X and stops at its first node. X is then unmapped: the tree's path to
// X is replaced (its nodes handed to RCU), and X's VMA is freed into a full
// cache, so its memory leaves the cache too (handed to RCU). While the
// reader is still in its read section, neither may go back to the heap: the
// VMA still holds what the cache left there. The reader then reads X's old
// entry out of the old nodes, finds the freed VMA detached, walks again and
// falls back. Only after it has left are the nodes and the VMA reclaimed.
ktest!(
    fn replay_stale_pointer_after_cache_release() {
        if !race::enough_cpus() {
            return crate::ktest::skip(NEEDS_TWO);
        }
        let mm = new_mm(0)?;
        map(&mm, X, PAGE, Prot::RW)?;
        for i in 0..KEPT {
            map(&mm, X + (2 + 2 * i) * PAGE, PAGE, Prot::RW)?;
        }
        for i in 0..SPILL {
            map(&mm, Y + 2 * i * PAGE, PAGE, Prot::RW)?;
        }
        for i in 0..SPILL {
            unmap(&mm, Y + 2 * i * PAGE, PAGE)?;
        }
        // Nothing of this address space waits for a grace period now.
        rcu::rcu_barrier();
        let v = vma_at(&mm, X)?;
        let objects = vma_objects();
        let reports = lockdep::total_reports();
        let before = mm.counters.snapshot();
        let s = Session::begin()?;
        let reader = |p: Point| at(p).task(READER);
        let walking = s.stop_until_released(reader(Point::TreeNodeLoaded).addr(X));
        let found = s.watch(reader(Point::LookupFound).vma(v));
        let restart = s.watch(reader(Point::LookupRestart).vma(v));
        let vma_freed = s.watch(at(Point::VmaFree).vma(v));
        let vma_released = s.watch(at(Point::VmaRelease).vma(v));
        let nodes_freed = s.watch(at(Point::TreeNodesFree));

        let (r, out) = spawn_fault(&mm, X, Access::Read);
        walking.wait_parked()?;
        unmap(&mm, X, PAGE)?;
        kassert_eq!(vma_freed.hits(), 1, "X's VMA was not freed");
        kassert_eq!(
            vma_released.hits(),
            0,
            "X's VMA memory went back to the heap under a reader"
        );
        kassert_eq!(
            nodes_freed.hits(),
            0,
            "tree nodes went back to the heap under a reader"
        );
        kassert_eq!(vma_objects(), objects, "a VMA object was deallocated");
        // SAFETY: not deallocated (the checks above), and it cannot be
        // while the reader stays in its read section, parked where it is.
        let vma = unsafe { &*v };
        kassert_eq!(vma.refcnt(), 0, "the freed VMA has references");
        kassert!(
            !cfg!(debug_assertions) || vma.is_poisoned(),
            "the freed VMA no longer holds the cache's poison"
        );
        walking.release();
        join(&r)?;
        // The reclaiming happens now, inside the session that records it.
        rcu::rcu_barrier();
        s.finish()?;

        let after = mm.counters.snapshot();
        kassert_eq!(
            ended(&out)?,
            (FaultOutcome::AccessError, 0),
            "the fault fell back and found X unmapped"
        );
        kassert_eq!(found.hits(), 1, "X's entry not read from the old nodes");
        kassert_eq!(restart.hits(), 1, "the freed VMA not seen as detached");
        kassert_eq!(after.miss - before.miss, 1, "the miss was not counted");
        kassert_eq!(
            vma_released.hits(),
            1,
            "X's VMA memory never left the cache"
        );
        kassert!(
            vma_released.first_hit() > walking.released_at(),
            "X's VMA memory was reclaimed before the reader left ({:?}, {:?})",
            vma_released.first_hit(),
            walking.released_at()
        );
        kassert!(
            nodes_freed.hits() >= 1 && nodes_freed.first_hit() > walking.released_at(),
            "tree nodes were reclaimed before the reader left ({:?}, {:?})",
            nodes_freed.first_hit(),
            walking.released_at()
        );
        kassert_eq!(vma_objects(), objects - 1, "X's VMA memory not reclaimed");
        kassert_eq!(lockdep::total_reports(), reports, "lockdep reports");
        Ok(())
    }
);
