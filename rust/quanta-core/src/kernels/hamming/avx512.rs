//! AVX-512 VPOPCNTDQ variants of the Hamming kernels. Only called through `mod.rs`, which checks
//! `avx512vpopcntdq` at runtime in addition to the AVX-512 level (F/BW/DQ/VL).

use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX-512F/BW and VPOPCNTDQ; `a.len() == b.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt")]
pub unsafe fn hamming(a: &[u8], b: &[u8]) -> u32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm512_setzero_si512();
    let mut i = 0;
    while i + 64 <= n {
        let x = _mm512_xor_si512(
            _mm512_loadu_si512(pa.add(i) as *const _),
            _mm512_loadu_si512(pb.add(i) as *const _),
        );
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
        i += 64;
    }
    if i < n {
        // masked tail: bytes past the end read as zero on both sides (XOR 0)
        let m: __mmask64 = (1u64 << (n - i)) - 1;
        let x = _mm512_xor_si512(
            _mm512_maskz_loadu_epi8(m, pa.add(i) as *const i8),
            _mm512_maskz_loadu_epi8(m, pb.add(i) as *const i8),
        );
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
    }
    _mm512_reduce_add_epi64(acc) as u32
}

/// Per-u64-lane popcount of the 64 bytes at `p` XOR `qv`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt")]
unsafe fn pc512(p: *const u8, qv: __m512i) -> __m512i {
    _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(p as *const _), qv))
}

/// Per 128-bit lane `L`: `[a_2L + a_2L+1, b_2L + b_2L+1]` (adjacent u64 lanes summed).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt")]
unsafe fn pairs(a: __m512i, b: __m512i) -> __m512i {
    _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b))
}

/// 128-bit lanes `[a0 + a1, a2 + a3, b0 + b1, b2 + b3]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt")]
unsafe fn halves(a: __m512i, b: __m512i) -> __m512i {
    _mm512_add_epi64(
        _mm512_shuffle_i64x2::<0x88>(a, b),
        _mm512_shuffle_i64x2::<0xDD>(a, b),
    )
}

/// # Safety
/// The CPU must support AVX-512F/BW and VPOPCNTDQ; `codes.len() == out.len() * q.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt")]
pub unsafe fn hamming_many(q: &[u8], codes: &[u8], out: &mut [u32]) {
    let cs = q.len();
    let n = out.len();
    let pc = codes.as_ptr();
    let po = out.as_mut_ptr();
    let mut j = 0;
    match cs {
        8 => {
            // 8 codes per vector, one per u64 lane
            let qv = _mm512_set1_epi64((q.as_ptr() as *const u64).read_unaligned() as i64);
            while j + 8 <= n {
                let x = _mm512_xor_si512(_mm512_loadu_si512(pc.add(j * 8) as *const _), qv);
                let d = _mm512_cvtepi64_epi32(_mm512_popcnt_epi64(x));
                _mm256_storeu_si256(po.add(j) as *mut __m256i, d);
                j += 8;
            }
        }
        16 => {
            // 4 codes per vector, 2 lanes each; 8 codes per step
            let qv = _mm512_broadcast_i32x4(_mm_loadu_si128(q.as_ptr() as *const __m128i));
            let order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
            while j + 8 <= n {
                let p0 = pc512(pc.add(j * 16), qv);
                let p1 = pc512(pc.add(j * 16 + 64), qv);
                // per 128-bit lane L: [code L of p0, code L of p1] -> c0, c4, c1, c5, ...
                let s =
                    _mm512_add_epi64(_mm512_unpacklo_epi64(p0, p1), _mm512_unpackhi_epi64(p0, p1));
                let d = _mm256_permutevar8x32_epi32(_mm512_cvtepi64_epi32(s), order);
                _mm256_storeu_si256(po.add(j) as *mut __m256i, d);
                j += 8;
            }
        }
        32 => {
            // 2 codes per vector, 4 lanes each; 8 codes per step
            let qv = _mm512_broadcast_i64x4(_mm256_loadu_si256(q.as_ptr() as *const __m256i));
            let order = _mm256_setr_epi32(0, 2, 1, 3, 4, 6, 5, 7);
            while j + 8 <= n {
                let p = pc.add(j * 32);
                let y01 = pairs(pc512(p, qv), pc512(p.add(64), qv));
                let y23 = pairs(pc512(p.add(128), qv), pc512(p.add(192), qv));
                // lanes: c0, c2, c1, c3, c4, c6, c5, c7
                let z = halves(y01, y23);
                let d = _mm256_permutevar8x32_epi32(_mm512_cvtepi64_epi32(z), order);
                _mm256_storeu_si256(po.add(j) as *mut __m256i, d);
                j += 8;
            }
        }
        64 => {
            // one code per vector; a transposing reduction of 8 codes ends in code order
            let qv = _mm512_loadu_si512(q.as_ptr() as *const _);
            while j + 8 <= n {
                let p = pc.add(j * 64);
                let a01 = pairs(pc512(p, qv), pc512(p.add(64), qv));
                let a23 = pairs(pc512(p.add(128), qv), pc512(p.add(192), qv));
                let a45 = pairs(pc512(p.add(256), qv), pc512(p.add(320), qv));
                let a67 = pairs(pc512(p.add(384), qv), pc512(p.add(448), qv));
                let z = halves(halves(a01, a23), halves(a45, a67));
                _mm256_storeu_si256(po.add(j) as *mut __m256i, _mm512_cvtepi64_epi32(z));
                j += 8;
            }
        }
        _ => {}
    }
    while j < n {
        *po.add(j) = hamming(q, &codes[j * cs..(j + 1) * cs]);
        j += 1;
    }
}

/// # Safety
/// The CPU must support AVX-512F; `start <= v.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt")]
pub unsafe fn find_below_u32(v: &[u32], start: usize, thr: u32) -> usize {
    let n = v.len();
    let p = v.as_ptr();
    let t = _mm512_set1_epi32(thr as i32);
    let mut j = start;
    while j + 16 <= n {
        let m = _mm512_cmplt_epu32_mask(_mm512_loadu_si512(p.add(j) as *const _), t);
        if m != 0 {
            return j + m.trailing_zeros() as usize;
        }
        j += 16;
    }
    if j < n {
        let mask: __mmask16 = ((1u32 << (n - j)) - 1) as u16;
        let m = _mm512_mask_cmplt_epu32_mask(
            mask,
            _mm512_maskz_loadu_epi32(mask, p.add(j) as *const i32),
            t,
        );
        if m != 0 {
            return j + m.trailing_zeros() as usize;
        }
    }
    n
}
