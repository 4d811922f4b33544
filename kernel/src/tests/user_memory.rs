//! User memory at its limits: the ends of the user address range, the fault
//! counters' one-event-per-fault rule, and running out of memory. The user
//! programs check their own side; these tests add what only the kernel sees.

use crate::{kassert_eq, ktest, user};

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
