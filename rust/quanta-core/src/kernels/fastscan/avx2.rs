//! AVX2 fast scan: one `vpshufb` serves 32 lookups (a pair of sub-quantizers × 16 vectors).
//!
//! Per block and query, four u16×16 accumulators: low nibbles (vectors 0–15) and high nibbles
//! (vectors 16–31), each as the `A += r`, `B += r >> 8` pair of faiss (module docs of
//! `kernels::fastscan` for why the wrapping u16 arithmetic is exact). The codes of a block are
//! loaded and split once for all the queries of the group.

use super::{block_bytes, lut_stride, BBS};
use std::arch::x86_64::*;

/// Queries per pass: 4 accumulators each, plus codes and nibbles, fit the 16 ymm registers
/// for 2 queries (a third would spill).
const GROUP: usize = 2;

/// # Safety
/// The CPU must support AVX2; sizes as checked by `kernels::fastscan::accumulate_with`
/// (`luts.len() == nq·lut_stride(m2)`, whole blocks, `out.len() == nq·32·blocks`, `m2` even).
#[target_feature(enable = "avx2")]
pub unsafe fn accumulate(luts: &[u8], nq: usize, m2: usize, blocks: &[u8], out: &mut [u16]) {
    let stride = lut_stride(m2);
    let per_q = blocks.len() / block_bytes(m2) * BBS;
    let mut q0 = 0;
    while q0 < nq {
        let g = (nq - q0).min(GROUP);
        let l = &luts[q0 * stride..(q0 + g) * stride];
        let o = &mut out[q0 * per_q..(q0 + g) * per_q];
        match g {
            1 => run::<1>(l, m2, blocks, o),
            _ => run::<2>(l, m2, blocks, o),
        }
        q0 += g;
    }
}

#[target_feature(enable = "avx2")]
unsafe fn run<const Q: usize>(luts: &[u8], m2: usize, blocks: &[u8], out: &mut [u16]) {
    let bb = block_bytes(m2);
    let stride = lut_stride(m2);
    let nb = blocks.len() / bb;
    debug_assert!(luts.len() == Q * stride && out.len() == Q * nb * BBS);
    let lp = luts.as_ptr();
    let op = out.as_mut_ptr();
    let mask = _mm256_set1_epi8(0x0F);
    for b in 0..nb {
        let blk = blocks.as_ptr().add(b * bb);
        let mut acc = [[_mm256_setzero_si256(); 4]; Q];
        for p in 0..m2 / 2 {
            let c = _mm256_loadu_si256(blk.add(32 * p) as *const __m256i);
            let lo = _mm256_and_si256(c, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(c), mask);
            for (q, a) in acc.iter_mut().enumerate() {
                let t = _mm256_loadu_si256(lp.add(q * stride + 32 * p) as *const __m256i);
                let rl = _mm256_shuffle_epi8(t, lo);
                let rh = _mm256_shuffle_epi8(t, hi);
                a[0] = _mm256_add_epi16(a[0], rl);
                a[1] = _mm256_add_epi16(a[1], _mm256_srli_epi16::<8>(rl));
                a[2] = _mm256_add_epi16(a[2], rh);
                a[3] = _mm256_add_epi16(a[3], _mm256_srli_epi16::<8>(rh));
            }
        }
        for (q, a) in acc.iter().enumerate() {
            let dst = op.add((q * nb + b) * BBS);
            store16(
                dst,
                fold128(
                    _mm256_castsi256_si128(a[0]),
                    _mm256_extracti128_si256::<1>(a[0]),
                ),
                fold128(
                    _mm256_castsi256_si128(a[1]),
                    _mm256_extracti128_si256::<1>(a[1]),
                ),
            );
            store16(
                dst.add(16),
                fold128(
                    _mm256_castsi256_si128(a[2]),
                    _mm256_extracti128_si256::<1>(a[2]),
                ),
                fold128(
                    _mm256_castsi256_si128(a[3]),
                    _mm256_extracti128_si256::<1>(a[3]),
                ),
            );
        }
    }
}

/// Sum of the two 128-bit lanes (the two sub-quantizers of a pair), as u16.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn fold128(x: __m128i, y: __m128i) -> __m128i {
    _mm_add_epi16(x, y)
}

/// Store 16 distances from an `(A, B)` accumulator pair: `B` holds the odd bytes' sums (vectors
/// 1, 3, …, 15), `A − (B << 8)` the even ones; interleaved back into vector order.
///
/// # Safety
/// `dst` must be valid for 16 u16 writes.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn store16(dst: *mut u16, a: __m128i, b: __m128i) {
    let even = _mm_sub_epi16(a, _mm_slli_epi16::<8>(b));
    _mm_storeu_si128(dst as *mut __m128i, _mm_unpacklo_epi16(even, b));
    _mm_storeu_si128(dst.add(8) as *mut __m128i, _mm_unpackhi_epi16(even, b));
}

/// # Safety
/// The CPU must support AVX2; `idx.len() >= d.len()`.
#[target_feature(enable = "avx2")]
pub unsafe fn filter_le(d: &[u16], thr: u16, idx: &mut [u32]) -> usize {
    let t = _mm256_set1_epi16(thr as i16);
    let mut n = 0;
    let mut i = 0;
    while i + 16 <= d.len() {
        let v = _mm256_loadu_si256(d.as_ptr().add(i) as *const __m256i);
        let le = _mm256_cmpeq_epi16(_mm256_max_epu16(v, t), t);
        let mut mask = _mm256_movemask_epi8(le) as u32;
        while mask != 0 {
            let bit = mask.trailing_zeros();
            idx[n] = (i as u32) + bit / 2;
            n += 1;
            mask &= !(3u32 << bit);
        }
        i += 16;
    }
    n + tail(&d[i..], i, thr, &mut idx[n..])
}

/// The last `< 16` (or 32) positions of a filter, offset by `i0`.
pub(super) fn tail(d: &[u16], i0: usize, thr: u16, idx: &mut [u32]) -> usize {
    let m = super::scalar::filter_le(d, thr, idx);
    for v in &mut idx[..m] {
        *v += i0 as u32;
    }
    m
}
