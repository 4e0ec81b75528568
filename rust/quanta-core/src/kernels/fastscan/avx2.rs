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

/// Horizontal min / max of 8 lanes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hmin(v: __m256) -> f32 {
    let m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_min_ss(m, _mm_shuffle_ps::<1>(m, m)))
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hmax(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)))
}

/// One row (16 entries, two registers) of the float table of [`quantize`].
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn row(t: *const f32, p: Option<*const f32>, k: Option<__m256>) -> (__m256, __m256) {
    let (mut v0, mut v1) = (_mm256_loadu_ps(t), _mm256_loadu_ps(t.add(8)));
    if let Some(p) = p {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(p));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(p.add(8)));
    }
    if let Some(k) = k {
        v0 = _mm256_add_ps(v0, k);
        v1 = _mm256_add_ps(v1, k);
    }
    (v0, v1)
}

/// `(v − lo)·a + 0.5`, truncated to i32.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn scale_trunc(v: __m256, lo: __m256, a: __m256, half: __m256) -> __m256i {
    _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v, lo), a), half))
}

/// AVX2 twin of `scalar::quantize` (bit-identical, as the AVX-512 variant).
///
/// # Safety
/// The CPU must support AVX2; sizes as for `avx512::quantize`.
#[target_feature(enable = "avx2")]
pub unsafe fn quantize(
    t: &[f32],
    p: Option<&[f32]>,
    key0: f32,
    stride: usize,
    lut: &mut [u8],
) -> (f32, f32) {
    let m = t.len() / stride;
    if m <= super::MAX_M2 {
        let mut mins = [0f32; super::MAX_M2];
        quantize_in(t, p, key0, stride, lut, &mut mins, None)
    } else {
        let (mut mins, mut spans) = (vec![0f32; m], vec![0f32; m]);
        quantize_in(t, p, key0, stride, lut, &mut mins, Some(&mut spans))
    }
}

/// [`quantize`] with scratch for the row minima (and, past `MAX_M2` rows, the row spans), as
/// `scalar::quantize_in`.
#[target_feature(enable = "avx2")]
unsafe fn quantize_in(
    t: &[f32],
    p: Option<&[f32]>,
    key0: f32,
    stride: usize,
    lut: &mut [u8],
    mins: &mut [f32],
    mut spans: Option<&mut [f32]>,
) -> (f32, f32) {
    let m = t.len() / stride;
    let tp = t.as_ptr();
    let pp = p.map(|p| p.as_ptr());
    let at = |mm: usize| pp.map(|p| p.add(mm * stride));
    let k0 = _mm256_set1_ps(key0);
    let mut span = 0f32;
    for (mm, lo_out) in mins.iter_mut().enumerate().take(m) {
        let (v0, v1) = row(tp.add(mm * stride), at(mm), (mm == 0).then_some(k0));
        let lo = hmin(_mm256_min_ps(v0, v1));
        let hi = hmax(_mm256_max_ps(v0, v1));
        *lo_out = lo;
        if let Some(s) = spans.as_deref_mut() {
            s[mm] = hi - lo;
        }
        span = span.max(hi - lo);
    }
    let mut a = if span > 0.0 { 255.0 / span } else { 1.0 };
    if let Some(s) = spans {
        a = super::fit_u16(a, s);
    }
    let av = _mm256_set1_ps(a);
    let half = _mm256_set1_ps(0.5);
    let mut b = 0f32;
    let lp = lut.as_mut_ptr();
    for (mm, &lo) in mins.iter().enumerate().take(m) {
        b += lo;
        let (v0, v1) = row(tp.add(mm * stride), at(mm), (mm == 0).then_some(k0));
        let l = _mm256_set1_ps(lo);
        // values in 0..=255 (see the AVX-512 variant): the saturating packs are exact
        let w = _mm256_packus_epi32(scale_trunc(v0, l, av, half), scale_trunc(v1, l, av, half)); // [v0 0-3, v1 0-3 | v0 4-7, v1 4-7]
        let w = _mm256_permute4x64_epi64::<0b11_01_10_00>(w);
        let bytes = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
        _mm_storeu_si128(lp.add(16 * mm) as *mut __m128i, bytes);
    }
    (a, b)
}
