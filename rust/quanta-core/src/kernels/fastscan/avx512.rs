//! AVX-512BW fast scan: one 512-bit `vpshufb` serves 64 lookups (two pairs of sub-quantizers
//! × 16 vectors); the same accumulator scheme as the AVX2 variant with four 128-bit lanes, which
//! are summed at the end of each block. An odd number of pairs ends with a 256-bit load of the
//! codes, zero-extended: its upper lanes index the zero padding rows of the table.

use super::avx2::{store16, tail};
use super::{block_bytes, lut_stride, BBS};
use std::arch::x86_64::*;

/// Queries per pass: 4 × 4 accumulators of 32 zmm registers.
const GROUP: usize = 4;

/// # Safety
/// The CPU must support AVX-512 F/BW (and AVX2); sizes as checked by
/// `kernels::fastscan::accumulate_with`.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
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
            2 => run::<2>(l, m2, blocks, o),
            3 => run::<3>(l, m2, blocks, o),
            _ => run::<4>(l, m2, blocks, o),
        }
        q0 += g;
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx2")]
unsafe fn run<const Q: usize>(luts: &[u8], m2: usize, blocks: &[u8], out: &mut [u16]) {
    let bb = block_bytes(m2);
    let stride = lut_stride(m2);
    let nb = blocks.len() / bb;
    debug_assert!(luts.len() == Q * stride && out.len() == Q * nb * BBS);
    let lp = luts.as_ptr();
    let op = out.as_mut_ptr();
    let mask = _mm512_set1_epi8(0x0F);
    let quads = m2 / 4;
    let half = !m2.is_multiple_of(4);
    for b in 0..nb {
        let blk = blocks.as_ptr().add(b * bb);
        let mut acc = [[_mm512_setzero_si512(); 4]; Q];
        for g in 0..quads + half as usize {
            let c = if g < quads {
                _mm512_loadu_si512(blk.add(64 * g) as *const _)
            } else {
                _mm512_zextsi256_si512(_mm256_loadu_si256(blk.add(64 * g) as *const __m256i))
            };
            let lo = _mm512_and_si512(c, mask);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(c), mask);
            for (q, a) in acc.iter_mut().enumerate() {
                // rows past m2 are zero padding inside the table (lut_stride)
                let t = _mm512_loadu_si512(lp.add(q * stride + 64 * g) as *const _);
                let rl = _mm512_shuffle_epi8(t, lo);
                let rh = _mm512_shuffle_epi8(t, hi);
                a[0] = _mm512_add_epi16(a[0], rl);
                a[1] = _mm512_add_epi16(a[1], _mm512_srli_epi16::<8>(rl));
                a[2] = _mm512_add_epi16(a[2], rh);
                a[3] = _mm512_add_epi16(a[3], _mm512_srli_epi16::<8>(rh));
            }
        }
        for (q, a) in acc.iter().enumerate() {
            let dst = op.add((q * nb + b) * BBS);
            store16(dst, lanes(a[0]), lanes(a[1]));
            store16(dst.add(16), lanes(a[2]), lanes(a[3]));
        }
    }
}

/// Sum of the four 128-bit lanes, as u16 (linear mod 2^16, so it commutes with the
/// `A − (B << 8)` recovery done afterwards).
#[target_feature(enable = "avx512f,avx512bw,avx2")]
#[inline]
unsafe fn lanes(x: __m512i) -> __m128i {
    let y = _mm256_add_epi16(_mm512_castsi512_si256(x), _mm512_extracti64x4_epi64::<1>(x));
    _mm_add_epi16(_mm256_castsi256_si128(y), _mm256_extracti128_si256::<1>(y))
}

/// # Safety
/// The CPU must support AVX-512 F/BW; `idx.len() >= d.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
pub unsafe fn filter_le(d: &[u16], thr: u16, idx: &mut [u32]) -> usize {
    let t = _mm512_set1_epi16(thr as i16);
    let mut n = 0;
    let mut i = 0;
    while i + 32 <= d.len() {
        let v = _mm512_loadu_si512(d.as_ptr().add(i) as *const _);
        let mut mask: u32 = _mm512_cmple_epu16_mask(v, t);
        while mask != 0 {
            idx[n] = i as u32 + mask.trailing_zeros();
            n += 1;
            mask &= mask - 1;
        }
        i += 32;
    }
    n + tail(&d[i..], i, thr, &mut idx[n..])
}
