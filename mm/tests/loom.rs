//! Loom models of the VMA lock protocol (docs/design.md; each race they
//! replay is drawn in docs/races.md).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p mm --release --test loom`.
//! Preemptions are bounded at 2 unless `LOOM_MAX_PREEMPTIONS` says otherwise
//! (the seed's interleaving needs 2: reader pre-check, writer detaches,
//! reader puts).
//!
//! `--features seed-v6-ordering` puts back the seed's v6 code; then
//! `loom_seed_detach_race` must FAIL (`make test` checks that it does).
#![cfg(loom)]

use std::sync::Arc;

use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::thread;
use mm::fault::{Access, FaultOutcome, Held, handle_fault};
use mm::lookup::lock_vma_under_rcu;
use mm::loom_platform::Loom;
use mm::mm::{MapAt, Mm, MmRef, MmapLocked};
use mm::platform::{Platform, Rcu};
use mm::vma::{Prot, VmaPtr};
use mm::vma_cache::VmaCache;
use mm::vma_lock::{ReadLockError, vma_refcount_put, vma_start_read, vma_start_write};

const X: u64 = 0x10_0000;
const PAGE: u64 = 4096;

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_with(2, f)
}

/// `preemptions`: the bound unless `LOOM_MAX_PREEMPTIONS` is set.
fn model_with(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b.check(f);
}

/// An address space with one read-write VMA at `X`, and its VMA pointer.
fn setup(cache: &Arc<VmaCache<Loom>>, seq: u32) -> (MmRef<Loom>, VmaPtr<Loom>) {
    let mm = Mm::with_lock_seq(cache.clone(), seq).unwrap();
    assert_eq!(mm.map(MapAt::Fixed(X), PAGE, Prot::RW.bits()), Ok(X));
    let g = Loom::read_lock();
    let v = mm.find_vma_rcu(X, &g).unwrap();
    (mm, v)
}

/// End of a model: every annotation of this thread released, then the
/// deferred frees run.
fn finish() {
    assert_eq!(Loom::held_locks(), 0, "lock annotation leaked");
    Loom::run_rcu_callbacks();
}

/// A fault-path reader against a writer that changes the protection of the
/// whole VMA, in place (mprotect): a read-locked VMA is never changed or
/// freed, and covers the address.
#[test]
fn loom_reader_vs_writer() {
    reader_vs_protect(PAGE);
}

/// The same against a writer that protects half of a two-page VMA, so
/// replaces it with two new ones and frees it.
#[test]
fn loom_reader_vs_splitting_writer() {
    reader_vs_protect(2 * PAGE);
}

/// A reader at `X` against `protect(X, PAGE, READ)` on a read-write VMA of
/// `len` bytes at `X`.
fn reader_vs_protect(len: u64) {
    model(move || {
        let cache = Arc::new(VmaCache::<Loom>::new());
        let mm = Mm::with_lock_seq(cache.clone(), 0).unwrap();
        assert_eq!(mm.map(MapAt::Fixed(X), len, Prot::RW.bits()), Ok(X));
        let mm = Arc::new(mm);
        let reader = {
            let mm = mm.clone();
            thread::spawn(move || {
                if let Some(vma) = lock_vma_under_rcu(&mm, X) {
                    let (range, prot) = (vma.range(), vma.prot());
                    assert!(range.contains(&X));
                    // The old VMA, or the new one after the writer's unlock.
                    assert!(
                        prot == Prot::RW || prot == Prot::READ,
                        "read-locked a half-built VMA"
                    );
                    thread::yield_now();
                    assert!(!vma.is_poisoned(), "read-locked VMA freed");
                    assert_eq!(
                        (vma.range(), vma.prot()),
                        (range, prot),
                        "read-locked VMA changed"
                    );
                }
                assert_eq!(Loom::held_locks(), 0);
            })
        };
        mm.protect(X, PAGE, Prot::READ.bits()).unwrap();
        reader.join().unwrap();
        assert_eq!(mm.find(X).unwrap().1, Prot::READ);
        drop(mm);
        assert_eq!(cache.in_use(), 0);
        finish();
    });
}

