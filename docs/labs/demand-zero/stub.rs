    // Lab demand-zero: make the page at `addr` present with the VMA's rights,
    // holding only what `held` says (docs/labs/demand-zero/README.md). What
    // you will need: `mm.page_table.leaf_alloc`, `leaf_flags(prot)`,
    // `mm.may_take_frame`, `P::alloc_frame`, `P::zero_frame`, `P::free_frame`,
    // `mm.rss_add`, `pte_sufficient` and `ADDR_MASK`.
    let _ = (mm, addr, pte_sufficient, ADDR_MASK, leaf_flags, PAGE_SIZE);
    let _ = (CoreOrdering::Relaxed, PteFlags::PRESENT);
    todo!("lab demand-zero: install a zeroed page")
