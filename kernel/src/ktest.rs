//! In-kernel tests, reported in KTAP version 1 (the format of Linux's KUnit).
//!
//! A test is registered with the `ktest!` macro, which places a [`KTest`] in
//! the `.ktests` linker section; the runner walks that section, so adding a
//! test needs no list to update. Output:
//!
//! ```text
//! KTAP version 1
//! 1..N
//! # start: NAME          (the host runner names a hung test from this)
//! # any diagnostics
//! ok 1 NAME              (or: not ok 1 NAME)
//! ```
//!
//! A test returns `Err(message)` to fail (the `kassert!` macros do that), or
//! `skip(reason)` when it cannot run here (reported `ok N NAME # SKIP reason`,
//! which the host counts as skipped, never as passed). A panic or an unexpected exception inside a test marks it `not ok` and ends
//! the run with a failure.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::arch::smp;
use crate::cmdline::Cmdline;
use crate::println_raw;
use crate::sync::SpinLock;

pub type TestResult = Result<(), String>;

pub enum Kind {
    /// Runs once, on the boot CPU.
    OneCpu(fn() -> TestResult),
    /// Runs on every online CPU at once (argument: the CPU number); the test
    /// passes if every CPU's run passes.
    AllCpus(fn(usize) -> TestResult),
}

pub struct KTest {
    pub name: &'static str,
    pub kind: Kind,
    /// Tests that prove the runner catches failures; run only when named by
    /// `ktest.selftest=NAME`.
    pub selftest: Option<&'static str>,
}

/// Register an in-kernel test.
///
/// ```ignore
/// ktest!(fn my_test() { kassert!(1 + 1 == 2); Ok(()) });
/// ktest!(all_cpus fn my_smp_test(cpu) { ...; Ok(()) });
/// ```
#[macro_export]
macro_rules! ktest {
    (fn $name:ident() $body:block) => {
        $crate::ktest!(@register $name, $crate::ktest::Kind::OneCpu({
            fn $name() -> $crate::ktest::TestResult $body
            $name
        }), None);
    };
    (all_cpus fn $name:ident($cpu:ident) $body:block) => {
        $crate::ktest!(@register $name, $crate::ktest::Kind::AllCpus({
            fn $name($cpu: usize) -> $crate::ktest::TestResult $body
            $name
        }), None);
    };
    (selftest $which:literal fn $name:ident() $body:block) => {
        $crate::ktest!(@register $name, $crate::ktest::Kind::OneCpu({
            fn $name() -> $crate::ktest::TestResult $body
            $name
        }), Some($which));
    };
    (@register $name:ident, $kind:expr, $selftest:expr) => {
        const _: () = {
            #[used]
            #[unsafe(link_section = ".ktests")]
            static TEST: $crate::ktest::KTest =
                $crate::ktest::KTest { name: stringify!($name), kind: $kind, selftest: $selftest };
        };
    };
}

/// Fail the test with a message naming the condition and its source line.
#[macro_export]
macro_rules! kassert {
    ($cond:expr) => {
        if !$cond {
            return Err(alloc::format!("assertion failed at {}:{}: {}", file!(), line!(), stringify!($cond)));
        }
    };
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(alloc::format!("assertion failed at {}:{}: {}: {}", file!(), line!(), stringify!($cond),
                alloc::format!($($fmt)+)));
        }
    };
}

#[macro_export]
macro_rules! kassert_eq {
    ($a:expr, $b:expr) => {
        $crate::kassert_eq!($a, $b, "")
    };
    ($a:expr, $b:expr, $($fmt:tt)+) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(alloc::format!("assertion failed at {}:{}: {} == {}: left {:?}, right {:?}: {}", file!(), line!(),
                stringify!($a), stringify!($b), a, b, alloc::format!($($fmt)+)));
        }
    }};
}

