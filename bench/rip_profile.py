#!/usr/bin/env python3
"""A sampling profile of the kernel under QEMU, without any support in it.

Boots KERNEL (single vCPU, single-threaded TCG) running PROGRAM ARGS, asks
QEMU's monitor for the registers every few milliseconds for SECONDS, and
prints the share of samples per function (the kernel's symbols from `nm`;
"user" for user-mode addresses). Under TCG the sampled RIP is where the
vCPU stopped, at a translation-block boundary, so short functions are
under-sampled; the shares are still a fair map of where the time goes.

    python3 bench/rip_profile.py target/x86_64-target/release/kernel 20 \\
        writerbench '-b 2000 -i 1000'

The program must run longer than SECONDS (QEMU is killed at the end).
"""
import bisect
import collections
import os
import re
import socket
import subprocess
import sys
import tempfile
import time


def monitor(sock, command):
    """One HMP command; its output up to the next prompt."""
    sock.sendall((command + "\n").encode())
    buf = b""
    while True:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        buf += data
        if buf.rstrip().endswith(b"(qemu)") and command.encode() in buf:
            break
    return buf.decode(errors="replace")


def symbols(kernel):
    out = subprocess.run(["nm", "-C", "--defined-only", kernel],
                         capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    return syms


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    kernel, seconds, program = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    args = sys.argv[4] if len(sys.argv) > 4 else ""
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "monitor.sock")
    qemu = subprocess.Popen([
        "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,thread=single",
        "-cpu", "qemu64", "-smp", "1", "-m", "1G", "-kernel", kernel,
        "-serial", "file:" + os.path.join(tmp, "serial.log"),
        "-display", "none", "-monitor", "unix:%s,server,nowait" % path,
        "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-append", "mode=run prog=%s -- %s" % (program, args)])
    time.sleep(1.5)  # boot
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    sock.settimeout(2)
    monitor(sock, "")
    rips = []
    start = time.time()
    try:
        while time.time() - start < seconds:
            m = re.search(r"RIP=([0-9a-f]+)", monitor(sock, "info registers"))
            if m:
                rips.append(int(m.group(1), 16))
            time.sleep(0.002)
    finally:
        qemu.kill()
    syms = symbols(kernel)
    addrs = [a for a, _ in syms]
    counts = collections.Counter()
    for rip in rips:
        if rip < 0x8000_0000_0000:
            counts["user"] += 1
            continue
        i = bisect.bisect_right(addrs, rip) - 1
        counts[syms[i][1][:120] if i >= 0 else "?"] += 1
    print("samples", len(rips), "(serial log in %s)" % tmp)
    for name, n in counts.most_common(40):
        print("%5.1f%% %s" % (100 * n / max(len(rips), 1), name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
