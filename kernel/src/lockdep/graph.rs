//! Lock classes and the dependency graph between them.
//!
//! Everything here is statically allocated and guarded by one raw spinlock
//! (`GRAPH`) that is *not* a `SpinLock`: lockdep must never call back into
//! itself or into the heap allocator (whose lock is a `SpinLock`). Callers
//! hold interrupts off while they use it, so an interrupt handler taking a
//! lock cannot spin on a graph lock its own CPU holds.
//!
//! Two tables are read without the graph lock, on every acquire:
//! - `EDGE_SET`, a hash set of the dependencies already seen (or already
//!   reported), so a known `held -> new` pair costs one probe;
//! - `USAGE`, each class's interrupt-usage bits.
//!
//! Both only ever gain entries (until `MAX_*` is reached and lockdep turns
//! itself off), so a lock-free reader that misses a fresh entry merely takes
//! the slow path, which re-checks under the lock.

use core::cell::UnsafeCell;
use core::panic::Location;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};

use crate::arch::cpu;

pub const MAX_CLASSES: usize = 1024;
pub const MAX_EDGES: usize = 8192;
/// Twice `MAX_EDGES`, a power of two: the set stays at most half full.
const EDGE_SET_SIZE: usize = 2 * MAX_EDGES;
/// Twice `MAX_CLASSES`, a power of two.
const CLASS_HASH_SIZE: usize = 2 * MAX_CLASSES;
/// Longest chain a report prints (longer ones end with "...").
pub const MAX_CHAIN: usize = 12;

/// A class's index in `Graph::classes`; 0 means "none".
pub type ClassId = u16;

type Site = &'static Location<'static>;

/// The usage bits of `USAGE`.
pub const USED_IN_IRQ: u8 = 1;
pub const ENABLED_IRQ: u8 = 2;
const IRQ_REPORTED: u8 = 4;
/// An irq-safe -> irq-unsafe order ending at this class was reported.
const IRQ_ORDER_REPORTED: u8 = 8;

#[derive(Clone, Copy)]
pub struct Class {
    pub name: &'static str,
    /// Where the lock was created (the class key, with `name`).
    pub site: Site,
    /// First acquisitions in interrupt context / with interrupts enabled.
    pub irq_site: Option<Site>,
    pub enabled_site: Option<Site>,
    /// Edges out of this class, and into it (lists through `Edge`).
    first_edge: u32,
    first_in: u32,
}

/// `from` was held (taken at `from_site`) when `to` was taken at `to_site`.
#[derive(Clone, Copy)]
pub struct Edge {
    pub from: ClassId,
    pub to: ClassId,
    pub from_site: Site,
    pub to_site: Site,
    next: u32,
    next_in: u32,
}

const NO_EDGE: u32 = u32::MAX;

/// A class as reports name it: `spinlock@kernel/src/sched/mod.rs:40`
/// (the kind of lock, and the line that created it).
#[derive(Clone, Copy)]
pub struct ClassName {
    pub name: &'static str,
    pub site: Site,
}

impl core::fmt::Display for ClassName {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "{}@{}:{}", self.name, self.site.file(), self.site.line())
    }
}

impl Class {
    pub fn display(&self) -> ClassName {
        ClassName {
            name: self.name,
            site: self.site,
        }
    }
}

/// One link of a reported chain, copied out of the graph so it can be
/// printed after the graph lock is dropped.
#[derive(Clone, Copy)]
pub struct Link {
    pub from: ClassName,
    pub from_site: Site,
    pub to: ClassName,
    pub to_site: Site,
}

/// The existing path `to ->* from` that a new edge `from -> to` would close.
#[derive(Clone, Copy)]
pub struct Chain {
    pub links: [Option<Link>; MAX_CHAIN],
    pub truncated: bool,
}

