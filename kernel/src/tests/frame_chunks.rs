//! The frame pool keeps freed frames listed in chunks: freeing a frame
//! writes into the top chunk, not into the frame, and every frame (chunks
//! included) comes back exactly once.
use alloc::vec::Vec;

use crate::memory::{frame, phys_to_virt};
use crate::{kassert, kassert_eq, ktest};

/// More than a CPU's cache holds, so most of them reach the pool.
const FRAMES: usize = 1024;
const PATTERN: u64 = 0x5a5a_1234_a5a5_4321;

fn first_word(pa: u64) -> u64 {
    // SAFETY: a direct-mapped frame; read only, and a stale value is fine
    // (the count below tolerates frames another CPU took meanwhile).
    unsafe { (phys_to_virt(pa) as *const u64).read_volatile() }
}

ktest!(
    fn frame_free_leaves_frames_untouched() {
        let mut frames = Vec::with_capacity(FRAMES);
        for _ in 0..FRAMES {
            let Some(pa) = frame::alloc() else { break };
            // SAFETY: the frame is ours until freed below.
            unsafe { (phys_to_virt(pa) as *mut u64).write_volatile(PATTERN) };
            frames.push(pa);
        }
        kassert_eq!(frames.len(), FRAMES, "frames allocated");
        frame::free_many(&frames);
        // Each chunk lists 510 frames, so about 3 of 1024 become chunks;
        // another CPU allocating meanwhile may take and reuse a few more.
        let intact = frames
            .iter()
            .filter(|&&pa| first_word(pa) == PATTERN)
            .count();
        kassert!(
            intact * 2 >= FRAMES,
            "freeing wrote into {} of {} freed frames",
            FRAMES - intact,
            FRAMES
        );
        Ok(())
    }
);

ktest!(
    fn frame_chunks_hand_out_each_frame_once() {
        let take = |n: usize| (0..n).map_while(|_| frame::alloc()).collect::<Vec<_>>();
        // Free them in two rounds so that a chunk fills and a new one starts
        // on top of it; then take them all back: the chunks themselves come
        // out once their entries are gone.
        let first = take(FRAMES);
        let second = take(FRAMES);
        frame::free_many(&first);
        frame::free_many(&second);
        let mut again = take(2 * FRAMES);
        kassert_eq!(again.len(), 2 * FRAMES, "frames allocated again");
        again.sort_unstable();
        let len = again.len();
        again.dedup();
        let dups = len - again.len();
        frame::free_many(&again);
        kassert_eq!(dups, 0, "frames handed out twice");
        Ok(())
    }
);
