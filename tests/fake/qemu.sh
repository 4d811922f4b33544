#!/bin/sh
# A stand-in for qemu-system-x86_64 that prints canned kernel output, to test
# qemu-run's process handling without booting anything (QEMU=this script).
# FAKE_QEMU picks the story; the exit statuses are the ones QEMU gives for the
# kernel's isa-debug-exit writes: 33 success, 35 failure, 0 triple fault.
echo "fake-qemu args: $*"
ktap_start() {
    printf '[    0.000100] cpu0 INFO  booting\r\n'
    echo "KTAP version 1"
    echo "1..$1"
}
# A must-fail kernel runs one replay alone: FAKE_MUST_FAIL=caught makes it
# fail (the bug is seen), anything else makes it pass.
case "$*" in
*ktest=replay_*)
    name=$(echo "$*" | sed 's/.*ktest=\([a-z0-9_]*\).*/\1/')
    ktap_start 1
    echo "# start: $name"
    if [ "$FAKE_MUST_FAIL" = caught ]; then
        printf '[    0.100000] cpu1 ERROR lockdep: task exits holding locks\r\n'
        echo "not ok 1 $name"; exit 35
    fi
    echo "ok 1 $name"; exit 33 ;;
esac
case "$FAKE_QEMU" in
pass)
    ktap_start 2
    echo "# start: boot_memory_map_sane"; echo "ok 1 boot_memory_map_sane"
    echo "# start: smp_all_cpus_online"; echo "# cpus online: 4"; echo "ok 2 smp_all_cpus_online"
    exit 33 ;;
fail)
    ktap_start 2
    echo "# start: a"; echo "ok 1 a"
    echo "# start: selftest_fail"; echo "# assertion failed: 1 == 2"; echo "not ok 2 selftest_fail"
    exit 35 ;;
triple)
    ktap_start 1
    echo "# start: a"; echo "ok 1 a"
    exit 0 ;;
short)
    ktap_start 3
    echo "# start: a"; echo "ok 1 a"
    exit 33 ;;
noplan)
    echo "KTAP version 1"; echo "ok 1 a"
    exit 33 ;;
panic)
    ktap_start 1
    echo "# start: page_fault_reports_cr2"
    echo "[    1.000000] cpu1 ERROR KERNEL PANIC: page fault at 0x0"
    echo "    bt #0 0xffffffff80001234"
    exit 35 ;;
hang)
    ktap_start 2
    echo "# start: a"; echo "ok 1 a"
    echo "# start: selftest_hang"
    exec sleep 600 ;;
run)
    echo "[    0.500000] cpu0 INFO  4 CPUs online"
    exit "${FAKE_STATUS:-33}" ;;
*)
    echo "fake-qemu: unknown FAKE_QEMU='$FAKE_QEMU'" >&2
    exit 1 ;;
esac
