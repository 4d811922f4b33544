#!/usr/bin/env python3
"""Runs a user program of this OS on the Linux host, translating its syscalls
under ptrace: a way to test the user runtime (`rt`) and the programs' logic
without booting the kernel.

    python3 user/tools/linux-emu.py PROGRAM_ELF [ARGS...]     (UEMU_CPUS=4)

It is an approximation, not a model of the kernel: the fault counters give
Linux's minor-fault count of the whole process as CPU 0's `success`, zero
elsewhere, CPUs are virtual (PIN is recorded, not enforced), mmap and errors follow
Linux (a misaligned hint is rounded, not refused), THREAD_JOIN sees 8-bit
exit codes, and fault reasons are guessed from the signal and /proc/PID/maps.
So the per-CPU counter tests (faults_per_vma*) and the
"unaligned hint" row of mmap_bad_arguments fail here by design.
"""
import ctypes, os, sys, signal, time, struct

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

TRACEME, GETREGS, SETREGS, SYSCALL, SETOPTIONS, GETEVENTMSG, GETSIGINFO = 0, 12, 13, 24, 0x4200, 0x4201, 0x4202
O_TRACESYSGOOD, O_TRACECLONE, O_EXITKILL = 1, 8, 0x100000
WALL = 0x40000000
NCPU = int(os.environ.get("UEMU_CPUS", "4"))

class Regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs".split()]

def pt(req, tid, addr=0, data=0):
    r = libc.ptrace(req, tid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, f"ptrace({req}, {tid}): {os.strerror(e)}")
    return r

def getregs(tid):
    r = Regs(); pt(GETREGS, tid, 0, ctypes.addressof(r)); return r
def setregs(tid, r): pt(SETREGS, tid, 0, ctypes.addressof(r))

def mem_write(tid, addr, data):
    try:
        fd = os.open(f"/proc/{tid}/mem", os.O_RDWR)
        try:
            return os.pwrite(fd, data, addr) == len(data)
        finally:
            os.close(fd)
    except OSError:
        return False

def mem_read(tid, addr, n):
    try:
        fd = os.open(f"/proc/{tid}/mem", os.O_RDONLY)
        try:
            return os.pread(fd, n, addr)
        finally:
            os.close(fd)
    except OSError:
        return None

def perms_at(pid, addr):
    for line in open(f"/proc/{pid}/maps"):
        rng, perms = line.split()[:2]
        lo, hi = (int(x, 16) for x in rng.split("-"))
        if lo <= addr < hi:
            return perms
    return None

USER_END = 0x7fff_ffff_f000
def user_range_ok(buf, size):
    return 0x1000 <= buf and buf + size <= USER_END

EFAULT, EINVAL, ESRCH = 14, 22, 3
def neg(e): return (1 << 64) - e

class T:  # per-thread state
    def __init__(self):
        self.in_sys = False; self.result = None; self.handler = None; self.saved = None
        self.pin = None; self.waiting_join = None; self.setup = None; self.started = True
        self.fault_return_regs = None

