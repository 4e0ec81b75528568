//! Lattice quantizers (Spreading Vectors): the spherical Zn codec, the E8 lattice and its
//! shell codes, and [`IndexLattice`], which stores lattice codes and searches them by
//! asymmetric inner product (float query against the decoded code).
//!
//! Codecs own encode/decode over plain slices; the index owns the code storage.

pub mod e8;
pub mod index;
pub mod zn;

pub use e8::{E8Lattice, E8ShellCodec};
pub use index::IndexLattice;
pub use zn::ZnSphereCodec;

use crate::control::Control;
use crate::error::Result;

/// A codec whose decoded vectors are unit-norm: what [`IndexLattice`] can hold.
#[derive(Debug, Clone)]
pub enum LatticeCodec {
    /// Spherical Zn codec.
    Zn(ZnSphereCodec),
    /// E8 shell codec.
    E8Shell(E8ShellCodec),
}

/// Per-thread scratch of [`LatticeCodec::encode_rows`].
#[derive(Debug, Default)]
pub struct LatticeScratch {
    zn: zn::ZnScratch,
    scores: Vec<f32>,
}

impl LatticeCodec {
    /// Dimension.
    pub fn d(&self) -> usize {
        match self {
            LatticeCodec::Zn(c) => c.d(),
            LatticeCodec::E8Shell(c) => c.d(),
        }
    }

    /// Bytes per code.
    pub fn code_size(&self) -> usize {
        match self {
            LatticeCodec::Zn(c) => c.code_size(),
            LatticeCodec::E8Shell(c) => c.code_size(),
        }
    }

    /// Number of distinct codes.
    pub fn nv(&self) -> u128 {
        match self {
            LatticeCodec::Zn(c) => c.nv(),
            LatticeCodec::E8Shell(c) => c.nv(),
        }
    }

    /// `ceil(log2 nv)`.
    pub fn nbits(&self) -> u32 {
        match self {
            LatticeCodec::Zn(c) => c.nbits(),
            LatticeCodec::E8Shell(c) => c.nbits(),
        }
    }

    /// Encode rows (finite, n × d) on the calling thread.
    pub fn encode_rows(&self, x: &[f32], codes: &mut [u8], s: &mut LatticeScratch) {
        match self {
            LatticeCodec::Zn(c) => c.encode_rows(x, codes, &mut s.zn),
            LatticeCodec::E8Shell(c) => c.encode_rows(x, codes, &mut s.scores),
        }
    }

    /// Decode rows on the calling thread (codes are checked against `nv`).
    pub fn decode_rows(&self, codes: &[u8], out: &mut [f32], i0: usize) -> Result<()> {
        match self {
            LatticeCodec::Zn(c) => c.decode_rows(codes, out, i0),
            LatticeCodec::E8Shell(c) => c.decode_rows(codes, out, i0),
        }
    }

    /// Check that every row of `codes` (n × code_size) is a valid code (`< nv`).
    pub fn check_codes(&self, codes: &[u8]) -> Result<()> {
        let cs = self.code_size();
        zn::check_codes_len(codes, cs)?;
        for (i, row) in codes.chunks_exact(cs).enumerate() {
            match self {
                LatticeCodec::Zn(c) => c.read_code(row, i)?,
                LatticeCodec::E8Shell(c) => c.read_code(row, i)?,
            };
        }
        Ok(())
    }

    /// Batched, parallel encode (validates `x`).
    pub fn encode(&self, x: &[f32], ctl: &Control) -> Result<Vec<u8>> {
        match self {
            LatticeCodec::Zn(c) => c.encode(x, ctl),
            LatticeCodec::E8Shell(c) => c.encode(x, ctl),
        }
    }

    /// Batched, parallel decode (validates the codes).
    pub fn decode(&self, codes: &[u8], ctl: &Control) -> Result<Vec<f32>> {
        match self {
            LatticeCodec::Zn(c) => c.decode(codes, ctl),
            LatticeCodec::E8Shell(c) => c.decode(codes, ctl),
        }
    }
}
