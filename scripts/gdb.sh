#!/usr/bin/env bash
# `make gdb`: QEMU waiting for a debugger (-s -S) in the background, GDB in
# the foreground; QEMU is stopped when GDB exits.
# Usage: scripts/gdb.sh QEMU_RUN KERNEL_ELF SERIAL_LOG
set -euo pipefail
runner=$1 kernel=$2 log=$3
source "$(dirname "$0")/qemu-for-gdb.sh"

start_qemu_for_gdb "$log" "$runner" --mode run "$kernel"

cat <<INFO
make gdb: QEMU (pid $qemu) waits on localhost:1234; guest serial output goes to
    $log   (watch it with: tail -f $log)
INFO
gdb -q -ex "file $kernel" -x gdb/kernel.gdb