/// An interrupt-safe class ordered before an interrupt-unsafe one: `chain`
/// goes from `safe` (taken in a handler at `safe_site`) to `unsafe_` (taken
/// with interrupts on at `unsafe_site`).
#[derive(Clone, Copy)]
pub struct IrqOrder {
    pub safe: ClassName,
    pub safe_site: Site,
    pub unsafe_: ClassName,
    pub unsafe_site: Site,
    pub chain: Chain,
}

/// A problem the graph found. Returned by value (lockdep never allocates),
/// at most once per report, so the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Problem {
    /// A new edge would close this existing path into a cycle (empty: a
    /// class nested in itself).
    Cycle(Chain),
    /// One class taken in a handler and with interrupts on.
    IrqUnsafe(IrqConflict),
    IrqOrder(IrqOrder),
}

/// What a report about interrupt usage needs.
pub struct IrqConflict {
    pub class: ClassName,
    pub irq_site: Site,
    pub enabled_site: Site,
}

struct Graph {
    /// Ids start at 1; `nclasses` is the number in use.
    classes: [Option<Class>; MAX_CLASSES],
    nclasses: usize,
    /// Open addressing: class ids by hash of (name, site).
    class_hash: [ClassId; CLASS_HASH_SIZE],
    edges: [Option<Edge>; MAX_EDGES],
    nedges: usize,
    /// Breadth-first search scratch: generation stamps, the edge each class
    /// was reached by, and the queue.
    seen: [u32; MAX_CLASSES],
    via: [u32; MAX_CLASSES],
    queue: [ClassId; MAX_CLASSES],
    back: [u32; MAX_CLASSES],
    generation: u32,
    /// The last cycle found: the new edge and the chain it closed (tests).
    last_cycle: Option<(Link, Chain)>,
}

struct GraphLock {
    locked: AtomicBool,
    graph: UnsafeCell<Graph>,
}

// SAFETY: `graph` is only reached through `with_graph`, which holds `locked`.
unsafe impl Sync for GraphLock {}

static GRAPH: GraphLock = GraphLock {
    locked: AtomicBool::new(false),
    graph: UnsafeCell::new(Graph {
        classes: [None; MAX_CLASSES],
        nclasses: 0,
        class_hash: [0; CLASS_HASH_SIZE],
        edges: [None; MAX_EDGES],
        nedges: 0,
        seen: [0; MAX_CLASSES],
        via: [0; MAX_CLASSES],
        queue: [0; MAX_CLASSES],
        back: [0; MAX_CLASSES],
        generation: 0,
        last_cycle: None,
    }),
};

static EDGE_SET: [AtomicU32; EDGE_SET_SIZE] = [const { AtomicU32::new(0) }; EDGE_SET_SIZE];
static USAGE: [AtomicU8; MAX_CLASSES] = [const { AtomicU8::new(0) }; MAX_CLASSES];

/// Set once a table is full: the checker stops (held-lock lists go on).
pub static FULL: AtomicBool = AtomicBool::new(false);

fn with_graph<R>(f: impl FnOnce(&mut Graph) -> R) -> R {
    let irq = cpu::irq_save();
    // Acquire pairs with the Release store below: the previous holder's
    // changes to the graph are visible to us.
    while GRAPH
        .locked
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        cpu::pause();
    }
    // SAFETY: we hold `locked`, so we are the only user of the graph.
    let r = f(unsafe { &mut *GRAPH.graph.get() });
    GRAPH.locked.store(false, Ordering::Release);
    cpu::irq_restore(irq);
    r
}

