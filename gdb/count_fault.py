# Count the instructions of user page faults, per function, by single-
# stepping them under GDB. Loaded by scripts/fault-insns.sh (`make
# fault-insns`), which starts QEMU waiting on localhost:1234 with the kernel
# running `faultbench`.
#
# A count of instructions does not depend on how busy the host is, unlike a
# time, so it is the way to see what a change to the fault path costs on a
# shared machine. It does not weigh them: under QEMU's software emulation a
# store that misses its software TLB, or an exception entry, costs far more
# than an add.
import collections
import re

import gdb

FAULTS = 4  # faults stepped; the first may be a cold one
LIMIT = 100_000  # a fault longer than this is not a fault, it is a hang


def function_at(pc):
    block = gdb.block_for_pc(pc)
    name = None
    while block is not None:
        if block.function is not None:
            name = block.function.name
        block = block.superblock
    if name is None:
        sym = gdb.execute(f"info symbol {pc}", to_string=True).split(" in ")[0]
        name = sym.split(" + ")[0].strip() or hex(pc)
    # Generic arguments make names long and say little here.
    while True:
        shorter = re.sub(r"<[^<>]*>", "", name)
        if shorter == name:
            return name
        name = shorter


def step_one_fault():
    """Step from `user_fault` until the CPU is back in ring 3."""
    counts = collections.Counter()
    for n in range(1, LIMIT + 1):
        counts[function_at(int(gdb.parse_and_eval("$pc")))] += 1
        gdb.execute("stepi", to_string=True)
        if int(gdb.parse_and_eval("$cs")) & 3 == 3:
            return n, counts
    raise gdb.GdbError(f"no return to user mode within {LIMIT} instructions")


gdb.execute("hbreak kernel::user::fault::user_fault", to_string=True)
for i in range(FAULTS):
    gdb.execute("continue", to_string=True)
    total, counts = step_one_fault()
    print(f"fault {i + 1}: {total} instructions from user_fault back to user mode")
    for name, n in counts.most_common(12):
        print(f"  {n:6d}  {name}")
gdb.execute("kill")
