//! Test: THREAD_JOIN reaps. Joining a thread a second time gets ESRCH; of
//! two threads joining the same thread at once, one gets its exit code and
//! the other EBUSY. Also: the caller's own tid (EINVAL), and tids that are
//! no thread of this process (0, 1: a kernel task, u64::MAX: ESRCH).
#![no_std]
#![no_main]

use abi::Errno;
use abi::errno::decode;
use abi::nr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use rt::{Args, check, println};

rt::main!(main);

/// A thread that exits with `code` once `release` is set; its tid. (Joined
/// by tid, not through the handle, so the handle is forgotten.)
fn start(code: i32, release: &'static AtomicBool) -> u64 {
    let t = rt::spawn(move || {
        // Relaxed: a go signal only, no data travels with it.
        while !release.load(Ordering::Relaxed) {
            rt::yield_now();
        }
        rt::thread_exit(code)
    });
    let tid = t.tid();
    core::mem::forget::<rt::JoinHandle<()>>(t);
    tid
}

static GO_FIRST: AtomicBool = AtomicBool::new(false);
static GO_TARGET: AtomicBool = AtomicBool::new(false);
static TARGET: AtomicU64 = AtomicU64::new(0);
/// Results of the two joiners, encoded as in `rax` (0: not yet).
static RESULTS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
const PENDING: u64 = 0;

fn join_raw(tid: u64) -> Result<u64, Errno> {
    // SAFETY: THREAD_JOIN takes no pointer.
    decode(unsafe { rt::syscall::syscall1(nr::THREAD_JOIN, tid) })
}

fn main(_args: Args) -> i32 {
    // Join twice: the first reaps, the second finds nothing.
    let tid = start(7, &GO_FIRST);
    GO_FIRST.store(true, Ordering::Relaxed);
    let r = rt::thread_join(tid);
    check!(r == Ok(7), "first join of {tid}: {r:?}");
    let r = rt::thread_join(tid);
    check!(r == Err(Errno::ESRCH), "second join of {tid}: {r:?}");
    println!("ok: a second join gets ESRCH");

    // Two joiners: the target runs until both have tried, so the one that
    // comes second finds it claimed (it cannot have been reaped yet).
    let target = start(-3, &GO_TARGET);
    // Relaxed: THREAD_SPAWN orders it before the joiners start.
    TARGET.store(target, Ordering::Relaxed);
    let joiners = [0, 1].map(|i| {
        rt::spawn(move || {
            // The encoded result is never PENDING: an exit code of 0 would
            // be, but the target exits with -3.
            let r = join_raw(TARGET.load(Ordering::Relaxed));
            // Relaxed: the value is the whole message.
            RESULTS[i].store(abi::errno::encode(r), Ordering::Relaxed);
        })
    });
    // The second joiner returns at once with EBUSY; the first waits.
    while RESULTS.iter().all(|r| r.load(Ordering::Relaxed) == PENDING) {
        rt::yield_now();
    }
    GO_TARGET.store(true, Ordering::Relaxed);
    for j in joiners {
        j.join();
    }
    // Relaxed: the joins above order the joiners' stores before these loads.
    let mut results = [0, 1].map(|i| decode(RESULTS[i].load(Ordering::Relaxed)));
    results.sort_by_key(|r| r.is_err());
    let code = results[0].map(abi::thread::exit_code_from_ret);
    check!(
        code == Ok(-3) && results[1] == Err(Errno::EBUSY),
        "two joiners got {:?} and {:?}",
        results[0],
        results[1]
    );
    let r = rt::thread_join(target);
    check!(
        r == Err(Errno::ESRCH),
        "join after the joiner reaped: {r:?}"
    );
    println!("ok: of two joiners one gets the exit code, the other EBUSY");

    // Not a thread of this process: none yet, reaped, or a kernel task.
    let reaped = rt::spawn(|| ());
    let reaped_tid = reaped.tid();
    reaped.join();
    for tid in [0, 1, u64::MAX, reaped_tid, reaped_tid + 1_000_000] {
        let r = join_raw(tid);
        check!(r == Err(Errno::ESRCH), "join of tid {tid:#x}: {r:?}");
    }

    // A thread learns its own tid from its spawner.
    let t = rt::spawn(|| {
        // Acquire: pairs with the Release store of the tid below.
        let tid = loop {
            match SELF_TID.load(Ordering::Acquire) {
                0 => rt::yield_now(),
                tid => break tid,
            }
        };
        join_raw(tid)
    });
    SELF_TID.store(t.tid(), Ordering::Release);
    let r = t.join();
    check!(r == Err(Errno::EINVAL), "join of the caller itself: {r:?}");
    println!("ok: join of itself EINVAL; of no thread of this process ESRCH");
    0
}

static SELF_TID: AtomicU64 = AtomicU64::new(0);
