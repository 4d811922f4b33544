//! User memory at its limits: the ends of the user address range, the fault
//! counters' one-event-per-fault rule, and running out of memory. The user
//! programs check their own side; these tests add what only the kernel sees.

use crate::memory::{frame, heap, paging};
use crate::{kassert, kassert_eq, ktest, mm_platform, rcu, user};

fn run(name: &str, args: &str) -> Result<i32, alloc::string::String> {
    user::run(name, args).map_err(|e| alloc::format!("cannot run {name}: {e}"))
}

ktest!(
    fn mmap_never_maps_guard_page_or_page_zero() {
        let code = run("mmap_never_maps_guard_page_or_page_zero", "")?;
        kassert_eq!(code, 0, "exit code");
        Ok(())
    }
);

ktest!(
    fn fault_counters_count_each_fault_once() {
        let before = mm_platform::fault_counters_total();
        let code = run("fault_counters_count_each_fault_once", "")?;
        kassert_eq!(code, 0, "exit code");
        // The program's only refused faults are its two rounds of 30 caught
        // bad accesses: the kernel's own count of them must agree.
        let segv = mm_platform::fault_counters_total().segv - before.segv;
        kassert_eq!(segv, 60, "segv counted for the whole process");
        Ok(())
    }
);

/// Free frames plus the frames the kernel's own growing structures (heap,
/// kernel page tables) took: flat across a process that returned everything.
fn frames_baseline() -> usize {
    rcu::rcu_barrier();
    frame::free_count() + heap::mapped_frames() + paging::kernel_table_frames()
}

/// The exit code of a process killed for running out of memory.
const EXIT_OOM: i32 = 137;

ktest!(
    fn user_oom_ends_only_that_process() {
        // Twice the machine's memory (well within the one-mapping limit).
        let mib = (frame::total_count() * 4096 * 2) >> 20;
        let cpus = crate::arch::percpu::online_count().min(4);
        // Warm the caches a process run fills (VMA cache, heap) first.
        kassert_eq!(run("hello", "")?, 0, "hello before");
        let before = frames_baseline();
        for threads in [1, cpus] {
            let args = alloc::format!("{mib} {threads}");
            let code = run("user_oom", &args)?;
            kassert_eq!(
                code,
                EXIT_OOM,
                "user_oom {} (12: mmap said ENOMEM, 1: never stopped)",
                args
            );
            kassert!(
                frame::free_count() > frame::reserve_count(),
                "the kernel's reserve is gone"
            );
            kassert_eq!(run("hello", "")?, 0, "hello after user_oom {}", args);
        }
        let after = frames_baseline();
        kassert_eq!(
            after,
            before,
            "frames before and after (free + kernel heap/tables)"
        );
        Ok(())
    }
);

/// Run `n` copies of `name` at once: each copy's exit code, or why it could
/// not start. Every copy that started is waited for and reaped, even when a
/// later one could not start (under memory pressure a spawn may fail).
fn run_together(name: &str, n: usize) -> alloc::vec::Vec<Result<i32, &'static str>> {
    let procs: alloc::vec::Vec<_> = (0..n).map(|_| user::spawn(name, "")).collect();
    procs
        .into_iter()
        .map(|p| {
            let p = p?;
            let code = user::wait(&p);
            user::reap(&p);
            Ok(code)
        })
        .collect()
}

ktest!(
    fn vma_spam_cannot_spend_the_kernel_reserve() {
        const COPIES: usize = 4;
        kassert_eq!(run("hello", "")?, 0, "hello before");
        let before = frames_baseline();
        // Without pressure, the per-process VMA limit stops it.
        kassert_eq!(run("mmap_many_vmas", "")?, 2, "exit code without pressure");
        // Leave user memory a little above the point where `mm` refuses new
        // VMAs (room to start the programs and one heap growth step), then
        // let several programs make VMAs at once: together they would need
        // far more heap than that. They must get ENOMEM before their VMAs
        // eat into the frame reserve.
        // Fill the heap's free space first: an earlier test may have grown
        // the heap enough to hold every VMA the programs can make, and then
        // no program would feel the pressure. Small blocks, so holes fill
        // too; the heap may grow while this runs, frames are still plenty.
        let slack = || (heap::mapped_frames() * 4096).saturating_sub(heap::used());
        let mut filler: alloc::vec::Vec<alloc::boxed::Box<[u8]>> =
            alloc::vec::Vec::with_capacity(slack() / 256 + 1024);
        while slack() > 64 << 10 && filler.len() < filler.capacity() {
            filler.push(alloc::vec![0u8; 256].into_boxed_slice());
        }
        let tables_before = paging::kernel_table_frames();
        let mut held = alloc::vec::Vec::with_capacity(frame::free_count());
        while frame::user_can_take(heap::GROW_MIN_FRAMES + 512) {
            match frame::alloc_user() {
                Some(pa) => held.push(pa),
                None => break,
            }
        }
        let codes = run_together("mmap_many_vmas", COPIES);
        // The heap never gives frames back: what it took stays taken.
        let low = frame::free_count();
        for pa in held {
            frame::free(pa);
        }
        drop(filler);
        // A copy may also fail to start once the others have spent what
        // little is left: refused memory for its address space or thread
        // (the spawn fails), or for a segment of its program (it ends with
        // the cannot-start code before running). That is the pressure doing
        // its job, not a way into the reserve.
        kassert!(
            codes.iter().all(|c| match c {
                Ok(code) => [0, 2, abi::thread::EXIT_CODE_CANNOT_START].contains(code),
                Err(why) => why.contains("out of memory"),
            }) && codes.contains(&Ok(0)),
            "outcomes under memory pressure: {:?} (0: ENOMEM, 2: VMA limit, 127: cannot start)",
            codes
        );
        // The reserve is the kernel's: its own page tables (mapping heap
        // growth and kernel stacks) may come from it, a process's VMAs may
        // not. So the only dip allowed is the kernel tables that grew.
        let tables = paging::kernel_table_frames() - tables_before;
        crate::info!(
            "vma_spam: lowest free {} frames, reserve {}, kernel page tables +{}",
            low,
            frame::reserve_count(),
            tables
        );
        kassert!(
            low + tables >= frame::reserve_count(),
            "free frames {} fell below the reserve {} by more than the {} kernel page-table frames added",
            low,
            frame::reserve_count(),
            tables
        );
        kassert_eq!(run("hello", "")?, 0, "hello after");
        kassert_eq!(frames_baseline(), before, "frames before and after");
        Ok(())
    }
);
