    // Lab vma-start-read: take the read lock here, in the five steps of
    // docs/labs/vma-start-read/README.md. Helpers: `inc_not_zero_limited`,
    // `annotate`, `vma_refcount_put`, `Mm::mmgrab` and `Mm::mmdrop`.
    let _ = (mm, vma);
    todo!("lab vma-start-read: write vma_start_read")
