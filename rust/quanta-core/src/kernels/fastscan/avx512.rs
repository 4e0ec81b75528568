//! AVX-512BW fast scan: one 512-bit `vpshufb` serves 64 lookups (two pairs of sub-quantizers
//! × 16 vectors); the same accumulator scheme as the AVX2 variant with four 128-bit lanes, which
//! are summed at the end of each block. An odd number of pairs ends with a 256-bit load of the
//! codes, zero-extended: its upper lanes index the zero padding rows of the table.

use super::avx2::tail;
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
    let perm = store_perm();
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
            store32(op.add((q * nb + b) * BBS), a, perm);
        }
    }
}

/// Output permutation of [`store32`]: vector `j` of the block from the reduced register
/// `[A_lo, B_lo, A_hi, B_hi]` (u16 lanes of 8): even `j` from `A`, odd `j` from `B`.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
#[inline]
unsafe fn store_perm() -> __m512i {
    let mut idx = [0i16; 32];
    for (j, v) in idx.iter_mut().enumerate() {
        let half = j / 16; // vectors 0-15 (lo nibbles) or 16-31 (hi nibbles)
        let r = j % 16;
        *v = (16 * half + 8 * (r % 2) + r / 2) as i16;
    }
    _mm512_loadu_si512(idx.as_ptr() as *const _)
}

/// Reduce the four accumulators `[A_lo, B_lo, A_hi, B_hi]` of a block (each 4 lanes, one per
/// sub-quantizer residue mod 4) and store the 32 distances in vector order.
///
/// Lane sums by a transposition tree (u16 adds are linear mod 2^16, so summing `A` and `B`
/// before the `A - (B << 8)` recovery gives the same result), then one `vpermw`.
///
/// # Safety
/// `dst` must be valid for 32 u16 writes.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
#[inline]
unsafe fn store32(dst: *mut u16, a: &[__m512i; 4], perm: __m512i) {
    // [a0 l0, a0 l1, a1 l0, a1 l1] + [a0 l2, a0 l3, a1 l2, a1 l3]
    let s01 = _mm512_add_epi16(
        _mm512_shuffle_i32x4::<0b01_00_01_00>(a[0], a[1]),
        _mm512_shuffle_i32x4::<0b11_10_11_10>(a[0], a[1]),
    );
    let s23 = _mm512_add_epi16(
        _mm512_shuffle_i32x4::<0b01_00_01_00>(a[2], a[3]),
        _mm512_shuffle_i32x4::<0b11_10_11_10>(a[2], a[3]),
    );
    // lanes: [sum A_lo, sum B_lo, sum A_hi, sum B_hi]
    let r = _mm512_add_epi16(
        _mm512_shuffle_i32x4::<0b10_00_10_00>(s01, s23),
        _mm512_shuffle_i32x4::<0b11_01_11_01>(s01, s23),
    );
    // even = A - (B << 8) in lanes 0 and 2
    let b_in_a = _mm512_shuffle_i32x4::<0b11_11_01_01>(r, r);
    let even = _mm512_mask_sub_epi16(r, 0x00FF_00FF, r, _mm512_slli_epi16::<8>(b_in_a));
    _mm512_storeu_si512(dst as *mut _, _mm512_permutexvar_epi16(perm, even));
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

/// One row (16 entries) of the float table of [`quantize`].
#[target_feature(enable = "avx512f,avx512bw,avx2")]
#[inline]
unsafe fn row(t: *const f32, p: Option<*const f32>, k: Option<__m512>) -> __m512 {
    let v = _mm512_loadu_ps(t);
    let v = match p {
        Some(p) => _mm512_add_ps(v, _mm512_loadu_ps(p)),
        None => v,
    };
    match k {
        Some(k) => _mm512_add_ps(v, k),
        None => v,
    }
}

/// Lane-wise min (`MIN`) or max.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
#[inline]
unsafe fn op<const MIN: bool>(a: __m512, b: __m512) -> __m512 {
    if MIN {
        _mm512_min_ps(a, b)
    } else {
        _mm512_max_ps(a, b)
    }
}

/// Lane `r` = min (`MIN`) or max of the 16 lanes of `v[r]`: a transposition tree (each level
/// halves the partial values per row and doubles the rows per register), then one permute.
/// Min / max of finite values are exact in any order.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
#[inline]
unsafe fn tree<const MIN: bool>(v: &[__m512; 16]) -> __m512 {
    // rows 2i | 2i+1, 8 partials each
    let mut s = [_mm512_setzero_ps(); 8];
    for (i, si) in s.iter_mut().enumerate() {
        let (x, y) = (v[2 * i], v[2 * i + 1]);
        *si = op::<MIN>(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(x, y),
        );
    }
    // rows 4i .. 4i+3, one 128-bit lane (4 partials) each
    let mut u = [_mm512_setzero_ps(); 4];
    for (i, ui) in u.iter_mut().enumerate() {
        let (x, y) = (s[2 * i], s[2 * i + 1]);
        *ui = op::<MIN>(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y),
        );
    }
    // lane q: rows 8i+q and 8i+4+q, 2 partials each
    let w0 = op::<MIN>(
        _mm512_shuffle_ps::<0b01_00_01_00>(u[0], u[1]),
        _mm512_shuffle_ps::<0b11_10_11_10>(u[0], u[1]),
    );
    let w1 = op::<MIN>(
        _mm512_shuffle_ps::<0b01_00_01_00>(u[2], u[3]),
        _mm512_shuffle_ps::<0b11_10_11_10>(u[2], u[3]),
    );
    // element 4q + j holds row 4j + q
    let z = op::<MIN>(
        _mm512_shuffle_ps::<0b10_00_10_00>(w0, w1),
        _mm512_shuffle_ps::<0b11_01_11_01>(w0, w1),
    );
    let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_permutexvar_ps(idx, z)
}