fn hash(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn class_hash(name: &str, site: Site) -> usize {
    let mut h = hash(name.as_bytes(), 0xcbf2_9ce4_8422_2325);
    h = hash(site.file().as_bytes(), h);
    h = hash(&site.line().to_le_bytes(), h);
    h = hash(&site.column().to_le_bytes(), h);
    h as usize
}

/// Same site by value: one call site may have several `Location` copies
/// (one per codegen unit that inlined it).
fn same_site(a: Site, b: Site) -> bool {
    a.line() == b.line() && a.column() == b.column() && a.file() == b.file()
}

/// The class of locks created at `site` with `name`, registered on first use.
pub fn class_of(name: &'static str, site: Site) -> Option<ClassId> {
    with_graph(|g| {
        let mut i = class_hash(name, site) % CLASS_HASH_SIZE;
        loop {
            let id = g.class_hash[i];
            if id == 0 {
                break;
            }
            let c = g.classes[id as usize].as_ref().unwrap();
            if c.name == name && same_site(c.site, site) {
                return Some(id);
            }
            i = (i + 1) % CLASS_HASH_SIZE;
        }
        if g.nclasses + 1 == MAX_CLASSES {
            FULL.store(true, Ordering::Relaxed);
            return None;
        }
        g.nclasses += 1;
        let id = g.nclasses as ClassId;
        g.classes[id as usize] = Some(Class {
            name,
            site,
            irq_site: None,
            enabled_site: None,
            first_edge: NO_EDGE,
            first_in: NO_EDGE,
        });
        g.class_hash[i] = id;
        Some(id)
    })
}

fn edge_key(from: ClassId, to: ClassId) -> u32 {
    u32::from(from) | u32::from(to) << 16
}

fn edge_slot(key: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B9) as usize) % EDGE_SET_SIZE
}

/// Has `from -> to` been seen (added, or reported) before? Lock-free.
pub fn edge_known(from: ClassId, to: ClassId) -> bool {
    let key = edge_key(from, to);
    let mut i = edge_slot(key);
    loop {
        // Relaxed: the set publishes nothing but membership; a miss only
        // sends us to the slow path, which re-checks under the graph lock.
        match EDGE_SET[i].load(Ordering::Relaxed) {
            0 => return false,
            k if k == key => return true,
            _ => i = (i + 1) % EDGE_SET_SIZE,
        }
    }
}

fn remember_edge(key: u32) {
    let mut i = edge_slot(key);
    while EDGE_SET[i].load(Ordering::Relaxed) != 0 {
        i = (i + 1) % EDGE_SET_SIZE;
    }
    EDGE_SET[i].store(key, Ordering::Relaxed);
}

/// Record `from -> to`, unless it closes a cycle: then return the existing
/// path `to ->* from` (and remember the pair so it is reported only once).
/// `from == to` (a class nested in itself) is returned as an empty chain.
/// A new edge that puts an interrupt-safe class before an interrupt-unsafe
/// one is added and returned as `IrqOrder`.
pub fn add_edge(from: ClassId, from_site: Site, to: ClassId, to_site: Site) -> Option<Problem> {
    with_graph(|g| {
        let key = edge_key(from, to);
        if FULL.load(Ordering::Relaxed) || edge_known(from, to) {
            return None;
        }
        if g.nedges == MAX_EDGES {
            FULL.store(true, Ordering::Relaxed);
            return None;
        }
        let cycle = if from == to {
            Some(empty_chain())
        } else {
            g.path(to, from)
        };
        remember_edge(key);
        if let Some(chain) = cycle {
            let new = Link {
                from: g.classes[from as usize].unwrap().display(),
                from_site,
                to: g.classes[to as usize].unwrap().display(),
                to_site,
            };
            g.last_cycle = Some((new, chain));
            // Not added to the graph: it stays acyclic, so later searches
            // report only new problems.
            return Some(Problem::Cycle(chain));
        }
        g.insert_edge(from, from_site, to, to_site);
        g.irq_order_through(from, to).map(Problem::IrqOrder)
    })
}

fn has(c: ClassId, bit: u8) -> bool {
    USAGE[c as usize].load(Ordering::Relaxed) & bit != 0
}

fn empty_chain() -> Chain {
    Chain {
        links: [None; MAX_CHAIN],
        truncated: false,
    }
}

