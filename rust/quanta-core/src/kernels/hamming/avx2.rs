//! AVX2 variants of the Hamming kernels (nibble-LUT `vpshufb` popcount + `vpsadbw` sums, hardware
//! `popcnt` for tails). Only called through the dispatcher in `mod.rs`.

use std::arch::x86_64::*;

/// Per-byte popcount of `v` via two 16-entry nibble lookups.
#[inline]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn pc_bytes(v: __m256i) -> __m256i {
    let lut = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3,
        3, 4,
    );
    let low = _mm256_set1_epi8(0x0f);
    let lo = _mm256_and_si256(v, low);
    let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi))
}

/// Sum of the 8 bytes of each u64 lane.
#[inline]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn sad(v: __m256i) -> __m256i {
    _mm256_sad_epu8(v, _mm256_setzero_si256())
}

/// Four u64 lanes, each the sum of one code's four u64 partial sums `x0..x3` (in order).
#[inline]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn sum4(x0: __m256i, x1: __m256i, x2: __m256i, x3: __m256i) -> __m256i {
    // y01 = [x0_0+x0_1, x1_0+x1_1 | x0_2+x0_3, x1_2+x1_3]
    let y01 = _mm256_add_epi64(_mm256_unpacklo_epi64(x0, x1), _mm256_unpackhi_epi64(x0, x1));
    let y23 = _mm256_add_epi64(_mm256_unpacklo_epi64(x2, x3), _mm256_unpackhi_epi64(x2, x3));
    _mm256_add_epi64(
        _mm256_permute2x128_si256::<0x20>(y01, y23),
        _mm256_permute2x128_si256::<0x31>(y01, y23),
    )
}

/// Store the low 32 bits of four u64 lanes as four u32.
#[inline]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn store4(p: *mut u32, v: __m256i) {
    let packed = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
    _mm_storeu_si128(p as *mut __m128i, _mm256_castsi256_si128(packed));
}

#[inline]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn ld(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// Per-u64-lane partial sums of one 64-byte code XOR the query halves `qa`, `qb`. Per-byte
/// counts of the two halves add up to <= 16: no overflow before `vpsadbw`.
#[inline]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn pc64(p: *const u8, qa: __m256i, qb: __m256i) -> __m256i {
    sad(_mm256_add_epi8(
        pc_bytes(_mm256_xor_si256(ld(p), qa)),
        pc_bytes(_mm256_xor_si256(ld(p.add(32)), qb)),
    ))
}

/// `cs < 8` bytes at `p`, zero-extended to a little-endian u64.
#[inline]
unsafe fn short_word(p: *const u8, cs: usize) -> u64 {
    let mut w = 0u64;
    for b in 0..cs {
        w |= (*p.add(b) as u64) << (8 * b);
    }
    w
}

/// # Safety
/// The CPU must support AVX2 and POPCNT; `a.len() == b.len()`.
#[target_feature(enable = "avx2,popcnt")]
pub unsafe fn hamming(a: &[u8], b: &[u8]) -> u32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    let mut s = 0u32;
    if n >= 32 {
        let mut acc = _mm256_setzero_si256();
        while i + 32 <= n {
            let x = _mm256_xor_si256(
                _mm256_loadu_si256(pa.add(i) as *const __m256i),
                _mm256_loadu_si256(pb.add(i) as *const __m256i),
            );
            acc = _mm256_add_epi64(acc, sad(pc_bytes(x)));
            i += 32;
        }
        let mut lanes = [0u64; 4];
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc);
        s = (lanes[0] + lanes[1] + lanes[2] + lanes[3]) as u32;
    }
    while i + 8 <= n {
        let x =
            (pa.add(i) as *const u64).read_unaligned() ^ (pb.add(i) as *const u64).read_unaligned();
        s += _popcnt64(x as i64) as u32;
        i += 8;
    }
    while i < n {
        s += _popcnt32((*pa.add(i) ^ *pb.add(i)) as i32) as u32;
        i += 1;
    }
    s
}