/// AVX-512 twin of `scalar::quantize` (bit-identical: the same float operations per entry;
/// min / max are exact in any order for finite entries, and signed zeros cannot change the
/// result, see `kernels::fastscan::quantize_with`).
///
/// # Safety
/// The CPU must support AVX-512 F/BW; `stride >= 16`, `t.len()` (and `p`'s length) a multiple
/// of `stride` with `t.len() / stride <= MAX_M2_WIDE`, `lut.len() >= 16·(t.len() / stride)`.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
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

/// [`quantize`] with scratch for the row minima (at least `m` long) and, past `MAX_M2` rows,
/// the row spans (`m` long), as `scalar::quantize_in`.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
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
    let k0 = _mm512_set1_ps(key0);
    let mut span = 0f32;
    // 16 rows at a time: their minima and maxima by a transposition tree
    let mut m0 = 0;
    while m0 + 16 <= m {
        let mut v = [_mm512_setzero_ps(); 16];
        for (r, vr) in v.iter_mut().enumerate() {
            let mm = m0 + r;
            *vr = row(tp.add(mm * stride), at(mm), (mm == 0).then_some(k0));
        }
        let lo = tree::<true>(&v);
        let hi = tree::<false>(&v);
        _mm512_storeu_ps(mins.as_mut_ptr().add(m0), lo);
        let sp = _mm512_sub_ps(hi, lo);
        if let Some(s) = spans.as_deref_mut() {
            // lane r: row m0 + r's hi - lo, the same subtraction as the scalar twin's
            _mm512_storeu_ps(s[m0..m0 + 16].as_mut_ptr(), sp);
        }
        span = span.max(_mm512_reduce_max_ps(sp));
        m0 += 16;
    }
    for (mm, lo_out) in mins.iter_mut().enumerate().take(m).skip(m0) {
        let v = row(tp.add(mm * stride), at(mm), (mm == 0).then_some(k0));
        let lo = _mm512_reduce_min_ps(v);
        let hi = _mm512_reduce_max_ps(v);
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
    let av = _mm512_set1_ps(a);
    let half = _mm512_set1_ps(0.5);
    let mut b = 0f32;
    let lp = lut.as_mut_ptr();
    for (mm, &lo) in mins.iter().enumerate().take(m) {
        b += lo;
        let v = row(tp.add(mm * stride), at(mm), (mm == 0).then_some(k0));
        let x = _mm512_add_ps(
            _mm512_mul_ps(_mm512_sub_ps(v, _mm512_set1_ps(lo)), av),
            half,
        );
        // x >= 0.5 and <= 255.5 + rounding: truncation then unsigned saturation = `as u8`
        let q = _mm512_cvtusepi32_epi8(_mm512_cvttps_epu32(x));
        _mm_storeu_si128(lp.add(16 * mm) as *mut __m128i, q);
    }
    (a, b)
}
