//! Tests that must fail: they prove the runner notices a failure and a hang.
//! Run only with `ktest.selftest=fail` or `ktest.selftest=hang`.
use crate::ktest;

ktest!(selftest "fail" fn selftest_deliberate_failure() {
    Err(alloc::string::String::from("this test fails on purpose (ktest.selftest=fail)"))
});

ktest!(selftest "hang" fn selftest_deliberate_hang() {
    loop {
        core::hint::spin_loop();
    }
});
