//! System calls: decode, validate, act. Every argument is checked; a bad
//! one is an error code (docs/syscalls.md lists them), never a crash.

use abi::errno::{Errno, encode};
use abi::mman::{self, Placement};
use abi::nr;
use core::sync::atomic::Ordering;
use mm::mm::MapAt;

use super::uaccess::{copy_from_user, copy_to_user};
use super::{current_process, restore_frame, thread_exit, thread_state};
use crate::arch::trap::TrapFrame;
use crate::arch::{cpu, percpu};
use crate::{mm_platform, sched, time};

type SysResult = Result<u64, Errno>;

fn is_user_code_addr(a: u64) -> bool {
    (mman::USER_START..mman::USER_END).contains(&a)
}

/// Entry from `syscall_entry`; returns non-zero if the return must use
/// `iretq` (a restored fault context, or a RIP `sysretq` cannot take).
#[unsafe(no_mangle)]
extern "C" fn syscall_dispatch(frame: &mut TrapFrame) -> u64 {
    cpu::enable_interrupts();
    let (n, a0, a1, a2, a3) = (frame.rax, frame.rdi, frame.rsi, frame.rdx, frame.r10);
    let mut iret = false;
    let r = match n {
        nr::EXIT => {
            super::kill_process(current_process(), a0 as i32);
            thread_exit(a0 as i32 as i64)
        }
        nr::THREAD_EXIT => thread_exit(a0 as i32 as i64),
        nr::THREAD_SPAWN => thread_spawn(a0, a1, a2),
        nr::THREAD_JOIN => thread_join(a0),
        nr::WRITE => write(a0, a1),
        nr::MMAP => mmap(a0, a1, a2, a3),
        nr::MUNMAP => munmap(a0, a1),
        nr::MPROTECT => mprotect(a0, a1, a2),
        nr::YIELD => {
            sched::yield_now();
            Ok(0)
        }
        nr::PIN => pin(a0),
        nr::CPU_ID => Ok(percpu::cpu_id() as u64),
        nr::CPU_COUNT => Ok(percpu::online_count() as u64),
        nr::CLOCK_NS => Ok(time::uptime_ns()),
        nr::NANOSLEEP => nanosleep(a0),
        nr::FAULT_COUNTERS => fault_counters(a0, a1),
        nr::SET_FAULT_HANDLER => set_fault_handler(a0, a1),
        nr::FAULT_RETURN => {
            iret = true;
            fault_return(frame, a0)
        }
        nr::GET_ARGS => get_args(a0, a1),
        nr::SET_PER_VMA => set_per_vma(a0),
        _ => Err(Errno::ENOSYS),
    };
    if !(iret && r.is_ok()) {
        frame.rax = encode(r);
    }
    super::check_killed();
    let redirected = super::entry::prepare_return(frame);
    cpu::disable_interrupts();
    crate::lockdep::check_user_return();
    // sysret needs a canonical user RIP (else it faults in ring 0), and
    // restores neither rcx nor r11 of a redirected or restored context.
    u64::from(iret || redirected || !is_user_code_addr(frame.rip))
}

fn thread_spawn(entry: u64, stack_top: u64, arg: u64) -> SysResult {
    if !is_user_code_addr(entry)
        || !is_user_code_addr(stack_top.wrapping_sub(1))
        || !stack_top.is_multiple_of(16)
    {
        return Err(Errno::EINVAL);
    }
    let t = super::spawn_thread(current_process(), entry, stack_top, arg, None)?;
    Ok(t.id)
}

fn thread_join(tid: u64) -> SysResult {
    if tid == sched::current().id {
        return Err(Errno::EINVAL);
    }
    let code = super::join_thread(current_process(), tid)?;
    Ok(abi::thread::exit_code_to_ret(code))
}

/// Is the calling thread's process being killed? (SeqCst: pairs with
/// `kill_process`, which sets it before waking the process's sleepers.)
fn killed() -> bool {
    current_process().killed.load(Ordering::SeqCst)
}

fn nanosleep(ns: u64) -> SysResult {
    // Cut short only by a kill, which the caller never returns from.
    sched::sleep_ns_unless(ns, killed);
    Ok(0)
}

