//! AVX2 + FMA variants of the scalar-quantizer kernels (fp16 also needs F16C). Only called
//! through the dispatcher in `mod.rs`. Each loop decodes 8 dimensions into one register and
//! accumulates lane-wise; the last `d mod 8` dimensions are summed as in the scalar twin.

use super::scalar::{bf16_to_f32, f16_to_f32, packed_index};
use crate::kernels::l2::avx2::hsum;
use std::arch::x86_64::*;

/// 8 fields of `bits` bits starting at byte `p` (a group of 8 dimensions fills `bits` bytes),
/// one per 32-bit lane: broadcast the group, shift lane `l` right by `l·bits`, mask.
/// `B` is a constant so the copy of `B` bytes compiles to a load, not a `memcpy` call.
#[inline(always)]
unsafe fn unpack8<const B: usize>(p: *const u8, shifts: __m256i, mask: __m256i) -> __m256i {
    let mut w = [0u8; 4];
    std::ptr::copy_nonoverlapping(p, w.as_mut_ptr(), B);
    let v = _mm256_set1_epi32(u32::from_le_bytes(w) as i32);
    _mm256_and_si256(_mm256_srlv_epi32(v, shifts), mask)
}

/// `lut[idx]` per lane without a gather: entries 0..8 and 8..16 are two in-register
/// permutations; bit 3 of the index, shifted to the sign bit, picks between them.
#[inline(always)]
unsafe fn lookup16(idx: __m256i, lo: __m256, hi: __m256, wide: bool) -> __m256 {
    let a = _mm256_permutevar8x32_ps(lo, idx);
    if !wide {
        return a;
    }
    let b = _mm256_permutevar8x32_ps(hi, idx);
    _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)))
}

#[inline(always)]
unsafe fn pack_consts(bits: usize) -> (__m256i, __m256i) {
    let b = bits as i32;
    (
        _mm256_setr_epi32(0, b, 2 * b, 3 * b, 4 * b, 5 * b, 6 * b, 7 * b),
        _mm256_set1_epi32((1 << bits) - 1),
    )
}

/// # Safety
/// The CPU must support AVX2 and FMA; `s.len() >= qp.len()`, every code holds `qp.len()`
/// bytes, `out.len() <= codes.len() / cs`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn l2_u8(qp: &[f32], s: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    let d = qp.len();
    let full = d / 8 * 8;
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        let mut acc = _mm256_setzero_ps();
        for i in (0..full).step_by(8) {
            let x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                c.as_ptr().add(i) as *const __m128i
            )));
            let t = _mm256_fnmadd_ps(
                _mm256_loadu_ps(s.as_ptr().add(i)),
                x,
                _mm256_loadu_ps(qp.as_ptr().add(i)),
            );
            acc = _mm256_fmadd_ps(t, t, acc);
        }
        let mut tail = 0.0f32;
        for i in full..d {
            let t = qp[i] - s[i] * c[i] as f32;
            tail += t * t;
        }
        *o = hsum(acc) + tail;
    }
}