/// # Safety
/// The CPU must support AVX2 and POPCNT; `codes.len() == out.len() * q.len()`.
#[target_feature(enable = "avx2,popcnt")]
pub unsafe fn hamming_many(q: &[u8], codes: &[u8], out: &mut [u32]) {
    let cs = q.len();
    let n = out.len();
    let pc = codes.as_ptr();
    let po = out.as_mut_ptr();
    let mut j = 0;
    match cs {
        8 => {
            // 4 codes per vector; each u64 lane is one code
            let qv = _mm256_set1_epi64x((q.as_ptr() as *const u64).read_unaligned() as i64);
            while j + 4 <= n {
                let x = _mm256_xor_si256(ld(pc.add(j * 8)), qv);
                store4(po.add(j), sad(pc_bytes(x)));
                j += 4;
            }
        }
        16 => {
            let qv = _mm256_broadcastsi128_si256(_mm_loadu_si128(q.as_ptr() as *const __m128i));
            while j + 4 <= n {
                let s0 = sad(pc_bytes(_mm256_xor_si256(ld(pc.add(j * 16)), qv)));
                let s1 = sad(pc_bytes(_mm256_xor_si256(ld(pc.add(j * 16 + 32)), qv)));
                // s0 = [c0a, c0b | c1a, c1b], s1 = [c2a, c2b | c3a, c3b] -> [c0, c2 | c1, c3]
                let t =
                    _mm256_add_epi64(_mm256_unpacklo_epi64(s0, s1), _mm256_unpackhi_epi64(s0, s1));
                // low halves of the u64 lanes, in code order: 32-bit lanes 0, 4, 2, 6
                let packed =
                    _mm256_permutevar8x32_epi32(t, _mm256_setr_epi32(0, 4, 2, 6, 0, 4, 2, 6));
                _mm_storeu_si128(po.add(j) as *mut __m128i, _mm256_castsi256_si128(packed));
                j += 4;
            }
        }
        32 => {
            let qv = ld(q.as_ptr());
            while j + 4 <= n {
                let p = pc.add(j * 32);
                let x0 = sad(pc_bytes(_mm256_xor_si256(ld(p), qv)));
                let x1 = sad(pc_bytes(_mm256_xor_si256(ld(p.add(32)), qv)));
                let x2 = sad(pc_bytes(_mm256_xor_si256(ld(p.add(64)), qv)));
                let x3 = sad(pc_bytes(_mm256_xor_si256(ld(p.add(96)), qv)));
                store4(po.add(j), sum4(x0, x1, x2, x3));
                j += 4;
            }
        }
        64 => {
            let (qa, qb) = (ld(q.as_ptr()), ld(q.as_ptr().add(32)));
            while j + 4 <= n {
                let p = pc.add(j * 64);
                store4(
                    po.add(j),
                    sum4(
                        pc64(p, qa, qb),
                        pc64(p.add(64), qa, qb),
                        pc64(p.add(128), qa, qb),
                        pc64(p.add(192), qa, qb),
                    ),
                );
                j += 4;
            }
        }
        1..=7 => {
            // short codes: one zero-extended u64 per code
            let qw = short_word(q.as_ptr(), cs);
            while j < n {
                *po.add(j) = _popcnt64((short_word(pc.add(j * cs), cs) ^ qw) as i64) as u32;
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
/// The CPU must support AVX2; `start <= v.len()`.
#[target_feature(enable = "avx2,popcnt")]
pub unsafe fn find_below_u32(v: &[u32], start: usize, thr: u32) -> usize {
    let n = v.len();
    let p = v.as_ptr();
    let mut j = start;
    if thr == 0 {
        return n;
    }
    // unsigned v < thr  <=>  min(v, thr - 1) == v
    let t = _mm256_set1_epi32((thr - 1) as i32);
    while j + 8 <= n {
        let x = _mm256_loadu_si256(p.add(j) as *const __m256i);
        let le = _mm256_cmpeq_epi32(_mm256_min_epu32(x, t), x);
        let m = _mm256_movemask_ps(_mm256_castsi256_ps(le)) as u32;
        if m != 0 {
            return j + m.trailing_zeros() as usize;
        }
        j += 8;
    }
    while j < n {
        if *p.add(j) < thr {
            return j;
        }
        j += 1;
    }
    n
}
