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

# The kernel's id of the CPU of GDB's current thread (GDB thread N is QEMU's
# CPU#N-1). Read from the per-CPU area GS points at: valid in kernel code,
# after `isr_common` or `syscall_entry` has done its swapgs.
define kcpu
  p (*($gs_base as *const kernel::arch::percpu::PerCpu)).cpu_id
end
document kcpu
The kernel's CPU id of the current GDB thread (in kernel code).
end

# A VMA's lock and range, from its address (e.g. `vma vma` inside
# vma_start_read, or a pointer printed by a backtrace).
define vma
  set $v = ($arg0 as *const mm::vma::Vma<kernel::mm_platform::Kernel>)
  set $refcnt = (*$v).refcnt.v.value.0
  set $lock_seq = (*$v).lock_seq.v.value.0
  set $start = (*$v).start.v.value.0
  set $end = (*$v).end.v.value.0
  set $prot = (*$v).prot.v.value.0
  set $anon = (*$v).anon_ready.v.value.0
  printf "refcnt %#x  lock_seq %u  range %#lx..%#lx  prot %u  anon_ready %u\n", $refcnt, $lock_seq, $start, $end, $prot, $anon
end
document vma
Print a VMA's refcnt, lock_seq, range, protection and anon_ready: `vma ADDR`.
end

# An address space's mm_lock_seq (odd while the mmap write lock is held).
define mmseq
  p (*($arg0 as *const mm::mm::Mm<kernel::mm_platform::Kernel>)).lock_seq.seq.v.value.0
end
document mmseq
Print an address space's lock_seq from its address: `mmseq mm`.
end

echo \n
echo Connected to QEMU (stopped at reset). Useful commands:\n
printf "  hbreak kernel_main      stop when Rust code starts (or: kbreak NAME)\n"
printf "  continue / c            run\n"
printf "  bt, info registers      backtrace and registers of the current CPU\n"
printf "  info threads, thread N  one thread per CPU\n"
printf "  kcpu, vma ADDR, mmseq ADDR   kernel CPU id, a VMA's lock, an mm's lock_seq\n"
printf "  quit                    ends GDB; make gdb then stops QEMU\n"
echo \n
