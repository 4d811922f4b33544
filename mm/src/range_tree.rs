//! An RCU-safe B-tree of non-overlapping address ranges (work in progress:
//! the API lands in the next commit).
