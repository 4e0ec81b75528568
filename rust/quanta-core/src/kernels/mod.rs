//! SIMD kernels. Each family has a scalar twin (the spec) and per-arch files.

pub mod fastscan;
pub mod hamming;
pub mod l2;
pub mod lattice;
pub mod panel;
pub mod pq;
pub mod sq;