fn all_tests() -> &'static [KTest] {
    // SAFETY: the linker script gathers every `KTest` static (all of one type,
    // 8-aligned) into `.ktests` between these symbols.
    unsafe {
        let start = &boot::__ktests_start as *const u8 as *const KTest;
        let end = &boot::__ktests_end as *const u8 as *const KTest;
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

/// Why the running test skipped itself (set by `skip`, read after it returns).
static SKIPPED: SpinLock<Option<&'static str>> = SpinLock::new(None);

/// End the running test as skipped: it cannot run on this machine (say, it
/// needs two CPUs). Return its result: `return ktest::skip("why");`.
// Only the replays skip today, and they exist only with `race-inject`.
#[allow(dead_code)]
pub fn skip(reason: &'static str) -> TestResult {
    *SKIPPED.lock() = Some(reason);
    Ok(())
}

// The running test, for the panic handler (atomics: it must not take locks).
static CURRENT_NUMBER: AtomicUsize = AtomicUsize::new(0);
static CURRENT_NAME: AtomicPtr<&'static str> = AtomicPtr::new(core::ptr::null_mut());

pub fn current_name() -> Option<&'static str> {
    let p = CURRENT_NAME.load(Ordering::Relaxed);
    // SAFETY: non-null values point at a `name` field of a static KTest.
    (!p.is_null()).then(|| unsafe { *p })
}

/// Called on a fatal error: report the running test as failed.
pub fn fail_current(reason: &str) {
    if let Some(name) = current_name() {
        println_raw!("# {name}: {reason}");
        println_raw!("not ok {} {}", CURRENT_NUMBER.load(Ordering::Relaxed), name);
    }
}

fn run_one(test: &KTest) -> TestResult {
    match test.kind {
        Kind::OneCpu(f) => f(),
        Kind::AllCpus(f) => {
            let errors: SpinLock<Vec<String>> = SpinLock::new(Vec::new());
            crate::sched::run_on_cpus(smp::online_mask(), &|cpu| {
                if let Err(e) = f(cpu) {
                    errors.lock_irqsave().push(alloc::format!("cpu{cpu}: {e}"));
                }
            });
            let errors = errors.lock().clone();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("\n"))
            }
        }
    }
}

/// Run the selected tests; true if all passed.
pub fn run_all(cmdline: &Cmdline) -> bool {
    let only = cmdline.list("ktest");
    let selftests = cmdline.list("ktest.selftest");
    let tests: Vec<&KTest> = all_tests()
        .iter()
        .filter(|t| match t.selftest {
            Some(which) => selftests.contains(&which),
            None => only.is_empty() || only.contains(&t.name),
        })
        .collect();
    for name in &only {
        if !all_tests().iter().any(|t| t.name == *name) {
            crate::warn!("ktest={name}: no such test");
        }
    }

    println_raw!("KTAP version 1");
    println_raw!("1..{}", tests.len());
    let (mut passed, mut failed) = (0, 0);
    for (i, t) in tests.iter().enumerate() {
        CURRENT_NUMBER.store(i + 1, Ordering::Relaxed);
        CURRENT_NAME.store(&t.name as *const &'static str as *mut _, Ordering::Relaxed);
        println_raw!("# start: {}", t.name);
        let t0 = crate::time::uptime_ns();
        *SKIPPED.lock() = None;
        let result = run_one(t);
        let skipped = SKIPPED.lock().take();
        CURRENT_NAME.store(core::ptr::null_mut(), Ordering::Relaxed);
        // Information only (no test asserts a time): helps spot slow tests.
        println_raw!(
            "# {}: {} ms",
            t.name,
            (crate::time::uptime_ns() - t0) / 1_000_000
        );
        match (result, skipped) {
            (Ok(()), Some(reason)) => println_raw!("ok {} {} # SKIP {reason}", i + 1, t.name),
            (Ok(()), None) => {
                passed += 1;
                println_raw!("ok {} {}", i + 1, t.name);
            }
            (Err(msg), _) => {
                failed += 1;
                for line in msg.lines() {
                    println_raw!("# {line}");
                }
                println_raw!("not ok {} {}", i + 1, t.name);
            }
        }
    }
    println_raw!("# ktest summary: {passed} passed, {failed} failed");
    crate::lockdep::print_summary();
    failed == 0
}
