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
//!
//! # Past 256 sub-quantizers (`256 < m2 ≤` [`MAX_M2_WIDE`])
//! The kernels are the same; what the argument above needs is only that every possible sum
//! is `< 2^16`, i.e. `Σ_m max_c lut[16·m + c] ≤ 65535` (the *row-maximum sum*). For any table
//! that is automatic when `m2 ≤ 256`; for larger `m2` the tables must be built to satisfy it,
//! and [`quantize_with`] does: when `m > 256` rows it computes the row-maximum sum of the table
//! it would write (row `m`'s largest entry is the one of its largest float value, so the sum
//! is known from the row spans before any entry is written) and, only if it exceeds 65535,
//! lowers the scale `a` by `(65535 − m) / sum`, which provably brings it under (each row maximum
//! is `trunc(s_m·a + 0.5)`, within ½ of `s_m·a`), repeating if float rounding ever disagreed.
//! A table whose rows are mostly narrower than the widest (the usual case: at `dsub = 1` a row's
//! span is `|q_i|·(c_max − c_min)`) keeps the full `a = 255 / span`.
//!
//! Why this and not u32 accumulators (measured before choosing, numpy model of these exact
//! tables, recall@10 of the fast-scan ranking against the float-ADC ranking, 200 queries,
//! `M = d`, `dsub = 1`, IP): the row-maximum sum of a 255-level table was under 65535 for
//! every query of 384-d all-MiniLM embeddings and of 384/768-d synthetic embeddings (so the
//! tables, and the results, are those of an exact u32 accumulation: 0.989 / 0.971 / 0.979),
//! and at 1536-d it was over for 92 % of the queries, lowered by 0.84× on average: 0.979
//! instead of 0.987 (recall vs ground truth 0.931 vs 0.929: within noise). A fixed cap of
//! `floor(65535 / m2)` per entry (no adaptation) lost far more: 0.985 / 0.955 / 0.927 at
//! 384 / 768 / 1536. Accumulating in u16 per group of 256 and widening to u32 would be exact
//! at every M, but doubles the distance buffers, needs u32 filters and sinks for every index
//! (the u16 [`crate::fastscan::BlockSink`] is shared with other fast-scan indexes) and buys
//! under 1 % recall at 1536-d only; the adaptive scale costs nothing in the kernels.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod scalar;

use crate::simd::SimdLevel;

/// Vectors per packed block.
pub const BBS: usize = 32;
/// Largest (padded, even) number of sub-quantizers for which every u16 sum of any u8 tables is
/// exact (module docs).
pub const MAX_M2: usize = 256;
/// Largest (padded, even) number of sub-quantizers the kernels accept: past [`MAX_M2`], the
/// tables must have a row-maximum sum `≤ 65535`, as [`quantize_with`] builds them (module docs).
/// 4096 covers `M = d` (4 bits per dimension) up to 4096-d embeddings.
pub const MAX_M2_WIDE: usize = 4096;
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
/// For `m2 >` [`MAX_M2`] the tables' row-maximum sums must be `≤ 65535` (module docs; debug
/// builds check it), as the tables of [`quantize_with`] are.
///
/// Panics on inconsistent sizes (`m2` odd or 0 or above [`MAX_M2_WIDE`], `nq` outside
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
        m2 > 0 && m2.is_multiple_of(2) && m2 <= MAX_M2_WIDE,
        "fastscan: m2 = {m2} must be even, in 2..={MAX_M2_WIDE}"
    );
    assert!((1..=MAX_GROUP).contains(&nq), "fastscan: nq = {nq}");
    assert_eq!(luts.len(), nq * lut_stride(m2), "fastscan: luts size");
    debug_assert!(
        m2 <= MAX_M2
            || luts
                .chunks_exact(lut_stride(m2))
                .all(|l| row_max_sum(l) <= u16::MAX as u32),
        "fastscan: tables whose sums can exceed u16 (m2 = {m2})"
    );
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

/// `Σ_m max_c lut[16·m + c]` of one table: the largest sum a code can reach.
pub fn row_max_sum(lut: &[u8]) -> u32 {
    lut.chunks_exact(16)
        .map(|r| *r.iter().max().expect("16 entries") as u32)
        .sum()
}

/// The scale of a table of more than [`MAX_M2`] rows: `a` (`255 / span`), lowered if needed so
/// that the table's row-maximum sum is `≤ 65535` (module docs). `spans[m]` is row `m`'s
/// `max − min` as the quantizer computed it, whose largest entry is `(s·a + 0.5) as u8` (the
/// same float operations as every entry). Shared by every level, so bit-identical.
pub(crate) fn fit_u16(mut a: f32, spans: &[f32]) -> f32 {
    debug_assert!(spans.len() <= MAX_M2_WIDE);
    loop {
        let sum: u32 = spans.iter().map(|&s| (s * a + 0.5) as u8 as u32).sum();
        if sum <= u16::MAX as u32 {
            return a;
        }
        // Σ trunc(s·a' + ½) ≤ a'·Σ s + m/2 and Σ s·a ≤ sum + m/2: one step suffices exactly
        a *= (u16::MAX as usize - spans.len()) as f32 / sum as f32;
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
/// (`m = t.len() / stride`; later rows are left as they are) and returns `(a, β)`. For
/// `m > 256` rows, `a` may be lowered below `255 / span` so that every sum stays exact in u16
/// (module docs); for `m ≤ 256` the result is exactly as before that extension.
/// Bit-identical at every level: each entry goes through the same float operations, and min /
/// max are exact in any order for finite entries (a signed zero as a row minimum gives the same
/// table and bias either way). Entries must be finite.
///
/// Panics on inconsistent sizes (`stride < 16`, `t.len()` not a multiple of `stride` or above
/// [`MAX_M2_WIDE`] rows, `p` of another length, `lut` shorter than `16·m`).
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
        t.len().is_multiple_of(stride) && t.len() / stride <= MAX_M2_WIDE,
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