/// # Safety
/// As [`l2_u8`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_u8(w: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    let d = w.len();
    let full = d / 8 * 8;
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        let mut acc = _mm256_setzero_ps();
        for i in (0..full).step_by(8) {
            let x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                c.as_ptr().add(i) as *const __m128i
            )));
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(w.as_ptr().add(i)), x, acc);
        }
        let mut tail = 0.0f32;
        for i in full..d {
            tail += w[i] * c[i] as f32;
        }
        *o = hsum(acc) + tail;
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `bits` in 2..=4; `s.len() >= qp.len()`; every code holds
/// `ceil(qp.len()·bits / 8)` bytes.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn l2_packed(
    bits: usize,
    qp: &[f32],
    s: &[f32],
    lut: &[f32; 16],
    codes: &[u8],
    cs: usize,
    out: &mut [f32],
) {
    match bits {
        2 => l2_packed_b::<2>(qp, s, lut, codes, cs, out),
        3 => l2_packed_b::<3>(qp, s, lut, codes, cs, out),
        _ => l2_packed_b::<4>(qp, s, lut, codes, cs, out),
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn l2_packed_b<const B: usize>(
    qp: &[f32],
    s: &[f32],
    lut: &[f32; 16],
    codes: &[u8],
    cs: usize,
    out: &mut [f32],
) {
    let bits = B;
    let d = qp.len();
    let full = d / 8 * 8;
    let (shifts, mask) = pack_consts(bits);
    let (lo, hi) = (
        _mm256_loadu_ps(lut.as_ptr()),
        _mm256_loadu_ps(lut.as_ptr().add(8)),
    );
    let wide = bits > 3;
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        let mut acc = _mm256_setzero_ps();
        for (g, i) in (0..full).step_by(8).enumerate() {
            let idx = unpack8::<B>(c.as_ptr().add(g * bits), shifts, mask);
            let x = lookup16(idx, lo, hi, wide);
            let t = _mm256_fnmadd_ps(
                _mm256_loadu_ps(s.as_ptr().add(i)),
                x,
                _mm256_loadu_ps(qp.as_ptr().add(i)),
            );
            acc = _mm256_fmadd_ps(t, t, acc);
        }
        let mut tail = 0.0f32;
        for i in full..d {
            let t = qp[i] - s[i] * lut[packed_index(c, bits, i)];
            tail += t * t;
        }
        *o = hsum(acc) + tail;
    }
}

/// # Safety
/// As [`l2_packed`] (with `w` for `qp`).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_packed(
    bits: usize,
    w: &[f32],
    lut: &[f32; 16],
    codes: &[u8],
    cs: usize,
    out: &mut [f32],
) {
    match bits {
        2 => dot_packed_b::<2>(w, lut, codes, cs, out),
        3 => dot_packed_b::<3>(w, lut, codes, cs, out),
        _ => dot_packed_b::<4>(w, lut, codes, cs, out),
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_packed_b<const B: usize>(
    w: &[f32],
    lut: &[f32; 16],
    codes: &[u8],
    cs: usize,
    out: &mut [f32],
) {
    let bits = B;
    let d = w.len();
    let full = d / 8 * 8;
    let (shifts, mask) = pack_consts(bits);
    let (lo, hi) = (
        _mm256_loadu_ps(lut.as_ptr()),
        _mm256_loadu_ps(lut.as_ptr().add(8)),
    );
    let wide = bits > 3;
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        let mut acc = _mm256_setzero_ps();
        for (g, i) in (0..full).step_by(8).enumerate() {
            let idx = unpack8::<B>(c.as_ptr().add(g * bits), shifts, mask);
            let x = lookup16(idx, lo, hi, wide);
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(w.as_ptr().add(i)), x, acc);
        }
        let mut tail = 0.0f32;
        for i in full..d {
            tail += w[i] * lut[packed_index(c, bits, i)];
        }
        *o = hsum(acc) + tail;
    }
}

#[inline(always)]
unsafe fn load_f16x8(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}

#[inline(always)]
unsafe fn load_bf16x8(p: *const u8) -> __m256 {
    let v = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
    _mm256_castsi256_ps(_mm256_slli_epi32(v, 16))
}

#[inline(always)]
fn half(c: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([c[2 * i], c[2 * i + 1]])
}

/// The four 16-bit float kernels share one body; `$load` decodes 8 halves, `$one` one.
macro_rules! half_kernels {
    ($l2:ident, $dot:ident, $feat:literal, $load:ident, $one:ident) => {
        /// # Safety
        /// The CPU must support the enabled features; every code holds `2·q.len()` bytes.
        #[target_feature(enable = $feat)]
        pub unsafe fn $l2(q: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
            let d = q.len();
            let full = d / 8 * 8;
            for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
                let mut acc = _mm256_setzero_ps();
                for i in (0..full).step_by(8) {
                    let t = _mm256_sub_ps(
                        _mm256_loadu_ps(q.as_ptr().add(i)),
                        $load(c.as_ptr().add(2 * i)),
                    );
                    acc = _mm256_fmadd_ps(t, t, acc);
                }
                let mut tail = 0.0f32;
                for i in full..d {
                    let t = q[i] - $one(half(c, i));
                    tail += t * t;
                }
                *o = hsum(acc) + tail;
            }
        }

        /// # Safety
        /// As the L2 kernel of the same type.
        #[target_feature(enable = $feat)]
        pub unsafe fn $dot(w: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
            let d = w.len();
            let full = d / 8 * 8;
            for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
                let mut acc = _mm256_setzero_ps();
                for i in (0..full).step_by(8) {
                    acc = _mm256_fmadd_ps(
                        _mm256_loadu_ps(w.as_ptr().add(i)),
                        $load(c.as_ptr().add(2 * i)),
                        acc,
                    );
                }
                let mut tail = 0.0f32;
                for i in full..d {
                    tail += w[i] * $one(half(c, i));
                }
                *o = hsum(acc) + tail;
            }
        }
    };
}

half_kernels!(l2_f16, dot_f16, "avx2,fma,f16c", load_f16x8, f16_to_f32);
half_kernels!(l2_bf16, dot_bf16, "avx2,fma", load_bf16x8, bf16_to_f32);
