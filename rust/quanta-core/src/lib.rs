//! quanta-core: vector compression and similarity search, pure Rust.
//!
//! Layout: `simd` (level detection) and `kernels` (SIMD kernels with scalar twins) at the bottom;
//! `distance` (blocked GEMM distances, fused top-k / argmin) and `topk` above them; `kmeans`
//! and the `index` types on top. `threads` owns the rayon pool, `control` cancellation/progress,
//! `io` the versioned file format every index is saved in.
#![warn(missing_docs)]

pub mod binary;
pub mod control;
pub mod distance;
pub mod error;
pub mod fastscan;
pub mod index;
pub mod io;
pub mod ivf;
pub mod kernels;
pub mod kmeans;
pub mod lattice;
pub mod pq;
pub mod rabitq;
pub mod rng;
pub mod rotation;
pub mod simd;
pub mod sq;
pub mod threads;
pub mod topk;
pub mod validate;

pub use control::Control;
pub use distance::Metric;
pub use error::{Error, Result};
pub use simd::SimdLevel;
