//! Random map/unmap/protect/fault sequences against a plain `BTreeMap`
//! reference model; the whole layout, the resident pages and the page-table
//! census are compared after every step. 10,000 cases.
#![cfg(not(loom))]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mm::fault::{Access, FaultOutcome, access_allowed, handle_user_fault};
use mm::host::Host;
use mm::mm::{MapAt, Mm, MmError, USER_START};
use mm::vma::Prot;
use mm::vma_cache::VmaCache;
use proptest::prelude::*;

const P: u64 = 4096;
/// The model's window: `PAGES` pages from `USER_START` (where `MapAt::Any`
/// starts looking, so the model's "lowest gap" is simple).
const PAGES: u64 = 24;

fn addr(page: u64) -> u64 {
    USER_START + page * P
}

#[derive(Clone, Debug)]
enum Op {
    Map {
        page: Option<u64>,
        fixed: bool,
        len: u64,
        prot: u32,
    },
    Unmap {
        page: u64,
        len: u64,
    },
    Protect {
        page: u64,
        len: u64,
        prot: u32,
    },
    Fault {
        page: u64,
        access: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let page = 0..PAGES;
    let len = 1..6u64;
    let prot = 0..8u32;
    prop_oneof![
        3 => (proptest::option::of(page.clone()), any::<bool>(), len.clone(), prot.clone())
            .prop_map(|(page, fixed, len, prot)| Op::Map { page, fixed, len, prot }),
        2 => (page.clone(), len.clone()).prop_map(|(page, len)| Op::Unmap { page, len }),
        2 => (page.clone(), len, prot).prop_map(|(page, len, prot)| Op::Protect { page, len, prot }),
        3 => (page, 0..3u8).prop_map(|(page, access)| Op::Fault { page, access }),
    ]
}

/// The reference: start page -> (end page, prot), and the touched pages.
#[derive(Default)]
struct Model {
    vmas: BTreeMap<u64, (u64, u32)>,
    resident: BTreeSet<u64>,
}

impl Model {
    fn remove(&mut self, a: u64, b: u64) {
        let hit: Vec<(u64, (u64, u32))> = self
            .vmas
            .iter()
            .filter(|&(&s, &(e, _))| s < b && e > a)
            .map(|(&s, &v)| (s, v))
            .collect();
        for (s, (e, p)) in hit {
            self.vmas.remove(&s);
            if s < a {
                self.vmas.insert(s, (a, p));
            }
            if e > b {
                self.vmas.insert(b, (e, p));
            }
        }
        self.resident.retain(|&pg| pg < a || pg >= b);
    }

    fn is_free(&self, a: u64, b: u64) -> bool {
        !self.vmas.iter().any(|(&s, &(e, _))| s < b && e > a)
    }

    fn lowest_gap(&self, len: u64) -> u64 {
        let mut at = 0;
        for (&s, &(e, _)) in &self.vmas {
            if s >= at + len {
                return at;
            }
            at = at.max(e);
        }
        at
    }

    fn find(&self, pg: u64) -> Option<(u64, u64, u32)> {
        self.vmas
            .range(..=pg)
            .next_back()
            .map(|(&s, &(e, p))| (s, e, p))
            .filter(|&(_, e, _)| pg < e)
    }

    fn protect(&mut self, a: u64, b: u64, prot: u32) -> Result<(), MmError> {
        let mut at = a;
        for (&s, &(e, _)) in self.vmas.range(..b) {
            if e <= at {
                continue;
            }
            if s > at {
                return Err(MmError::NotMapped);
            }
            at = e;
        }
        if at < b {
            return Err(MmError::NotMapped);
        }
        let keep: BTreeSet<u64> = self.resident.range(a..b).copied().collect();
        self.remove(a, b);
        self.resident.extend(keep);
        let (mut s, mut e) = (a, b);
        if let Some((ls, le, lp)) = a.checked_sub(1).and_then(|x| self.find(x))
            && le == a
            && lp == prot
        {
            self.vmas.remove(&ls);
            s = ls;
        }
        if let Some((rs, re, rp)) = self.find(b)
            && rs == b
            && rp == prot
        {
            self.vmas.remove(&rs);
            e = re;
        }
        self.vmas.insert(s, (e, prot));
        Ok(())
    }
}

fn check(mm: &Mm<Host>, model: &Model) {
    let got: Vec<(u64, u64, u32)> = mm
        .vmas()
        .into_iter()
        .map(|(r, p)| (r.start, r.end, p.bits()))
        .collect();
    let want: Vec<(u64, u64, u32)> = model
        .vmas
        .iter()
        .map(|(&s, &(e, p))| (addr(s), addr(e), p))
        .collect();
    assert_eq!(got, want, "VMA layout differs from the model");
    assert_eq!(mm.vma_count(), want.len());
    assert_eq!(mm.rss(), model.resident.len() as u64, "resident pages");
    let (leaves, tables) = mm.census();
    assert_eq!(leaves, model.resident.len() as u64, "page-table leaves");
    assert_eq!(tables, mm.page_table_pages(), "page-table pages");
    if model.vmas.is_empty() {
        assert_eq!(tables, 0, "page-table pages left with no VMA");
    }
    mm.check_invariants();
    assert_eq!(Host::held_locks(), 0);
}

fn run(ops: Vec<Op>) {
    let cache = Arc::new(VmaCache::<Host>::new());
    let mm = Mm::new(cache.clone()).unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Map {
                page,
                fixed,
                len,
                prot,
            } => {
                let at = match (page, fixed) {
                    (None, _) => MapAt::Any,
                    (Some(p), true) => MapAt::Fixed(addr(p)),
                    (Some(p), false) => MapAt::Hint(addr(p)),
                };
                let got = mm.map(at, len * P, prot);
                if prot > 7 {
                    assert_eq!(got, Err(MmError::BadFlags));
                    continue;
                }
                let start = match (page, fixed) {
                    (Some(p), true) => {
                        model.remove(p, p + len);
                        p
                    }
                    (Some(p), false) if model.is_free(p, p + len) => p,
                    _ => model.lowest_gap(len),
                };
                model.vmas.insert(start, (start + len, prot));
                assert_eq!(got, Ok(addr(start)));
            }
            Op::Unmap { page, len } => {
                assert_eq!(mm.unmap(addr(page), len * P), Ok(()));
                model.remove(page, page + len);
            }
            Op::Protect { page, len, prot } => {
                let got = mm.protect(addr(page), len * P, prot);
                assert_eq!(got, model.protect(page, page + len, prot));
            }
            Op::Fault { page, access } => {
                let access = [Access::Read, Access::Write, Access::Exec][access as usize];
                let got = handle_user_fault(&mm, addr(page) + 8, access);
                let ok = model
                    .find(page)
                    .is_some_and(|(_, _, p)| access_allowed(Prot::from_bits(p).unwrap(), access));
                if ok {
                    assert_eq!(got, FaultOutcome::Done);
                    model.resident.insert(page);
                } else {
                    assert_eq!(got, FaultOutcome::AccessError);
                }
            }
        }
        check(&mm, &model);
    }
    drop(mm);
    assert_eq!(cache.in_use(), 0, "VMAs leaked");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ops_match_reference_model(ops in proptest::collection::vec(op(), 1..16)) {
        run(ops);
    }
}
