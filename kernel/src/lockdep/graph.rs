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

#[derive(Clone, Copy)]
pub struct Class {
    pub name: &'static str,
    /// Where the lock was created (the class key, with `name`).
    pub site: Site,
    /// First acquisitions in interrupt context / with interrupts enabled.
    pub irq_site: Option<Site>,
    pub enabled_site: Option<Site>,
    first_edge: u32,
}

/// `from` was held (taken at `from_site`) when `to` was taken at `to_site`.
#[derive(Clone, Copy)]
pub struct Edge {
    pub from: ClassId,
    pub to: ClassId,
    pub from_site: Site,
    pub to_site: Site,
    next: u32,
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
/// `None`: no cycle.
/// `from == to` (a class nested in itself) is returned as an empty chain.
pub fn add_edge(from: ClassId, from_site: Site, to: ClassId, to_site: Site) -> Option<Chain> {
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
            return Some(chain);
        }
        let e = g.nedges;
        g.nedges += 1;
        let c = g.classes[from as usize].as_mut().unwrap();
        g.edges[e] = Some(Edge {
            from,
            to,
            from_site,
            to_site,
            next: c.first_edge,
        });
        c.first_edge = e as u32;
        None
    })
}

fn empty_chain() -> Chain {
    Chain {
        links: [None; MAX_CHAIN],
        truncated: false,
    }
}

impl Graph {
    /// Breadth-first search for a path `src ->* dst`.
    fn path(&mut self, src: ClassId, dst: ClassId) -> Option<Chain> {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let (mut head, mut tail) = (0, 0);
        self.seen[src as usize] = generation;
        self.queue[tail] = src;
        tail += 1;
        while head < tail {
            let c = self.queue[head];
            head += 1;
            let mut e = self.classes[c as usize].unwrap().first_edge;
            while e != NO_EDGE {
                let edge = self.edges[e as usize].unwrap();
                let to = edge.to as usize;
                if self.seen[to] != generation {
                    self.seen[to] = generation;
                    self.via[to] = e;
                    if edge.to == dst {
                        return Some(self.chain_to(src, dst));
                    }
                    self.queue[tail] = edge.to;
                    tail += 1;
                }
                e = edge.next;
            }
        }
        None
    }

    /// The path found by `path`, from `src` to `dst`, as printable links.
    fn chain_to(&mut self, src: ClassId, dst: ClassId) -> Chain {
        // Walk back from dst, then reverse.
        let mut n = 0;
        let mut c = dst;
        while c != src {
            let e = self.via[c as usize];
            self.back[n] = e;
            n += 1;
            c = self.edges[e as usize].unwrap().from;
        }
        let mut chain = empty_chain();
        chain.truncated = n > MAX_CHAIN;
        for (slot, &e) in chain.links.iter_mut().zip(self.back[..n].iter().rev()) {
            let edge = self.edges[e as usize].unwrap();
            *slot = Some(Link {
                from: self.classes[edge.from as usize].unwrap().display(),
                from_site: edge.from_site,
                to: self.classes[edge.to as usize].unwrap().display(),
                to_site: edge.to_site,
            });
        }
        chain
    }
}

/// Note that `id` was taken in interrupt context (`USED_IN_IRQ`) or with
/// interrupts enabled (`ENABLED_IRQ`). Returns the conflict the first time a
/// class has both.
pub fn mark_usage(id: ClassId, bit: u8, site: Site) -> Option<IrqConflict> {
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
        // Relaxed: written under the graph lock; the lock-free read above
        // only skips work already done.
        let old = USAGE[id as usize].fetch_or(bit, Ordering::Relaxed);
        let both = (old | bit) & (USED_IN_IRQ | ENABLED_IRQ) == USED_IN_IRQ | ENABLED_IRQ;
        if !both || old & IRQ_REPORTED != 0 {
            return None;
        }
        USAGE[id as usize].fetch_or(IRQ_REPORTED, Ordering::Relaxed);
        Some(IrqConflict {
            class: c.display(),
            irq_site: c.irq_site.unwrap(),
            enabled_site: c.enabled_site.unwrap(),
        })
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
