#!/usr/bin/env bash
# `make fault-insns`: count the instructions of a few user page faults, per
# function (gdb/count_fault.py), in the release kernel running faultbench on
# one CPU. Usage: scripts/fault-insns.sh QEMU_RUN KERNEL_ELF SERIAL_LOG
set -euo pipefail
runner=$1 kernel=$2 log=$3

setsid "$runner" --exec --gdb --mode run --smp 1 --cpu qemu64 \
    --append "mode=run prog=faultbench -- -m quiet -t 1 -d 3" "$kernel" \
    </dev/null >"$log" 2>&1 &
qemu=$!
trap 'kill "$qemu" 2>/dev/null || true' EXIT

# Wait until QEMU listens on port 1234 (as scripts/gdb.sh does).
for _ in $(seq 100); do
    if grep -q ':04D2 00000000:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
        break
    fi
    if ! kill -0 "$qemu" 2>/dev/null; then
        echo "make fault-insns: QEMU exited; its output:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done

timeout 600 gdb -q -batch -ex "file $kernel" -ex "set pagination off" \
    -ex "set confirm off" -ex "set architecture i386:x86-64" \
    -ex "target remote localhost:1234" -x gdb/count_fault.py 2>&1 \
    | grep -E '^(fault |  +[0-9]|Python|gdb)' || true
