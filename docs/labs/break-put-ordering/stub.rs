    // The seed's v6 ordering: decrement first, and release the lock
    // annotation only if the count did not reach 0. The lab: find the
    // interleaving in which this leaks the annotation, then fix it.
    let new = vma.refcnt.fetch_sub(1, Ordering::Release) - 1;
    if new != 0 {
        annotate(vma, LockOp::Release);
        if writer_only(new) {
            // SAFETY: `mm` is alive: it is the caller's own address space,
            // or was pinned by `vma_start_read` step 4.
            let mm = unsafe { &*mm };
            mm.writer_wait.wake_up();
        }
    }