impl Graph {
    fn insert_edge(&mut self, from: ClassId, from_site: Site, to: ClassId, to_site: Site) {
        let e = self.nedges;
        self.nedges += 1;
        let (out, into) = (
            self.classes[from as usize].unwrap().first_edge,
            self.classes[to as usize].unwrap().first_in,
        );
        self.edges[e] = Some(Edge {
            from,
            to,
            from_site,
            to_site,
            next: out,
            next_in: into,
        });
        self.classes[from as usize].as_mut().unwrap().first_edge = e as u32;
        self.classes[to as usize].as_mut().unwrap().first_in = e as u32;
    }

    /// Breadth-first search from `src` along edges (`forward`) or against
    /// them, for the first class other than `src` that `found` accepts.
    /// `via[c]` is left as the edge each reached class was reached by.
    fn search(
        &mut self,
        src: ClassId,
        forward: bool,
        found: impl Fn(ClassId) -> bool,
    ) -> Option<ClassId> {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let (mut head, mut tail) = (0, 0);
        self.seen[src as usize] = generation;
        self.queue[tail] = src;
        tail += 1;
        while head < tail {
            let c = self.queue[head];
            head += 1;
            let class = self.classes[c as usize].unwrap();
            let mut e = if forward {
                class.first_edge
            } else {
                class.first_in
            };
            while e != NO_EDGE {
                let edge = self.edges[e as usize].unwrap();
                let (next, other) = if forward {
                    (edge.next, edge.to)
                } else {
                    (edge.next_in, edge.from)
                };
                if self.seen[other as usize] != generation {
                    self.seen[other as usize] = generation;
                    self.via[other as usize] = e;
                    if found(other) {
                        return Some(other);
                    }
                    self.queue[tail] = other;
                    tail += 1;
                }
                e = next;
            }
        }
        None
    }

    /// A path `src ->* dst`.
    fn path(&mut self, src: ClassId, dst: ClassId) -> Option<Chain> {
        self.search(src, true, |c| c == dst)?;
        let mut chain = empty_chain();
        self.append_forward(&mut chain, src, dst);
        Some(chain)
    }

    /// Append the path a forward search from `src` found to `dst`.
    fn append_forward(&mut self, chain: &mut Chain, src: ClassId, dst: ClassId) {
        // The `via` edges lead back from dst: collect, then reverse.
        let mut n = 0;
        let mut c = dst;
        while c != src {
            let e = self.via[c as usize];
            self.back[n] = e;
            n += 1;
            c = self.edges[e as usize].unwrap().from;
        }
        for i in (0..n).rev() {
            self.append(chain, self.back[i]);
        }
    }

    /// Append the path a backward search from `src` found from `dst`
    /// (`dst ->* src`): the `via` edges already lead forward.
    fn append_backward(&self, chain: &mut Chain, src: ClassId, dst: ClassId) {
        let mut c = dst;
        while c != src {
            let e = self.via[c as usize];
            self.append(chain, e);
            c = self.edges[e as usize].unwrap().to;
        }
    }

    fn append(&self, chain: &mut Chain, e: u32) {
        let edge = self.edges[e as usize].unwrap();
        let link = Link {
            from: self.classes[edge.from as usize].unwrap().display(),
            from_site: edge.from_site,
            to: self.classes[edge.to as usize].unwrap().display(),
            to_site: edge.to_site,
        };
        match chain.links.iter_mut().find(|l| l.is_none()) {
            Some(slot) => *slot = Some(link),
            None => chain.truncated = true,
        }
    }

    /// After adding `from -> to`: an interrupt-safe class at or before
    /// `from`, and an interrupt-unsafe one at or after `to`?
    fn irq_order_through(&mut self, from: ClassId, to: ClassId) -> Option<IrqOrder> {
        let safe = if has(from, USED_IN_IRQ) {
            from
        } else {
            self.search(from, false, |c| has(c, USED_IN_IRQ))?
        };
        let mut chain = empty_chain();
        self.append_backward(&mut chain, from, safe);
        let e = self.classes[from as usize].unwrap().first_edge; // the new edge
        self.append(&mut chain, e);
        let unsafe_ = if has(to, ENABLED_IRQ) {
            to
        } else {
            self.search(to, true, |c| has(c, ENABLED_IRQ))?
        };
        self.append_forward(&mut chain, to, unsafe_);
        self.irq_order(safe, unsafe_, chain)
    }

