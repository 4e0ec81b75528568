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
        16 | 32 => {
            // 64 / cs codes per vector: popcount the lanes, sum each code's lanes
            let per = 64 / cs;
            let words = cs / 8;
            let qv = _mm512_broadcast_i32x4(_mm_loadu_si128(q.as_ptr() as *const __m128i));
            let qv = if cs == 32 {
                _mm512_broadcast_i64x4(_mm256_loadu_si256(q.as_ptr() as *const __m256i))
            } else {
                qv
            };
            let mut lanes = [0u64; 8];
            while j + per <= n {
                let x = _mm512_xor_si512(_mm512_loadu_si512(pc.add(j * cs) as *const _), qv);
                _mm512_storeu_si512(lanes.as_mut_ptr() as *mut _, _mm512_popcnt_epi64(x));
                for c in 0..per {
                    let s: u64 = lanes[c * words..(c + 1) * words].iter().sum();
                    *po.add(j + c) = s as u32;
                }
                j += per;
            }
        }
        64 => {
            let qv = _mm512_loadu_si512(q.as_ptr() as *const _);
            while j < n {
                let x = _mm512_xor_si512(_mm512_loadu_si512(pc.add(j * 64) as *const _), qv);
                *po.add(j) = _mm512_reduce_add_epi64(_mm512_popcnt_epi64(x)) as u32;
                j += 1;
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
