//! AVX-512F variants of the scalar-quantizer kernels. Only called through `mod.rs`.
//!
//! 16 dimensions per step; the last `d mod 16` are summed one by one (codes are not float
//! arrays, so a masked load of a partial group would need per-type masks for little gain at the
//! dimensions quantizers are used at). Results differ from the scalar twin by summation order
//! and FMA rounding only.

use super::scalar::{bf16_to_f32, f16_to_f32, packed_index};
use std::arch::x86_64::*;

/// 16 fields of `bits` bits from the `2·bits` bytes at `p`: lanes 0..8 from the first `bits`
/// bytes, 8..16 from the next, each lane shifted right by `(l mod 8)·bits` and masked.
/// `B` is a constant so the copy compiles to loads, not a `memcpy` call.
#[inline(always)]
unsafe fn unpack16<const B: usize>(p: *const u8, shifts: __m512i, mask: __m512i) -> __m512i {
    let mut w = [0u8; 8];
    std::ptr::copy_nonoverlapping(p, w.as_mut_ptr(), 2 * B);
    let w = u64::from_le_bytes(w);
    let lo = (w & ((1u64 << (8 * B)) - 1)) as u32;
    let hi = (w >> (8 * B)) as u32;
    let v = _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_set1_epi32(lo as i32)),
        _mm256_set1_epi32(hi as i32),
    );
    _mm512_and_si512(_mm512_srlv_epi32(v, shifts), mask)
}

#[inline(always)]
unsafe fn pack_consts(bits: usize) -> (__m512i, __m512i) {
    let b = bits as i32;
    (
        _mm512_setr_epi32(
            0,
            b,
            2 * b,
            3 * b,
            4 * b,
            5 * b,
            6 * b,
            7 * b,
            0,
            b,
            2 * b,
            3 * b,
            4 * b,
            5 * b,
            6 * b,
            7 * b,
        ),
        _mm512_set1_epi32((1 << bits) - 1),
    )
}

#[inline(always)]
unsafe fn load_u8x16(p: *const u8) -> __m512 {
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p as *const __m128i)))
}

/// # Safety
/// The CPU must support AVX-512F; `s.len() >= qp.len()`, every code holds `qp.len()` bytes.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn l2_u8(qp: &[f32], s: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    let d = qp.len();
    let full = d / 16 * 16;
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        let mut acc = _mm512_setzero_ps();
        for i in (0..full).step_by(16) {
            let x = load_u8x16(c.as_ptr().add(i));
            let t = _mm512_fnmadd_ps(
                _mm512_loadu_ps(s.as_ptr().add(i)),
                x,
                _mm512_loadu_ps(qp.as_ptr().add(i)),
            );
            acc = _mm512_fmadd_ps(t, t, acc);
        }
        let mut tail = 0.0f32;
        for i in full..d {
            let t = qp[i] - s[i] * c[i] as f32;
            tail += t * t;
        }
        *o = _mm512_reduce_add_ps(acc) + tail;
    }
}

/// # Safety
/// As [`l2_u8`].
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn dot_u8(w: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    let d = w.len();
    let full = d / 16 * 16;
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        let mut acc = _mm512_setzero_ps();
        for i in (0..full).step_by(16) {
            let x = load_u8x16(c.as_ptr().add(i));
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(w.as_ptr().add(i)), x, acc);
        }
        let mut tail = 0.0f32;
        for i in full..d {
            tail += w[i] * c[i] as f32;
        }
        *o = _mm512_reduce_add_ps(acc) + tail;
    }
}

/// # Safety
/// The CPU must support AVX-512F; `bits` in 2..=4; `s.len() >= qp.len()`; every code holds
/// `ceil(qp.len()·bits / 8)` bytes.
#[target_feature(enable = "avx512f,avx2,fma")]
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

