# Sourced by scripts/gdb.sh and scripts/fault-insns.sh: start QEMU waiting
# for a debugger (-s -S) in the background and wait until it listens.
# Usage: start_qemu_for_gdb LOG QEMU_RUN [qemu-run arguments...]
# Sets $qemu (its pid) and kills it when the calling script exits.

start_qemu_for_gdb() {
    local log=$1
    shift
    # setsid: a new session, so the Ctrl-C meant for GDB (interrupt the
    # guest) does not also kill QEMU. --exec makes qemu-run become QEMU, so
    # $! is QEMU.
    setsid "$@" --exec --gdb </dev/null >"$log" 2>&1 &
    qemu=$!
    trap 'kill "$qemu" 2>/dev/null || true' EXIT

    # Wait until QEMU listens on port 1234 (0x04D2, state 0A = LISTEN).
    # Reading /proc instead of connecting: a probe connection would be a GDB
    # session.
    for _ in $(seq 100); do
        if grep -q ':04D2 00000000:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$qemu" 2>/dev/null; then
            echo "QEMU exited; its output:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
}
