//! 4-bit PQ fast-scan kernels: in-register table lookups with byte shuffles (`vpshufb`).
//!
//! # Layouts (shared by every variant)
//! - **Packed blocks** (see `crate::fastscan`): a block holds [`BBS`] = 32 vectors and `m2`
//!   (even) sub-quantizers, 16 bytes per sub-quantizer, m-major:
//!   `block[16·m + j] = code[j][m] | code[16 + j][m] << 4` for j in 0..16. Two consecutive
//!   sub-quantizers (one pair) are 32 contiguous bytes: one AVX2 register, whose 128-bit lanes
//!   hold sub-quantizers 2p and 2p+1; an AVX-512 register holds two pairs (four lanes).
//! - **Quantized tables**: one query's table is `lut_stride(m2)` bytes, 16 entries per
//!   sub-quantizer (`lut[16·m + c]`), `m2` rounded up to a multiple of 4 with zero rows, so a
//!   64-byte load of four rows never leaves the table. The tables of several queries are
//!   consecutive.
//! - **Output**: `out[q·nb·32 + b·32 + j]` = accumulated distance of vector `32b + j` of the
//!   run for query `q`, `Σ_m lut_q[16·m + code[m]]` as u16.
//!
//! # No overflow (u16 accumulation)
//! Every table entry is at most 255, so an exact sum over `m2` sub-quantizers is at most
//! `255·m2 ≤ 255·256 = 65280 < 65536` for `m2 ≤` [`MAX_M2`] = 256 (so for every M ≤ 64, with a
//! margin of 4×). The SIMD variants accumulate pairs of bytes as one u16 lane (faiss's trick:
//! `A += r` as u16 and `B += r >> 8`, then `even bytes = A − (B << 8)`); these intermediate
//! lanes do wrap, but all of it is arithmetic modulo 2^16, and the value recovered is the true
//! sum, which is `< 2^16`, hence exact. The per-lane partial sums (each lane only sees every
//! second or fourth sub-quantizer) are smaller still. Scalar and SIMD therefore produce
//! bit-identical results, checked by the parity tests for every tail length.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod scalar;

use crate::simd::SimdLevel;

/// Vectors per packed block.
pub const BBS: usize = 32;
/// Largest (padded, even) number of sub-quantizers: keeps every u16 sum exact (module docs).
pub const MAX_M2: usize = 256;
/// Queries one kernel call scans together (the codes of a block are loaded once for all).
pub const MAX_GROUP: usize = 4;

/// Bytes of one quantized table for `m2` sub-quantizers (rows padded to a multiple of 4).
#[inline]
pub fn lut_stride(m2: usize) -> usize {
    m2.next_multiple_of(4) * 16
}

/// Bytes of one packed block for `m2` sub-quantizers.
#[inline]
pub fn block_bytes(m2: usize) -> usize {
    m2 * 16
}

/// Accumulated u16 distances of every vector of `blocks` (a whole number of blocks) for the
/// `nq` (1..=[`MAX_GROUP`]) tables in `luts`, at the current SIMD level.
#[inline]
pub fn accumulate(luts: &[u8], nq: usize, m2: usize, blocks: &[u8], out: &mut [u16]) {
    accumulate_with(crate::simd::level(), luts, nq, m2, blocks, out)
}

/// [`accumulate`] at a given level (parity tests, benches). Bit-identical at every level.
///
/// Panics on inconsistent sizes (`m2` odd or 0 or above [`MAX_M2`], `nq` outside
/// 1..=[`MAX_GROUP`], `luts.len() != nq·lut_stride(m2)`, `blocks` not whole blocks,
/// `out.len() != nq·32·blocks`): the index layer sizes these buffers itself.
pub fn accumulate_with(
    lvl: SimdLevel,
    luts: &[u8],
    nq: usize,
    m2: usize,
    blocks: &[u8],
    out: &mut [u16],
) {
    assert!(
        m2 > 0 && m2.is_multiple_of(2) && m2 <= MAX_M2,
        "fastscan: m2 = {m2} must be even, in 2..={MAX_M2}"
    );
    assert!((1..=MAX_GROUP).contains(&nq), "fastscan: nq = {nq}");
    assert_eq!(luts.len(), nq * lut_stride(m2), "fastscan: luts size");
    let bb = block_bytes(m2);
    assert!(
        blocks.len().is_multiple_of(bb),
        "fastscan: blocks not whole"
    );
    let nb = blocks.len() / bb;
    assert_eq!(out.len(), nq * nb * BBS, "fastscan: out size");
    match lvl {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 (F/BW/VL) support re-checked through `detected()`; sizes asserted.
        SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx512 => unsafe {
            avx512::accumulate(luts, nq, m2, blocks, out)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above for AVX2.
        SimdLevel::Avx2 | SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx2 => unsafe {
            avx2::accumulate(luts, nq, m2, blocks, out)
        },
        _ => scalar::accumulate(luts, nq, m2, blocks, out),
    }
}

/// Positions `i` with `d[i] <= thr`, written in increasing order to `idx[..count]`; returns
/// the count. `idx.len() >= d.len()`. Same result at every level.
#[inline]
pub fn filter_le_with(lvl: SimdLevel, d: &[u16], thr: u16, idx: &mut [u32]) -> usize {
    assert!(idx.len() >= d.len(), "filter_le: idx too short");
    assert!(d.len() <= u32::MAX as usize, "filter_le: too long");
    match lvl {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 re-checked through `detected()`; `idx.len() >= d.len()` asserted.
        SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx512 => unsafe {
            avx512::filter_le(d, thr, idx)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above for AVX2.
        SimdLevel::Avx2 | SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx2 => unsafe {
            avx2::filter_le(d, thr, idx)
        },
        _ => scalar::filter_le(d, thr, idx),
    }
}

/// Quantize one float table into u8 rows (`crate::fastscan` module docs): entry `(m, j)` is
/// `t[m·stride + j]`, plus `p[m·stride + j]` when given (IVF: the list's precomputed term),
/// plus `key0` in row 0 (IVF: the coarse term), for `j < 16`. Writes rows `0..m` of `lut`
/// (`m = t.len() / stride`; later rows are left as they are) and returns `(a, β)`.
/// Bit-identical at every level: each entry goes through the same float operations, and min /
/// max are exact in any order for finite entries (a signed zero as a row minimum gives the same
/// table and bias either way). Entries must be finite.
///
/// Panics on inconsistent sizes (`stride < 16`, `t.len()` not a multiple of `stride` or above
/// [`MAX_M2`] rows, `p` of another length, `lut` shorter than `16·m`).
pub fn quantize_with(
    lvl: SimdLevel,
    t: &[f32],
    p: Option<&[f32]>,
    key0: f32,
    stride: usize,
    lut: &mut [u8],
) -> (f32, f32) {
    assert!(stride >= 16, "fastscan: table stride {stride} < 16");
    assert!(
        t.len().is_multiple_of(stride) && t.len() / stride <= MAX_M2,
        "fastscan: table size"
    );
    assert!(
        p.is_none_or(|p| p.len() == t.len()),
        "fastscan: table term size"
    );
    assert!(lut.len() >= 16 * (t.len() / stride), "fastscan: lut size");
    match lvl {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 re-checked through `detected()`; sizes asserted above.
        SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx512 => unsafe {
            avx512::quantize(t, p, key0, stride, lut)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above for AVX2.
        SimdLevel::Avx2 | SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx2 => unsafe {
            avx2::quantize(t, p, key0, stride, lut)
        },
        _ => scalar::quantize(t, p, key0, stride, lut),
    }
}