/// The whole buffer `[addr, addr + len)` lies in user space, checked before
/// any copy (Linux's `access_ok`); an empty buffer is fine anywhere.
fn user_buffer(addr: u64, len: u64) -> Result<(), Errno> {
    let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
    if len == 0 || mman::in_user_range(addr, end) {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

fn write(buf: u64, len: u64) -> SysResult {
    user_buffer(buf, len)?;
    let mut done = 0;
    let mut chunk = [0u8; 256];
    while done < len {
        // A long write must not keep a killed process alive.
        if killed() {
            return Err(Errno::EINTR);
        }
        let n = (len - done).min(chunk.len() as u64) as usize;
        // No overflow: `buf + len` was checked above and `done < len`.
        copy_from_user(&mut chunk[..n], buf + done)?;
        crate::console::write_bytes(&chunk[..n]);
        done += n as u64;
    }
    Ok(len)
}

fn map_err(e: mm::mm::MmError) -> Errno {
    Errno(e.errno() as u16)
}

fn mmap(addr: u64, len: u64, prot: u64, flags: u64) -> SysResult {
    let req = mman::check_mmap(addr, len, prot, flags)?;
    // One writable mapping larger than all of memory can never be backed
    // (Linux's heuristic overcommit charges only writable private mappings
    // too: read-only and PROT_NONE ones only reserve addresses).
    if req.prot.contains(mman::Prot::WRITE)
        && req.len > crate::memory::frame::total_count() as u64 * 4096 * 16
    {
        return Err(Errno::ENOMEM);
    }
    let at = match req.placement {
        Placement::Fixed(a) => MapAt::Fixed(a),
        Placement::Anywhere { hint: Some(h) } => MapAt::Hint(h),
        Placement::Anywhere { hint: None } => MapAt::Any,
    };
    current_process()
        .with_mm(|mm| mm.map(at, req.len, req.prot.bits() as u32))
        .ok_or(Errno::ESRCH)?
        .map_err(map_err)
}

fn munmap(addr: u64, len: u64) -> SysResult {
    let (start, end) = mman::check_range(addr, len)?;
    current_process()
        .with_mm(|mm| mm.unmap(start, end - start))
        .ok_or(Errno::ESRCH)?
        .map_err(map_err)?;
    Ok(0)
}

fn mprotect(addr: u64, len: u64, prot: u64) -> SysResult {
    let (start, end) = mman::check_range(addr, len)?;
    let prot = mman::check_prot(prot)?;
    current_process()
        .with_mm(|mm| mm.protect(start, end - start, prot.bits() as u32))
        .ok_or(Errno::ESRCH)?
        .map_err(map_err)?;
    Ok(0)
}

fn pin(cpu: u64) -> SysResult {
    let t = sched::current();
    if cpu == nr::UNPIN {
        t.affinity
            .store(crate::sched::task::NO_CPU, Ordering::Relaxed);
        return Ok(0);
    }
    let c = usize::try_from(cpu).map_err(|_| Errno::EINVAL)?;
    if c >= percpu::MAX_CPUS || !percpu::get(c).online.load(Ordering::Acquire) {
        return Err(Errno::EINVAL);
    }
    t.affinity.store(c, Ordering::Relaxed);
    // Move now: yield until the scheduler has put us there.
    while percpu::cpu_id() != c {
        sched::migrate_current(c);
    }
    Ok(0)
}

fn fault_counters(buf: u64, len: u64) -> SysResult {
    const SIZE: u64 = core::mem::size_of::<abi::FaultCounters>() as u64;
    let bytes = len.checked_mul(SIZE).ok_or(Errno::EFAULT)?;
    user_buffer(buf, bytes)?;
    let n = len.min(percpu::online_count() as u64);
    for cpu in 0..n {
        let c = mm_platform::fault_counters(cpu as usize);
        // SAFETY: FaultCounters is repr(C), six u64: plain bytes.
        let bytes: [u8; SIZE as usize] = unsafe { core::mem::transmute(c) };
        // No overflow: `cpu < len` and `buf + SIZE * len` was checked.
        copy_to_user(buf + SIZE * cpu, &bytes)?;
    }
    Ok(n)
}

fn set_fault_handler(entry: u64, stack_top: u64) -> SysResult {
    let mut ts = thread_state();
    if entry == 0 {
        ts.fault_handler = 0;
        return Ok(0);
    }
    if !is_user_code_addr(entry)
        || !is_user_code_addr(stack_top.wrapping_sub(1))
        || !stack_top.is_multiple_of(16)
    {
        return Err(Errno::EINVAL);
    }
    ts.fault_handler = entry;
    ts.fault_stack = stack_top;
    Ok(0)
}

fn fault_return(frame: &mut TrapFrame, resume_rip: u64) -> SysResult {
    let mut ts = thread_state();
    let saved = ts.saved.as_ref().ok_or(Errno::EINVAL)?;
    let mut restored = TrapFrame::default();
    restore_frame(&mut restored, saved);
    if resume_rip != 0 {
        if !is_user_code_addr(resume_rip) {
            return Err(Errno::EINVAL);
        }
        restored.rip = resume_rip;
    }
    check_restored(&mut restored)?;
    // Only now is the handler done: a refused FAULT_RETURN leaves it able
    // to try again with another `resume_rip`.
    ts.saved = None;
    *frame = restored;
    Ok(0)
}

/// What `FAULT_RETURN` may hand back to ring 3: a canonical user RIP (else
/// `EINVAL`: `iretq` would fault in ring 0), the user selectors, and only
/// user flags with IF on: never IOPL (that would grant `in`/`out`/`cli`) or
/// NT, and not TF (a handler ends single-stepping). The saved context came
/// from the CPU, so today only NT and TF can be there to drop; the check
/// keeps it that way whatever fills the frame.
pub fn check_restored(f: &mut TrapFrame) -> Result<(), Errno> {
    use super::entry::{is_canonical_user, user_rflags};
    use x86_64::registers::rflags::RFlags;
    if !is_canonical_user(f.rip) {
        return Err(Errno::EINVAL);
    }
    f.cs = u64::from(crate::arch::gdt::USER_CS.0);
    f.ss = u64::from(crate::arch::gdt::USER_DS.0);
    f.rflags = user_rflags(f.rflags, RFlags::TRAP_FLAG);
    Ok(())
}

fn get_args(buf: u64, len: u64) -> SysResult {
    user_buffer(buf, len)?;
    let args = current_process().args.as_bytes();
    let n = (args.len() as u64).min(len);
    copy_to_user(buf, &args[..n as usize])?;
    Ok(n)
}

fn set_per_vma(on: u64) -> SysResult {
    if on > 1 {
        return Err(Errno::EINVAL);
    }
    current_process()
        .with_mm(|mm| {
            let old = mm.per_vma_lock();
            mm.set_per_vma_lock(on == 1);
            u64::from(old)
        })
        .ok_or(Errno::ESRCH)
}
