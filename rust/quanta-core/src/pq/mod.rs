//! Product quantization (Jégou, Douze, Schmid, TPAMI 2011): the codec. Indexes that store PQ
//! codes live in `crate::index`.
//!
//! # Code layout
//! A vector of dimension `d` is cut into `M` sub-vectors of `dsub = d / M` dimensions; each is
//! replaced by the index of its nearest centroid among `ksub = 2^nbits` (nbits ∈ 1..=8). Codes
//! are **byte-aligned per sub-quantizer**: a code is `M` bytes, byte `m` holds sub-code `m` in
//! its low `nbits` bits and zeros above, so `code_size == M` for every nbits. (faiss packs
//! nbits < 8 codes bit-contiguously; quanta trades that density for one table lookup per byte
//! with no bit extraction. For nbits = 8 the layouts are identical.) 4-bit codes for the SIMD
//! shuffle scan use a separate packed block layout (fast scan).
//!
//! # Centroids
//! `centroids` is `M × ksub × dsub` row-major: sub-quantizer `m`'s centroid `j` starts at
//! `(m·ksub + j)·dsub`, the same layout as faiss `ProductQuantizer::centroids`.

mod codec;
mod opq;
mod train;

pub use codec::{divisors, ProductQuantizer, SearchMode};
pub use opq::{OpqInit, OpqMatrix};
pub use train::{PqTrainParams, PqTrainReport};

#[cfg(test)]
mod tests;