/// The seed's interleaving: the reader's pre-check passes, the writer
/// write-locks, the reader increments, the writer detaches, the reader sees
/// the write lock and puts. The annotations must balance, the count must end
/// at 0, and the VMA must not be freed while the reader holds it.
#[test]
fn loom_seed_detach_race() {
    model(|| {
        let cache = Arc::new(VmaCache::new());
        let (mm, v) = setup(&cache, 0);
        let mm = Arc::new(mm);
        let reader = {
            let mm = mm.clone();
            thread::spawn(move || {
                let rcu = Loom::read_lock();
                // SAFETY: found in the tree; VMA memory is type-stable and
                // the model never returns it to the allocator before the end.
                let vma = unsafe { v.get_rcu(&rcu) };
                if vma_start_read(&mm, vma).is_ok() {
                    assert!(!vma.is_poisoned(), "read-locked VMA freed");
                    assert_eq!(vma.range(), X..X + PAGE);
                    vma_refcount_put(vma);
                }
                assert_eq!(
                    Loom::held_locks(),
                    0,
                    "the reader's put leaked its annotation"
                );
            })
        };
        // The writer: unmap = write-lock, remove from the tree, detach, free.
        mm.unmap(X, PAGE).unwrap();
        let rcu = Loom::read_lock();
        // SAFETY: type-stable memory, see above.
        let vma = unsafe { v.get_rcu(&rcu) };
        assert_eq!(vma.refcnt(), 0, "detach returned with references left");
        reader.join().unwrap();
        assert_eq!(vma.refcnt(), 0, "final count not 0");
        drop(rcu);
        drop(mm);
        finish();
    });
}

/// A reader with a stale pointer finds the VMA reused by another address
/// space, whose last user tears it down meanwhile. The reader must fail, and
/// must keep that address space alive across its put (CVE-2025-38554: the
/// put's wakeup touched a freed mm).
#[test]
fn loom_reader_vs_reuse_other_mm() {
    // 4 preemptions: the reader runs first and increments, the writer raises
    // LOCK_OFFSET, the reader puts, the writer sees the count drained before
    // it sleeps, frees the VMA and the mm, and only then the reader's put
    // goes on to wake it. (Checked: without the pin this model fails.)
    model_with(4, || {
        let cache = Arc::new(VmaCache::new());
        let (mm_a, v) = setup(&cache, 0);
        mm_a.unmap(X, PAGE).unwrap();
        // The free list is LIFO: B's new VMA is the same memory.
        let mm_b = Mm::new(cache.clone()).unwrap();
        mm_b.map(MapAt::Fixed(2 * X), PAGE, Prot::READ.bits())
            .unwrap();
        let rcu = Loom::read_lock();
        // SAFETY: type-stable memory, returned to the allocator only in
        // `finish`.
        let reused = unsafe { v.get_rcu(&rcu) };
        assert!(
            core::ptr::eq(reused.mm_ptr(), mm_b.as_ptr()),
            "setup: VMA not reused"
        );
        drop(rcu);
        let mm_a = Arc::new(mm_a);
        let reader = {
            let mm_a = mm_a.clone();
            thread::spawn(move || {
                let rcu = Loom::read_lock();
                // SAFETY: type-stable memory, see above.
                let r = vma_start_read(&mm_a, unsafe { v.get_rcu(&rcu) });
                assert!(r.is_err(), "read-locked a VMA of another address space");
                assert_eq!(Loom::held_locks(), 0);
            })
        };
        drop(mm_b); // exit: detaches the VMA (waits for the reader), frees B
        reader.join().unwrap();
        drop(mm_a);
        assert_eq!(cache.in_use(), 0);
        finish();
    });
}

/// `vma_start_write` returns only when no reader is inside, and the reader's
/// work happens before it (Release put / Acquire wait).
#[test]
fn loom_writer_waits_for_readers() {
    model(|| {
        let cache = Arc::new(VmaCache::new());
        let (mm, v) = setup(&cache, 0);
        let mm = Arc::new(mm);
        let inside = Arc::new(AtomicBool::new(false));
        let reader = {
            let (mm, inside) = (mm.clone(), inside.clone());
            thread::spawn(move || {
                if let Some(vma) = lock_vma_under_rcu(&mm, X) {
                    inside.store(true, Ordering::Relaxed);
                    thread::yield_now();
                    inside.store(false, Ordering::Relaxed);
                    drop(vma);
                }
                assert_eq!(Loom::held_locks(), 0);
            })
        };
        {
            let w = mm.write_lock();
            let (_, vma) = w.find(X).unwrap();
            assert_eq!(VmaPtr::from(vma), v);
            vma_start_write(&mm, vma);
            assert!(
                !inside.load(Ordering::Relaxed),
                "writer got the VMA while a reader was inside"
            );
        }
        reader.join().unwrap();
        drop(mm);
        finish();
    });
}

