//! Code shared by several programs (the programs themselves are the files in
//! `src/bin/`): per-CPU counter snapshots and the "fault storm" workload that
//! the demo and the per-VMA tests run, and the fuzzer's random numbers and
//! argument pools.
#![no_std]

extern crate alloc;

pub mod counters;
pub mod fuzz;
pub mod storm;