def main():
    prog, args = sys.argv[1], " ".join(sys.argv[2:]).encode()
    pid = os.fork()
    if pid == 0:
        libc.ptrace(TRACEME, 0, None, None)
        os.execv(prog, [prog])
    os.waitpid(pid, 0)
    pt(SETOPTIONS, pid, 0, O_TRACESYSGOOD | O_TRACECLONE | O_EXITKILL)
    threads = {pid: T()}
    exited = {}          # tid -> exit code
    joiners = {}         # target tid -> joiner tid
    pending_clone = {}   # parent tid -> (entry, stack, arg)
    child_setup = {}     # child tid -> (entry, stack, arg)
    per_vma = 1
    clock0 = time.monotonic_ns()
    pt(SYSCALL, pid)

    def finish_join(target):
        j = joiners.pop(target, None)
        if j is not None:
            threads[j].result = exited[target] & 0xffffffff
            threads[j].waiting_join = None
            pt(SYSCALL, j)

    def start_child(tid):
        entry, stack, arg = child_setup.pop(tid)
        r = getregs(tid)
        for n, _ in Regs._fields_:
            if n not in ("cs", "ss", "ds", "es", "fs", "gs", "fs_base", "gs_base", "eflags"):
                setattr(r, n, 0)
        r.rip, r.rsp, r.rdi = entry, stack, arg
        setregs(tid, r)
        pt(SYSCALL, tid)

    while True:
        try:
            tid, status = os.waitpid(-1, WALL)
        except ChildProcessError:
            break
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
            threads.pop(tid, None)
            if tid == pid:
                print(f"[uemu] process exited with code {code}", file=sys.stderr)
                sys.exit(code)
            exited[tid] = code
            finish_join(tid)
            continue
        sig = os.WSTOPSIG(status)
        event = status >> 16
        t = threads.setdefault(tid, T())
        if sig == signal.SIGTRAP and event == 3:  # clone event in the parent
            child = ctypes.c_ulong(); pt(GETEVENTMSG, tid, 0, ctypes.addressof(child))
            child_setup[child.value] = pending_clone.pop(tid)
            threads.setdefault(child.value, T())
            if getattr(threads[child.value], "stopped_early", False):
                start_child(child.value)
            pt(SYSCALL, tid)
            continue
        if sig == signal.SIGSTOP and tid != pid and not getattr(t, "configured", False):
            t.configured = True
            if tid in child_setup:
                start_child(tid)
            else:
                t.stopped_early = True
            continue
        if sig == (signal.SIGTRAP | 0x80):
            r = getregs(tid)
            if not t.in_sys:
                t.in_sys = True
                t.entry_args = (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9)
                nr = r.orig_rax
                a1, a2, a3, a4 = r.rdi, r.rsi, r.rdx, r.r10
                t.result = None
                def fake(val):
                    t.result = val; r.orig_rax = 39  # getpid
                if nr == 0: r.orig_rax = 231
                elif nr == 1: r.orig_rax = 60
                elif nr == 2:
                    pending_clone[tid] = (a1, a2, a3)
                    r.orig_rax = 56; r.rdi = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000; r.rsi = a2
                    r.rdx = 0; r.r10 = 0; r.r8 = 0
                elif nr == 3:
                    if a1 in exited:
                        fake(exited.pop(a1) & 0xffffffff)
                    elif a1 not in threads or a1 == tid:
                        fake(neg(ESRCH if a1 != tid else EINVAL))
                    else:
                        r.orig_rax = 39; joiners[a1] = tid; t.waiting_join = a1
                        setregs(tid, r)
                        continue  # stay stopped until the target exits
                elif nr == 4:
                    if not user_range_ok(a1, a2): fake(neg(EFAULT))
                    else: r.orig_rax = 1; r.rdi = 1; r.rsi = a1; r.rdx = a2
                elif nr == 5: r.orig_rax = 9; r.r10 = a4; r.r8 = (1 << 64) - 1; r.r9 = 0
                elif nr == 6: r.orig_rax = 11
                elif nr == 7: r.orig_rax = 10
                elif nr == 8: r.orig_rax = 24
                elif nr == 9:
                    if a1 == (1 << 64) - 1: t.pin = None; fake(0)
                    elif a1 < NCPU: t.pin = a1; fake(0)
                    else: fake(neg(EINVAL))
                elif nr == 10: fake(t.pin if t.pin is not None else tid % NCPU)
                elif nr == 11: fake(NCPU)
                elif nr == 12: fake(time.monotonic_ns() - clock0)
                elif nr == 13:
                    ts = struct.pack("<qq", a1 // 10**9, a1 % 10**9)
                    at = (r.rsp - 1024) & ~15
                    mem_write(tid, at, ts)
                    r.orig_rax = 35; r.rdi = at; r.rsi = 0
                    t.result = 0
                elif nr == 14:
                    n = min(a2, NCPU)
                    if not user_range_ok(a1, 48 * a2): fake(neg(EFAULT))
                    else:
                        p = perms_at(pid, a1)
                        # All of the process's minor faults (Linux's count)
                        # as CPU 0's per-VMA successes; the rest zero.
                        minflt = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[7])
                        data = struct.pack("<6Q", minflt, 0, 0, 0, 0, 0) + bytes(48 * (n - 1))
                        ok = p is not None and "w" in p and mem_write(tid, a1, data)
                        fake(n if ok else neg(EFAULT))
                elif nr == 15:
                    t.handler = (a1, a2) if a1 else None; fake(0)
                elif nr == 16:
                    if t.saved is None: fake(neg(EINVAL))
                    else:
                        s = t.saved; t.saved = None
                        if a1: s.rip = a1
                        t.fault_return_regs = s
                        r.orig_rax = 39
                elif nr == 17:
                    if not user_range_ok(a1, a2): fake(neg(EFAULT))
                    else:
                        data = args[:a2]
                        p = perms_at(pid, a1) if data else "rw"
                        ok = not data or (p is not None and "w" in p and mem_write(tid, a1, data))
                        fake(len(data) if ok else neg(EFAULT))
                elif nr == 18:
                    if a1 > 1: fake(neg(EINVAL))
                    else: fake(per_vma); per_vma = a1
                else:
                    fake(neg(38))
                setregs(tid, r)
            else:
                t.in_sys = False
                if t.fault_return_regs is not None:
                    setregs(tid, t.fault_return_regs); t.fault_return_regs = None
                else:
                    # Our kernel preserves every register but rax, rcx, r11.
                    r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9 = t.entry_args
                    if r.orig_rax == 35 and t.result == 0:
                        r.rax = 0
                    elif t.result is not None:
                        r.rax = t.result
                    setregs(tid, r)
                t.result = None
            pt(SYSCALL, tid)
            continue
        if sig == signal.SIGSEGV:
            info = ctypes.create_string_buffer(128); pt(GETSIGINFO, tid, 0, ctypes.addressof(info))
            code, = struct.unpack_from("<i", info.raw, 8)
            addr, = struct.unpack_from("<Q", info.raw, 16)
            r = getregs(tid)
            perms = perms_at(pid, addr)
            insn = mem_read(tid, r.rip, 2) or b""
            if addr == r.rip and perms is not None: reason = 3
            elif perms is None or code == 1: reason = 1
            elif "r" in perms: reason = 2
            elif insn[:2] == b"\x40\x88" or insn[:1] == b"\x88": reason = 2
            else: reason = 4
            if t.handler is None or t.saved is not None:
                print(f"[uemu] bad fault: tid {tid} addr {addr:#x} rip {r.rip:#x} reason {reason}: killed", file=sys.stderr)
                os.kill(pid, signal.SIGKILL)
                continue
            t.saved = getregs(tid)
            entry, stack = t.handler
            r.rip, r.rsp, r.rdi, r.rsi, r.rdx = entry, stack, addr, reason, t.saved.rip
            setregs(tid, r)
            pt(SYSCALL, tid)
            continue
        pt(SYSCALL, tid, 0, sig)

main()