/// A reader that gets the lock after the writer's `mmap_write_unlock` sees
/// what the writer did to the VMA under the lock.
#[test]
fn loom_unlock_publishes_vma_changes() {
    model(|| {
        let cache = Arc::new(VmaCache::new());
        let (mm, v) = setup(&cache, 0);
        let mm = Arc::new(mm);
        let reader = {
            let mm = mm.clone();
            thread::spawn(move || {
                if let Some(vma) = lock_vma_under_rcu(&mm, X) {
                    // `map` left lock_seq 1 in the VMA; 3 means the writer's
                    // write lock happened before our lock, so we locked after
                    // its unlock.
                    if vma.lock_seq() == 3 {
                        assert!(
                            vma.anon_ready(),
                            "locked after the unlock but missed the writer's change"
                        );
                    }
                }
                assert_eq!(Loom::held_locks(), 0);
            })
        };
        {
            let w = mm.write_lock();
            let (_, vma) = w.find(X).unwrap();
            assert_eq!(VmaPtr::from(vma), v);
            vma_start_write(&mm, vma);
            // A change only the mmap_lock holder may make.
            assert_eq!(
                handle_fault(&mm, vma, X, Access::Write, Held::MmapLock),
                FaultOutcome::Done
            );
        }
        reader.join().unwrap();
        drop(mm);
        finish();
    });
}

/// The writer sleeps on `writer_wait` for a reader; the reader's put must
/// wake it (a lost wakeup leaves both threads blocked: loom reports it).
#[test]
fn loom_no_lost_writer_wakeup() {
    model(|| {
        let cache = Arc::new(VmaCache::new());
        let (mm, v) = setup(&cache, 0);
        let mm = Arc::new(mm);
        let reader = {
            let mm = mm.clone();
            thread::spawn(move || {
                let rcu = Loom::read_lock();
                // SAFETY: type-stable memory, returned to the allocator only
                // in `finish`.
                let vma = unsafe { v.get_rcu(&rcu) };
                match vma_start_read(&mm, vma) {
                    Ok(()) => vma_refcount_put(vma),
                    Err(ReadLockError::Failed | ReadLockError::Detached) => {}
                }
            })
        };
        {
            let w = mm.write_lock();
            let (_, vma) = w.find(X).unwrap();
            assert_eq!(VmaPtr::from(vma), v);
            vma_start_write(&mm, vma);
        }
        reader.join().unwrap();
        drop(mm);
        finish();
    });
}

/// `mm.lock_seq` wrapping through 0: the VMA created at `u32::MAX` and the
/// write lock taken after the wrap never give a reader a false "unlocked".
#[test]
fn loom_lock_seq_wrap() {
    model(|| {
        let cache = Arc::new(VmaCache::new());
        // Created under lock_seq u32::MAX; the unlock wraps it to 0.
        let (mm, v) = setup(&cache, u32::MAX - 1);
        assert_eq!(mm.lock_seq(), 0);
        let mm = Arc::new(mm);
        let in_window = Arc::new(AtomicBool::new(false));
        let reader = {
            let (mm, in_window) = (mm.clone(), in_window.clone());
            thread::spawn(move || {
                if let Some(_vma) = lock_vma_under_rcu(&mm, X) {
                    assert!(
                        !in_window.load(Ordering::Relaxed),
                        "read-locked a write-locked VMA"
                    );
                }
            })
        };
        {
            let w = mm.write_lock();
            let (_, vma) = w.find(X).unwrap();
            assert_eq!(VmaPtr::from(vma), v);
            vma_start_write(&mm, vma);
            in_window.store(true, Ordering::Relaxed);
            thread::yield_now();
            in_window.store(false, Ordering::Relaxed);
        }
        reader.join().unwrap();
        let rcu = Loom::read_lock();
        // SAFETY: still attached to `mm`.
        assert_eq!(unsafe { v.get_rcu(&rcu) }.lock_seq(), 1);
        drop(rcu);
        drop(mm);
        finish();
    });
}