    /// `safe` just became interrupt-safe (`forward`: look for an unsafe
    /// class after it) or interrupt-unsafe (look for a safe one before it).
    fn irq_order_from(&mut self, c: ClassId, forward: bool) -> Option<IrqOrder> {
        let mut chain = empty_chain();
        if forward {
            let u = self.search(c, true, |x| has(x, ENABLED_IRQ))?;
            self.append_forward(&mut chain, c, u);
            self.irq_order(c, u, chain)
        } else {
            let s = self.search(c, false, |x| has(x, USED_IN_IRQ))?;
            self.append_backward(&mut chain, c, s);
            self.irq_order(s, c, chain)
        }
    }

    /// The report for `safe ->* unsafe_`, once per unsafe class.
    fn irq_order(&self, safe: ClassId, unsafe_: ClassId, chain: Chain) -> Option<IrqOrder> {
        if safe == unsafe_ || has(unsafe_, IRQ_ORDER_REPORTED) {
            return None; // one class with both usages: the direct report
        }
        USAGE[unsafe_ as usize].fetch_or(IRQ_ORDER_REPORTED, Ordering::Relaxed);
        let (s, u) = (
            self.classes[safe as usize].unwrap(),
            self.classes[unsafe_ as usize].unwrap(),
        );
        Some(IrqOrder {
            safe: s.display(),
            safe_site: s.irq_site?,
            unsafe_: u.display(),
            unsafe_site: u.enabled_site?,
            chain,
        })
    }
}

/// Note that `id` was taken in interrupt context (`USED_IN_IRQ`) or with
/// interrupts enabled (`ENABLED_IRQ`). Returns the problem the first time a
/// class has both, or is ordered before (safe) or after (unsafe) a class
/// with the other usage.
pub fn mark_usage(id: ClassId, bit: u8, site: Site) -> Option<Problem> {
    if USAGE[id as usize].load(Ordering::Relaxed) & bit != 0 {
        return None;
    }
    with_graph(|g| {
        let c = g.classes[id as usize].as_mut().unwrap();
        if bit == USED_IN_IRQ {
            c.irq_site.get_or_insert(site);
        } else {
            c.enabled_site.get_or_insert(site);
        }
        let c = *c;
        // Relaxed: written under the graph lock; the lock-free read above
        // only skips work already done.
        let old = USAGE[id as usize].fetch_or(bit, Ordering::Relaxed);
        let both = (old | bit) & (USED_IN_IRQ | ENABLED_IRQ) == USED_IN_IRQ | ENABLED_IRQ;
        if both && old & IRQ_REPORTED == 0 {
            USAGE[id as usize].fetch_or(IRQ_REPORTED, Ordering::Relaxed);
            return Some(Problem::IrqUnsafe(IrqConflict {
                class: c.display(),
                irq_site: c.irq_site.unwrap(),
                enabled_site: c.enabled_site.unwrap(),
            }));
        }
        if FULL.load(Ordering::Relaxed) {
            return None;
        }
        g.irq_order_from(id, bit == USED_IN_IRQ)
            .map(Problem::IrqOrder)
    })
}

/// The usage bits of a class (tests).
pub fn usage(id: ClassId) -> u8 {
    USAGE[id as usize].load(Ordering::Relaxed)
}

/// Classes and edges in use (tests, the boot summary).
pub fn sizes() -> (usize, usize) {
    with_graph(|g| (g.nclasses, g.nedges))
}

/// The last cycle reported: the new edge and the existing chain (tests).
pub fn last_cycle() -> Option<(Link, Chain)> {
    with_graph(|g| g.last_cycle)
}
