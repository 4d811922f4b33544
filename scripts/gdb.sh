#!/usr/bin/env bash
# `make gdb`: QEMU waiting for a debugger (-s -S) in the background, GDB in
# the foreground; QEMU is stopped when GDB exits.
# Usage: scripts/gdb.sh QEMU_RUN KERNEL_ELF SERIAL_LOG
set -euo pipefail
runner=$1 kernel=$2 log=$3

# setsid: a new session, so the Ctrl-C meant for GDB (interrupt the guest)
# does not also kill QEMU. --exec makes qemu-run become QEMU, so $! is QEMU.
setsid "$runner" --exec --gdb --mode run "$kernel" </dev/null >"$log" 2>&1 &
qemu=$!
trap 'kill "$qemu" 2>/dev/null || true' EXIT

# Wait until QEMU listens on port 1234 (0x04D2, state 0A = LISTEN). Reading
# /proc instead of connecting: a probe connection would be a GDB session.
for _ in $(seq 100); do
    if grep -q ':04D2 00000000:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
        break
    fi
    if ! kill -0 "$qemu" 2>/dev/null; then
        echo "make gdb: QEMU exited; its output:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done

cat <<INFO
make gdb: QEMU (pid $qemu) waits on localhost:1234; guest serial output goes to
    $log   (watch it with: tail -f $log)
INFO
gdb -q -ex "file $kernel" -x gdb/kernel.gdb
