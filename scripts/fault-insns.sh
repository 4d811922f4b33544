#!/usr/bin/env bash
# `make fault-insns`: count the instructions of a few user page faults, per
# function (gdb/count_fault.py), in the release kernel running faultbench on
# one CPU. Usage: scripts/fault-insns.sh QEMU_RUN KERNEL_ELF SERIAL_LOG
set -euo pipefail
runner=$1 kernel=$2 log=$3
source "$(dirname "$0")/qemu-for-gdb.sh"

start_qemu_for_gdb "$log" "$runner" --mode run --smp 1 --cpu qemu64 \
    --append "mode=run prog=faultbench -- -m quiet -t 1 -d 3" "$kernel"

timeout 600 gdb -q -batch -ex "file $kernel" -ex "set pagination off" \
    -ex "set confirm off" -ex "set architecture i386:x86-64" \
    -ex "target remote localhost:1234" -x gdb/count_fault.py 2>&1 \
    | grep -E '^(fault |  +[0-9]|Python|gdb)' || true
