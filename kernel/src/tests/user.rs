//! User mode: programs from `user/` run as processes, driven by these tests.
//! Each program checks its own side and exits 0 (or prints `FAIL: ...` and
//! exits 1); the tests here check the exit code, and what only the kernel
//! can see (killed processes, frames returned, fault counters).

use core::sync::atomic::Ordering;

use crate::memory::{frame, heap, paging};
use crate::{kassert, kassert_eq, ktest, mm_platform, rcu, user};

fn run(name: &str, args: &str) -> Result<i32, alloc::string::String> {
    user::run(name, args).map_err(|e| alloc::format!("cannot run {name}: {e}"))
}

fn expect_exit(name: &str, args: &str, want: i32) -> crate::ktest::TestResult {
    let code = run(name, args)?;
    kassert_eq!(code, want, "exit code of {}", name);
    Ok(())
}

/// Frames in use by the kernel's own growing structures (heap, kernel page
/// tables): they may grow during a test without being a leak.
fn kernel_structure_frames() -> usize {
    heap::mapped_frames() + paging::kernel_table_frames()
}

ktest!(
    fn user_hello() {
        expect_exit("hello", "", 0)
    }
);

ktest!(
    fn user_threads_on_all_cpus() {
        expect_exit("user_threads_on_all_cpus", "", 0)
    }
);

ktest!(
    fn fault_demand_zero() {
        expect_exit("fault_demand_zero", "", 0)
    }
);

ktest!(
    fn fault_write_to_readonly_is_reported() {
        let before = mm_platform::fault_counters_total().segv;
        expect_exit("fault_write_to_readonly", "", abi::thread::EXIT_CODE_FAULT)?;
        kassert!(
            mm_platform::fault_counters_total().segv > before,
            "no bad fault counted"
        );
        Ok(())
    }
);

ktest!(
    fn fault_outside_vma_is_reported() {
        expect_exit("fault_outside_vma", "", abi::thread::EXIT_CODE_FAULT)
    }
);

ktest!(
    fn fault_kills_all_threads() {
        expect_exit("fault_kills_all_threads", "", abi::thread::EXIT_CODE_FAULT)
    }
);

ktest!(
    fn user_fault_handler_resumes() {
        expect_exit("user_fault_handler_resumes", "", 0)
    }
);

ktest!(
    fn mprotect_downgrade_then_write_faults() {
        expect_exit("mprotect_downgrade_then_write_faults", "", 0)
    }
);

ktest!(
    fn munmap_then_access_faults() {
        expect_exit("munmap_then_access_faults", "", 0)
    }
);

ktest!(
    fn munmap_shootdown_all_cpus() {
        expect_exit("munmap_shootdown_all_cpus", "", 0)
    }
);

ktest!(
    fn mmap_bad_arguments() {
        expect_exit("mmap_bad_arguments", "", 0)
    }
);

ktest!(
    fn syscall_bad_user_pointer_returns_error() {
        expect_exit("syscall_bad_user_pointer", "x", 0)
    }
);

ktest!(
    fn faults_take_per_vma_path() {
        expect_exit("faults_per_vma", "", 0)
    }
);

ktest!(
    fn faults_with_per_vma_off_take_mmap_lock() {
        expect_exit("faults_per_vma_off", "", 0)
    }
);

ktest!(
    fn concurrent_map_unmap_vs_faulting_threads() {
        expect_exit("mtest06", "", 0)
    }
);

ktest!(
    fn process_exit_returns_all_frames() {
        // Once to warm caches (VMA cache, heap), then measure a second run.
        run("exit_with_everything_mapped", "")?;
        rcu::rcu_barrier();
        let before = frame::free_count() + kernel_structure_frames();
        let code = run("exit_with_everything_mapped", "")?;
        rcu::rcu_barrier();
        let after = frame::free_count() + kernel_structure_frames();
        kassert_eq!(code, 0);
        kassert_eq!(
            after,
            before,
            "free frames (plus kernel heap/table frames) before and after a process"
        );
        let _ = Ordering::Relaxed;
        Ok(())
    }
);