#[target_feature(enable = "avx512f,avx2,fma")]
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
    let full = d / 16 * 16;
    let (shifts, mask) = pack_consts(bits);
    // a 16-entry table is one register: the lookup is one in-register permutation
    let table = _mm512_loadu_ps(lut.as_ptr());
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        let mut acc = _mm512_setzero_ps();
        for (g, i) in (0..full).step_by(16).enumerate() {
            let idx = unpack16::<B>(c.as_ptr().add(g * 2 * bits), shifts, mask);
            let x = _mm512_permutexvar_ps(idx, table);
            let t = _mm512_fnmadd_ps(
                _mm512_loadu_ps(s.as_ptr().add(i)),
                x,
                _mm512_loadu_ps(qp.as_ptr().add(i)),
            );
            acc = _mm512_fmadd_ps(t, t, acc);
        }
        let mut tail = 0.0f32;
        for i in full..d {
            let t = qp[i] - s[i] * lut[packed_index(c, bits, i)];
            tail += t * t;
        }
        *o = _mm512_reduce_add_ps(acc) + tail;
    }
}

/// # Safety
/// As [`l2_packed`] (with `w` for `qp`).
#[target_feature(enable = "avx512f,avx2,fma")]
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

#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dot_packed_b<const B: usize>(
    w: &[f32],
    lut: &[f32; 16],
    codes: &[u8],
    cs: usize,
    out: &mut [f32],
) {
    let bits = B;
    let d = w.len();
    let full = d / 16 * 16;
    let (shifts, mask) = pack_consts(bits);
    let table = _mm512_loadu_ps(lut.as_ptr());
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        let mut acc = _mm512_setzero_ps();
        for (g, i) in (0..full).step_by(16).enumerate() {
            let idx = unpack16::<B>(c.as_ptr().add(g * 2 * bits), shifts, mask);
            let x = _mm512_permutexvar_ps(idx, table);
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(w.as_ptr().add(i)), x, acc);
        }
        let mut tail = 0.0f32;
        for i in full..d {
            tail += w[i] * lut[packed_index(c, bits, i)];
        }
        *o = _mm512_reduce_add_ps(acc) + tail;
    }
}

#[inline(always)]
unsafe fn load_f16x16(p: *const u8) -> __m512 {
    _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
}

#[inline(always)]
unsafe fn load_bf16x16(p: *const u8) -> __m512 {
    let v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i));
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v))
}

#[inline(always)]
fn half(c: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([c[2 * i], c[2 * i + 1]])
}

/// The four 16-bit float kernels share one body; `$load` decodes 16 halves, `$one` one.
macro_rules! half_kernels {
    ($l2:ident, $dot:ident, $load:ident, $one:ident) => {
        /// # Safety
        /// The CPU must support AVX-512F; every code holds `2·q.len()` bytes.
        #[target_feature(enable = "avx512f,avx2,fma")]
        pub unsafe fn $l2(q: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
            let d = q.len();
            let full = d / 16 * 16;
            for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
                let mut acc = _mm512_setzero_ps();
                for i in (0..full).step_by(16) {
                    let t = _mm512_sub_ps(
                        _mm512_loadu_ps(q.as_ptr().add(i)),
                        $load(c.as_ptr().add(2 * i)),
                    );
                    acc = _mm512_fmadd_ps(t, t, acc);
                }
                let mut tail = 0.0f32;
                for i in full..d {
                    let t = q[i] - $one(half(c, i));
                    tail += t * t;
                }
                *o = _mm512_reduce_add_ps(acc) + tail;
            }
        }

        /// # Safety
        /// As the L2 kernel of the same type.
        #[target_feature(enable = "avx512f,avx2,fma")]
        pub unsafe fn $dot(w: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
            let d = w.len();
            let full = d / 16 * 16;
            for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
                let mut acc = _mm512_setzero_ps();
                for i in (0..full).step_by(16) {
                    acc = _mm512_fmadd_ps(
                        _mm512_loadu_ps(w.as_ptr().add(i)),
                        $load(c.as_ptr().add(2 * i)),
                        acc,
                    );
                }
                let mut tail = 0.0f32;
                for i in full..d {
                    tail += w[i] * $one(half(c, i));
                }
                *o = _mm512_reduce_add_ps(acc) + tail;
            }
        }
    };
}

half_kernels!(l2_f16, dot_f16, load_f16x16, f16_to_f32);
half_kernels!(l2_bf16, dot_bf16, load_bf16x16, bf16_to_f32);
