//! The fuzzer's building blocks (the program is `src/bin/fuzz.rs`): a seeded
//! random-number generator, the pools of edge-case values arguments are drawn
//! from, the address-space layout the fuzzer keeps to, and a raw six-argument
//! `syscall`.
//!
//! Everything random comes from one [`Rng`] per thread, seeded from the
//! program's `seed=` argument and the thread's index, so a run's sequence of
//! calls follows from its seed (the interleaving of threads does not).

use abi::mman::{PAGE_SIZE, USER_END, USER_START};

/// SplitMix64: tiny, fast, and every seed (even 0) gives a good sequence.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator for thread `stream` of a run seeded with `seed`.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xa076_1d64_78bd_642f));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

/// The fuzzer's own playground: every fixed mapping, unmap and protect it
/// issues on a valid range falls inside `[ARENA, ARENA_END)`, where nothing of
/// the runtime lives (the kernel places un-hinted mappings from the bottom of
/// user space up, and the main stack sits just below `0x7fff_0000_0000`).
pub const ARENA: u64 = 0x5000_0000_0000;
pub const ARENA_END: u64 = ARENA + (1 << 40);
/// The top of user space above the main stack: also free for the fuzzer.
pub const TOP_FREE: u64 = 0x7fff_0000_0000;

/// Addresses every pointer argument may take: the ends of user space, the
/// kernel half, the kernel image, non-canonical values, unaligned values.
pub const BAD_ADDRS: [u64; 16] = [
    0,
    1,
    PAGE_SIZE - 1,
    USER_START,
    USER_END - 1,
    USER_END,
    0x7fff_ffff_ffff,
    0x8000_0000_0000,      // first non-canonical address
    0x0000_ffff_ffff_f000, // non-canonical
    0x8000_0000_0000_0000, // non-canonical
    0xffff_8000_0000_0000, // start of the kernel half (direct map)
    0xffff_ffff_8000_0000, // the kernel image (-2 GiB)
    0xffff_ffff_8010_0123, // inside the kernel image, unaligned
    0xffff_ffff_ffff_f000, // the last page
    u64::MAX,
    0x4000_0000_0000_0000, // non-canonical, positive
];

/// Lengths: zero, one, around a page, around the size of user space, and
/// values that overflow when rounded up to pages.
pub const LENS: [u64; 16] = [
    0,
    1,
    2,
    48,
    PAGE_SIZE - 1,
    PAGE_SIZE,
    PAGE_SIZE + 1,
    16 * PAGE_SIZE,
    1 << 30,
    1 << 40,
    1 << 47,
    (1 << 47) + 1,
    1 << 63,
    u64::MAX,
    u64::MAX - PAGE_SIZE + 2,
    u64::MAX - 100,
];

/// Any `u64` with a bias towards edges: a pool value, a power of two, a
/// small number, or uniformly random.
pub fn edge(rng: &mut Rng) -> u64 {
    match rng.below(5) {
        0 => rng.pick(&BAD_ADDRS),
        1 => rng.pick(&LENS),
        2 => 1u64 << rng.below(64),
        3 => rng.below(70),
        _ => rng.next_u64(),
    }
}

/// Would `[addr, addr + len)` (rounded up to pages) be a valid range the
/// kernel acts on outside the fuzzer's playground? Such a call could unmap
/// the runtime's own code, heap or stacks, so the fuzzer does not issue it.
/// A range the kernel must refuse (unaligned, empty, wrapping, outside user
/// space) is always fine to issue: that is what is being tested.
pub fn hits_runtime(addr: u64, len: u64) -> bool {
    let Some(end) = len
        .checked_add(PAGE_SIZE - 1)
        .map(|l| l & !(PAGE_SIZE - 1))
        .and_then(|l| addr.checked_add(l))
    else {
        return false;
    };
    let refused =
        len == 0 || !addr.is_multiple_of(PAGE_SIZE) || addr < USER_START || end > USER_END;
    let inside_playground = (addr >= ARENA && end <= ARENA_END) || addr >= TOP_FREE;
    !refused && !inside_playground
}

/// The `syscall` instruction with six arguments (`rdi, rsi, rdx, r10, r8, r9`).
///
/// # Safety
/// The call may do anything a syscall can; the caller accounts for it (the
/// fuzzer only issues calls that cannot touch the runtime's own memory).
#[inline(always)]
pub unsafe fn syscall6(n: u64, a: [u64; 6]) -> u64 {
    let ret;
    // SAFETY: the caller's contract; the asm follows the ABI's register use.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") n => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            out("rcx") _, out("r11") _, options(nostack));
    }
    ret
}

/// [`syscall6`] entered with `rflags` loaded into RFLAGS (IF and the bits
/// ring 3 cannot change stay as they are); the caller's RFLAGS are restored
/// afterwards.
///
/// # Safety
/// As [`syscall6`]; and no bit in `rflags` may trap at once (TF) or change
/// how the few instructions in between run.
#[inline(always)]
pub unsafe fn syscall6_with_rflags(n: u64, a: [u64; 6], rflags: u64) -> u64 {
    let ret;
    // SAFETY: the caller's contract. The stack is used only for the saved
    // and the loaded RFLAGS, balanced before the asm ends.
    unsafe {
        core::arch::asm!(
            "pushfq",
            "push {f}",
            "popfq",
            "syscall",
            "popfq",
            f = in(reg) rflags | 0x202,
            inlateout("rax") n => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            out("rcx") _, out("r11") _,
        );
    }
    ret
}
