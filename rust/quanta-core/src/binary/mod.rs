//! Binary codes: sign binarization and bit packing, LSH (random projections) and ITQ encoders.
//!
//! Codecs only (`train` / `encode` over plain slices): storage and search of the codes live in
//! [`crate::index::binary`]. Packing follows faiss: byte `i` holds dimensions `8i .. 8i+7`, least
//! significant bit first; `d % 8 != 0` is padded with zero bits (ALGORITHMS.md §3.1).
//! Bit rule everywhere: `bit = 1` iff the value is `> 0` (zero goes to 0).

pub mod itq;
pub mod linalg;
pub mod lsh;

pub use itq::Itq;
pub use lsh::{Lsh, Projection};

use crate::distance::{ip_tile, QUERY_TILE};
use crate::error::{Error, Result};
use crate::simd::level;
use rayon::prelude::*;

/// Bytes per code for `nbits` bits (`ceil(nbits / 8)`).
pub fn code_size(nbits: usize) -> usize {
    nbits.div_ceil(8)
}

/// Rows per parallel work item of the encoders.
const ENCODE_ROWS: usize = 1024;

/// Sign binarization: `bit_j = x_j > 0`, packed (n × ceil(d/8) bytes). Rejects NaN/Inf.
pub fn sign_encode(x: &[f32], d: usize) -> Result<Vec<u8>> {
    let n = crate::validate::check_batch(x, d, "x")?;
    let cs = code_size(d);
    let mut out = vec![0u8; n * cs];
    out.par_chunks_mut(ENCODE_ROWS * cs.max(1))
        .zip(x.par_chunks(ENCODE_ROWS * d))
        .for_each(|(o, xs)| {
            for (code, row) in o.chunks_exact_mut(cs).zip(xs.chunks_exact(d)) {
                pack_row(row.iter().map(|&v| v > 0.0), code);
            }
        });
    Ok(out)
}

/// Pack a sequence of bits into `code` (LSB first), zero-padding the last byte.
#[inline]
pub fn pack_row(bits: impl Iterator<Item = bool>, code: &mut [u8]) {
    code.fill(0);
    for (j, b) in bits.enumerate() {
        code[j >> 3] |= (b as u8) << (j & 7);
    }
}

/// Unpack codes (rows of `code_size(d)` bytes) to ±1 floats: `2·bit − 1` (faiss
/// `binary_to_real`), `n × d`.
pub fn unpack_pm1(codes: &[u8], d: usize) -> Result<Vec<f32>> {
    let cs = code_size(d);
    if d == 0 {
        return Err(Error::invalid("d must be >= 1"));
    }
    if !codes.len().is_multiple_of(cs) {
        return Err(Error::shape(format!(
            "codes has {} bytes, not a multiple of the code size {cs}",
            codes.len()
        )));
    }
    let n = codes.len() / cs;
    let mut out = vec![0f32; n * d];
    for (row, code) in out.chunks_exact_mut(d).zip(codes.chunks_exact(cs)) {
        for (j, v) in row.iter_mut().enumerate() {
            *v = if (code[j >> 3] >> (j & 7)) & 1 == 1 {
                1.0
            } else {
                -1.0
            };
        }
    }
    Ok(out)
}

/// A linear hash `bit_j = <x, w_j> > offset_j` (`w` is `nbits × d` row-major): the encoding
/// step shared by LSH and ITQ (the mean and thresholds are folded into `offset`).
pub fn linear_sign_encode(
    x: &[f32],
    d: usize,
    w: &[f32],
    offset: &[f32],
    arg: &'static str,
) -> Result<Vec<u8>> {
    let n = crate::validate::check_batch(x, d, arg)?;
    let nbits = offset.len();
    debug_assert_eq!(w.len(), nbits * d);
    let cs = code_size(nbits);
    let lvl = level();
    let mut out = vec![0u8; n * cs];
    out.par_chunks_mut(QUERY_TILE * cs)
        .zip(x.par_chunks(QUERY_TILE * d))
        .for_each(|(o, xs)| {
            let rows = xs.len() / d;
            let mut tile = vec![0f32; rows * nbits];
            ip_tile(lvl, xs, w, d, &mut tile);
            for (code, proj) in o.chunks_exact_mut(cs).zip(tile.chunks_exact(nbits)) {
                pack_row(proj.iter().zip(offset).map(|(&p, &t)| p > t), code);
            }
        });
    Ok(out)
}

/// Column means of an `n × d` matrix, accumulated in f64.
pub(crate) fn column_mean(x: &[f32], d: usize) -> Vec<f64> {
    let n = x.len() / d;
    let mut m = vec![0f64; d];
    for row in x.chunks_exact(d) {
        for (a, &v) in m.iter_mut().zip(row) {
            *a += v as f64;
        }
    }
    m.iter_mut().for_each(|v| *v /= n.max(1) as f64);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_unpack() {
        // d = 10: two bytes, the second padded with zero bits
        let x = [1.0, -1.0, 0.0, 2.0, -0.0, 0.5, -3.0, 1e-30, 4.0, 0.0];
        let c = sign_encode(&x, 10).unwrap();
        assert_eq!(c, vec![0b1010_1001, 0b0000_0001]);
        let u = unpack_pm1(&c, 10).unwrap();
        assert_eq!(
            u,
            vec![1.0, -1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0]
        );
        assert!(sign_encode(&[f32::NAN], 1).is_err());
        assert!(unpack_pm1(&[0u8; 3], 9).is_err());
    }
}