/// The same address space unmaps the VMA at `X` and maps another range,
/// `Y`, which reuses the VMA's memory (the cache's free list is LIFO), while
/// a fault at `X` is between its tree walk and its lock. The owner check
/// passes (same address space) and the VMA is attached and unlocked, so the
/// lock succeeds: only the range re-check after locking stops the reader
/// from handling a fault at `X` with the VMA of `Y`; the fault must go to
/// the fallback instead. (Checked: without the re-check this model fails.)
#[test]
fn loom_reader_vs_reuse_same_mm_other_range() {
    const Y: u64 = 2 * X;
    // One preemption is enough: the reader stops between its tree walk (or
    // its pointer) and its lock while the writer runs to the end; more makes
    // the model take minutes (the tree walk and two tree edits).
    model_with(1, || {
        let cache = Arc::new(VmaCache::new());
        let (mm, v) = setup(&cache, 0);
        let mm = Arc::new(mm);
        let reader = {
            let mm = mm.clone();
            thread::spawn(move || {
                if let Some(vma) = lock_vma_under_rcu(&mm, X) {
                    assert!(!vma.is_poisoned(), "read-locked a freed VMA");
                    assert_eq!(
                        vma.range(),
                        X..X + PAGE,
                        "a fault at X got the VMA of another range"
                    );
                }
                assert_eq!(Loom::held_locks(), 0);
            })
        };
        mm.unmap(X, PAGE).unwrap();
        assert_eq!(mm.map(MapAt::Fixed(Y), PAGE, Prot::RW.bits()), Ok(Y));
        {
            let w = mm.write_lock();
            let (range, vma) = w.find(Y).unwrap();
            assert_eq!(range, Y..Y + PAGE);
            assert_eq!(VmaPtr::from(vma), v, "setup: VMA memory not reused");
        }
        reader.join().unwrap();
        drop(mm);
        assert_eq!(cache.in_use(), 0);
        finish();
    });
}

/// A reader holding a stale pointer races with the writer that frees the
/// VMA and re-initialises the same memory as a new VMA of this address space
/// (another range and protection), then attaches it. If the reader's lock
/// succeeds it must see one whole VMA, the old or the new, never the new
/// count with old fields: `vma_mark_attached`'s Release store pairs with the
/// reader's Acquire increment. (Checked: with a Relaxed attach this model fails.)
#[test]
fn loom_attach_publishes_reused_vma() {
    const Y: u64 = 2 * X;
    // One preemption is enough: the reader stops between its tree walk (or
    // its pointer) and its lock while the writer runs to the end; more makes
    // the model take minutes (the tree walk and two tree edits).
    model_with(1, || {
        let cache = Arc::new(VmaCache::new());
        let (mm, v) = setup(&cache, 0);
        let mm = Arc::new(mm);
        let reader = {
            let mm = mm.clone();
            thread::spawn(move || {
                let rcu = Loom::read_lock();
                // SAFETY: found in the tree; type-stable memory that the
                // model never returns to the allocator before the end.
                let vma = unsafe { v.get_rcu(&rcu) };
                if vma_start_read(&mm, vma).is_ok() {
                    let seen = (vma.range(), vma.prot());
                    assert!(
                        seen == (X..X + PAGE, Prot::RW) || seen == (Y..Y + PAGE, Prot::READ),
                        "read-locked a mix of the old and the new VMA: {seen:?}"
                    );
                    vma_refcount_put(vma);
                }
                // The reference is borrowed from the read section, so the
                // section lasts until the reader is done with it (the
                // ordering checked here does not depend on RCU).
                drop(rcu);
                assert_eq!(Loom::held_locks(), 0);
            })
        };
        mm.unmap(X, PAGE).unwrap();
        assert_eq!(mm.map(MapAt::Fixed(Y), PAGE, Prot::READ.bits()), Ok(Y));
        {
            let w = mm.write_lock();
            let (range, vma) = w.find(Y).unwrap();
            assert_eq!(range, Y..Y + PAGE);
            assert_eq!(VmaPtr::from(vma), v, "setup: VMA memory not reused");
        }
        reader.join().unwrap();
        drop(mm);
        assert_eq!(cache.in_use(), 0);
        finish();
    });
}

