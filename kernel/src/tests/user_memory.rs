//! User memory at its limits: the ends of the user address range, the fault
//! counters' one-event-per-fault rule, and running out of memory. The user
//! programs check their own side; these tests add what only the kernel sees.

use crate::{kassert_eq, ktest, mm_platform, user};

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
