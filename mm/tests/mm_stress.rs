//! Host stress on real threads: faulting readers (`lock_vma_under_rcu` +
//! `handle_fault`, and the whole user fault path) against writers that map,
//! unmap and protect the same addresses. A read-locked VMA must never change,
//! never be freed, and always cover the address; at the end every frame and
//! every VMA is returned. The only test in this binary, so the global frame
//! and VMA counts belong to it alone. Runs a fixed number of operations: no
//! timing is asserted.
#![cfg(not(loom))]

use std::sync::Arc;
use std::thread;

use mm::fault::{Access, FaultOutcome, Held, handle_fault, handle_user_fault};
use mm::host::Host;
use mm::lookup::lock_vma_under_rcu;
use mm::mm::{MapAt, Mm};
use mm::vma_cache::{VmaCache, vma_objects};

const P: u64 = 4096;
const BASE: u64 = 0x4000_0000;
/// 64 pages straddling a 2 MiB boundary, so page-table pages come and go.
const WINDOW: u64 = 64;
const START: u64 = BASE - 32 * P;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn readers_fault_while_writers_change_the_address_space() {
    let frames_before = Host::frames_in_use();
    let cache = Arc::new(VmaCache::<Host>::new());
    let mm = Arc::new(Mm::new(cache.clone()).unwrap());
    mm.map(MapAt::Fixed(START), WINDOW * P, 3).unwrap();
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let mm = mm.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9 + t);
                let mut locked = 0u64;
                for i in 0..100_000 {
                    let addr = START + rng.below(WINDOW) * P + rng.below(P);
                    let access = [Access::Read, Access::Write][rng.below(2) as usize];
                    if i % 4 == 0 {
                        // The whole path as the kernel calls it.
                        let r = handle_user_fault(&mm, addr, access);
                        assert_ne!(r, FaultOutcome::Retry);
                        assert_ne!(r, FaultOutcome::OutOfMemory);
                        continue;
                    }
                    let Some(vma) = lock_vma_under_rcu(&mm, addr) else {
                        continue;
                    };
                    locked += 1;
                    let (range, prot) = (vma.range(), vma.prot());
                    assert!(
                        range.contains(&addr),
                        "read-locked VMA does not cover the address"
                    );
                    assert!(
                        core::ptr::eq(vma.mm_ptr(), &**mm),
                        "read-locked VMA of another mm"
                    );
                    let r = handle_fault(&mm, &vma, addr, access, Held::VmaLock);
                    assert_ne!(r, FaultOutcome::OutOfMemory);
                    thread::yield_now();
                    assert!(!vma.is_poisoned(), "read-locked VMA freed");
                    assert_eq!(
                        (vma.range(), vma.prot()),
                        (range, prot),
                        "read-locked VMA changed"
                    );
                    assert!(vma.refcnt() >= 2, "read lock without a reference");
                }
                assert_eq!(Host::held_locks(), 0, "reader leaked a lock annotation");
                locked
            })
        })
        .collect();
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let mm = mm.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x1234_5678 + t);
                for _ in 0..10_000 {
                    let page = rng.below(WINDOW);
                    let len = (1 + rng.below(8)).min(WINDOW - page) * P;
                    let addr = START + page * P;
                    match rng.below(3) {
                        0 => {
                            mm.map(MapAt::Fixed(addr), len, (rng.below(4)) as u32)
                                .unwrap();
                        }
                        1 => mm.unmap(addr, len).unwrap(),
                        _ => {
                            let _ = mm.protect(addr, len, rng.below(4) as u32);
                        }
                    }
                }
                assert_eq!(Host::held_locks(), 0, "writer leaked a lock annotation");
            })
        })
        .collect();
    let locked: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    writers.into_iter().for_each(|w| w.join().unwrap());
    assert!(
        locked > 0,
        "no reader ever got a VMA lock: the test tested nothing"
    );
    mm.check_invariants();
    let stats = mm.counters.snapshot();
    eprintln!("locked {locked}; {stats:?}");
    let mm = Arc::into_inner(mm).unwrap();
    drop(mm);
    assert_eq!(cache.in_use(), 0, "VMAs leaked");
    drop(cache);
    Host::rcu_barrier();
    assert_eq!(
        vma_objects(),
        0,
        "VMA memory not returned after the grace period"
    );
    assert_eq!(Host::frames_in_use(), frames_before, "frames leaked");
}