/// `MmapWriteGuard::downgrade` turns the write lock into a read lock with
/// no writer in between: a writer that wants the lock meanwhile gets it only
/// after the read lock is dropped. `lock_seq` tells: each write lock moves
/// it on by two, so a writer that slipped in would show. (Checked: with a
/// downgrade that releases the write lock and then takes the read lock,
/// this model fails.)
#[test]
fn loom_downgrade_keeps_writers_out() {
    model(|| {
        let cache = Arc::new(VmaCache::new());
        let mm = Arc::new(Mm::<Loom>::new(cache).unwrap());
        let writer = {
            let mm = mm.clone();
            thread::spawn(move || {
                drop(mm.write_lock());
                assert_eq!(Loom::held_locks(), 0);
            })
        };
        let w = mm.write_lock();
        let downgraded = mm.lock_seq() + 1;
        let r = w.downgrade();
        assert_eq!(
            mm.lock_seq(),
            downgraded,
            "a writer got in at the downgrade"
        );
        thread::yield_now();
        assert_eq!(
            mm.lock_seq(),
            downgraded,
            "a writer got in under the read lock"
        );
        drop(r);
        writer.join().unwrap();
        assert_eq!(mm.lock_seq() % 2, 0, "the writer's lock was not released");
        drop(mm);
        finish();
    });
}

/// `unmap` downgrades to read after detaching the VMA and tears the page
/// table down under the read lock. A fixed `map` of the same range (and a
/// fault in it) by another thread must come wholly before the unmap's tree
/// edit or wholly after its teardown: a page installed in between would be
/// cleared and freed by the teardown under a VMA that is still mapped.
/// (Checked: with a downgrade that releases and re-takes the lock, the map
/// and the fault get in between and this model fails.)
#[test]
fn loom_unmap_teardown_vs_map_same_range() {
    // One preemption is enough (the unmap stopped inside its downgrade
    // while the other thread runs to the end); more makes the model take
    // minutes (two tree edits and a fault).
    model_with(1, || {
        let cache = Arc::new(VmaCache::new());
        let (mm, _) = setup(&cache, 0);
        let mm = Arc::new(mm);
        let mapper = {
            let mm = mm.clone();
            thread::spawn(move || {
                assert_eq!(mm.map(MapAt::Fixed(X), PAGE, Prot::RW.bits()), Ok(X));
                let r = mm.read_lock();
                // None if the unmap came after the map.
                let faulted = r.find(X).map(|(_, vma)| {
                    assert_eq!(
                        handle_fault(&mm, vma, X, Access::Write, Held::MmapLock),
                        FaultOutcome::Done
                    );
                });
                drop(r);
                assert_eq!(Loom::held_locks(), 0);
                faulted.is_some()
            })
        };
        mm.unmap(X, PAGE).unwrap();
        let faulted = mapper.join().unwrap();
        let mapped = mm.find(X).is_some();
        if mapped && faulted {
            assert_eq!(
                mm.census().0,
                1,
                "the teardown cleared the new mapping's page"
            );
        }
        assert_eq!(mm.rss(), mm.census().0, "rss against the present leaves");
        mm.check_invariants();
        drop(mm);
        assert_eq!(cache.in_use(), 0);
        finish();
    });
}

#[allow(dead_code)]
/// TLB shootdown against a CPU joining the address space, the
/// store-buffering pattern of `Mm::note_cpu` and `Mm::cpus_to_flush`. The
/// changer clears a page-table entry (Relaxed, as `PageTable::clear` does)
/// and then reads the mask to decide whom to interrupt; the joining CPU sets
/// its bit and then walks the table (a Relaxed load stands in for the MMU,
/// whose real entries loom cannot see). Either the changer sees the bit or
/// the walker sees the cleared entry: never neither, which would leave a
/// stale translation that no IPI removes. Without the two SeqCst fences loom
/// finds the interleaving where both read the old values.
#[test]
fn loom_shootdown_reaches_joining_cpu() {
    const PRESENT: u64 = 1;
    const JOINER: usize = 1;
    model(|| {
        let cache = Arc::new(VmaCache::new());
        let mm = Arc::new(Mm::<Loom>::new(cache).unwrap());
        let pte = Arc::new(AtomicU64::new(PRESENT));
        let joiner = {
            let (mm, pte) = (mm.clone(), pte.clone());
            thread::spawn(move || {
                mm.note_cpu(JOINER);
                pte.load(Ordering::Relaxed)
            })
        };
        pte.store(0, Ordering::Relaxed);
        let flush = mm.cpus_to_flush();
        let walked = joiner.join().unwrap();
        assert!(
            flush & (1 << JOINER) != 0 || walked == 0,
            "the shootdown missed a CPU that still sees the old entry"
        );
        drop(mm);
        finish();
    });
}

fn _platform_is_used(_: impl Platform) {}
