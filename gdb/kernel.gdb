# GDB setup for the kernel, loaded by `make gdb` (scripts/gdb.sh) after
# `file <kernel ELF>` has loaded the symbols. QEMU was started with `-s -S`:
# it listens on localhost:1234 and is stopped before the first instruction.

set pagination off
set confirm off
set disassembly-flavor intel
# The CPU starts in 32-bit mode (PVH entry), but QEMU's x86_64 stub always
# speaks the 64-bit register set; say so before connecting.
set architecture i386:x86-64
target remote localhost:1234

# Software breakpoints are written into memory that the boot code may not
# have mapped yet at that address; hardware breakpoints always work.
define kbreak
  hbreak $arg0
end
document kbreak
Hardware breakpoint on a kernel symbol, e.g. `kbreak kernel_main`.
end

echo \n
echo Connected to QEMU (stopped at reset). Useful commands:\n
printf "  hbreak kernel_main      stop when Rust code starts (or: kbreak NAME)\n"
printf "  continue / c            run\n"
printf "  bt, info registers      backtrace and registers of the current CPU\n"
printf "  info threads, thread N  one thread per CPU\n"
printf "  quit                    ends GDB; make gdb then stops QEMU\n"
echo \n
