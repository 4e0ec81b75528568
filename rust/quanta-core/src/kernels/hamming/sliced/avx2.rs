//! AVX2 variants of the bit-sliced kernels (one 256-bit register per plane). Only called
//! through `mod.rs`, which checks AVX2 at runtime.

use super::{Plane, LANES};
use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn ld(p: &Plane) -> __m256i {
    _mm256_loadu_si256(p.as_ptr() as *const __m256i)
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn st(p: &mut Plane, v: __m256i) {
    _mm256_storeu_si256(p.as_mut_ptr() as *mut __m256i, v)
}

/// Word `w` (bytes `8w..8w+8`, zero-padded past `cs`) of code `c` of `n`, or 0 past the codes.
#[inline]
unsafe fn word(codes: &[u8], cs: usize, n: usize, c: usize, w: usize) -> i64 {
    if c >= n {
        return 0;
    }
    let p = codes.as_ptr().add(c * cs + 8 * w);
    if 8 * w + 8 <= cs {
        (p as *const u64).read_unaligned() as i64
    } else {
        let mut x = 0u64;
        for b in 0..cs - 8 * w {
            x |= (*p.add(b) as u64) << (8 * b);
        }
        x as i64
    }
}

/// # Safety
/// The CPU must support AVX2; `codes` holds at most [`LANES`] codes of `cs` bytes and
/// `planes.len() == 8 * cs`.
///
/// Per group of 32 codes and 8-byte word: eight registers of 4 codes' words are byte-transposed
/// (one `vpshufb` each, then an 8×8 transpose of 16-bit pairs) so that register `i` holds byte
/// `i` of the 32 codes in code order; `vpmovmskb` then reads one plane slice per bit.
#[target_feature(enable = "avx2")]
pub unsafe fn transpose(codes: &[u8], cs: usize, planes: &mut [Plane]) {
    let n = codes.len() / cs;
    assert!(n <= LANES && planes.len() == 8 * cs);
    let out = planes.as_mut_ptr() as *mut u32;
    // within each 128-bit lane: [a0..a7, b0..b7] -> [a0, b0, a1, b1, ..., a7, b7]
    let pairs = _mm256_setr_epi8(
        0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5,
        13, 6, 14, 7, 15,
    );
    if n.div_ceil(32) < LANES / 32 {
        // lanes of the 32-code groups past the last code are never written below
        planes.fill([0; 4]);
    }
    for g in 0..n.div_ceil(32) {
        let c0 = 32 * g;
        for w in 0..cs.div_ceil(8) {
            // y[k] = words of codes (2k, 2k+1 | 16+2k, 17+2k): after the transpose, byte m of
            // each result register comes from code c0 + m
            let mut y = [_mm256_setzero_si256(); 8];
            for (k, yk) in y.iter_mut().enumerate() {
                let c = c0 + 2 * k;
                *yk = _mm256_shuffle_epi8(
                    _mm256_set_epi64x(
                        word(codes, cs, n, c + 17, w),
                        word(codes, cs, n, c + 16, w),
                        word(codes, cs, n, c + 1, w),
                        word(codes, cs, n, c, w),
                    ),
                    pairs,
                );
            }
            let t0 = _mm256_unpacklo_epi16(y[0], y[1]);
            let t1 = _mm256_unpackhi_epi16(y[0], y[1]);
            let t2 = _mm256_unpacklo_epi16(y[2], y[3]);
            let t3 = _mm256_unpackhi_epi16(y[2], y[3]);
            let t4 = _mm256_unpacklo_epi16(y[4], y[5]);
            let t5 = _mm256_unpackhi_epi16(y[4], y[5]);
            let t6 = _mm256_unpacklo_epi16(y[6], y[7]);
            let t7 = _mm256_unpackhi_epi16(y[6], y[7]);
            let u0 = _mm256_unpacklo_epi32(t0, t2);
            let u1 = _mm256_unpackhi_epi32(t0, t2);
            let u2 = _mm256_unpacklo_epi32(t1, t3);
            let u3 = _mm256_unpackhi_epi32(t1, t3);
            let u4 = _mm256_unpacklo_epi32(t4, t6);
            let u5 = _mm256_unpackhi_epi32(t4, t6);
            let u6 = _mm256_unpacklo_epi32(t5, t7);
            let u7 = _mm256_unpackhi_epi32(t5, t7);
            let z = [
                _mm256_unpacklo_epi64(u0, u4),
                _mm256_unpackhi_epi64(u0, u4),
                _mm256_unpacklo_epi64(u1, u5),
                _mm256_unpackhi_epi64(u1, u5),
                _mm256_unpacklo_epi64(u2, u6),
                _mm256_unpackhi_epi64(u2, u6),
                _mm256_unpacklo_epi64(u3, u7),
                _mm256_unpackhi_epi64(u3, u7),
            ];
            for (i, &zi) in z.iter().enumerate() {
                let byte = 8 * w + i;
                if byte >= cs {
                    break;
                }
                // bit 7 first; doubling each byte moves the next bit into the sign position
                let mut v = zi;
                for s in 0..8 {
                    let p = 8 * byte + 7 - s;
                    *out.add(8 * p + g) = _mm256_movemask_epi8(v) as u32;
                    v = _mm256_add_epi8(v, v);
                }
            }
        }
    }
}

/// Carry-save adder: `(carry, sum)` of three bit vectors.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn csa(a: __m256i, b: __m256i, c: __m256i) -> (__m256i, __m256i) {
    let u = _mm256_xor_si256(a, b);
    (
        _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c)),
        _mm256_xor_si256(u, c),
    )
}

/// # Safety
/// The CPU must support AVX2; every `idx[i] < planes.len()`; `idx.len()` is a multiple of 16
/// (pad with a zero plane) and `out.len() >= 4` holds `idx.len()`.
///
/// Harley–Seal over 16 planes at a time: 15 carry-save adders keep the counter's low four bits
/// in registers, the weight-16 carry is ripple-added into the higher bits in `out`.
#[target_feature(enable = "avx2")]
pub unsafe fn count(planes: &[Plane], idx: &[u32], out: &mut [Plane]) {
    assert!(idx.len().is_multiple_of(16) && out.len() >= 4);
    debug_assert!(super::width(idx.len()) <= out.len());
    let base = planes.as_ptr();
    macro_rules! at {
        ($i:expr) => {
            ld(&*base.add(*idx.get_unchecked($i) as usize))
        };
    }
    let z = _mm256_setzero_si256();
    let (mut ones, mut twos, mut fours, mut eights) = (z, z, z, z);
    for o in out[4..].iter_mut() {
        *o = [0; 4];
    }
    for i in (0..idx.len()).step_by(16) {
        let (ta, o) = csa(ones, at!(i), at!(i + 1));
        let (tb, o) = csa(o, at!(i + 2), at!(i + 3));
        let (fa, t) = csa(twos, ta, tb);
        let (ta, o) = csa(o, at!(i + 4), at!(i + 5));
        let (tb, o) = csa(o, at!(i + 6), at!(i + 7));
        let (fb, t) = csa(t, ta, tb);
        let (ea, f) = csa(fours, fa, fb);
        let (ta, o) = csa(o, at!(i + 8), at!(i + 9));
        let (tb, o) = csa(o, at!(i + 10), at!(i + 11));
        let (fa, t) = csa(t, ta, tb);
        let (ta, o) = csa(o, at!(i + 12), at!(i + 13));
        let (tb, o) = csa(o, at!(i + 14), at!(i + 15));
        let (fb, t) = csa(t, ta, tb);
        let (eb, f) = csa(f, fa, fb);
        let (sixteens, e) = csa(eights, ea, eb);
        ones = o;
        twos = t;
        fours = f;
        eights = e;
        let mut c = sixteens;
        for h in out[4..].iter_mut() {
            let x = ld(h);
            st(h, _mm256_xor_si256(x, c));
            c = _mm256_and_si256(x, c);
        }
    }
    st(&mut out[0], ones);
    st(&mut out[1], twos);
    st(&mut out[2], fours);
    st(&mut out[3], eights);
}

/// Bit `i` of `(x << shift)`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn bit(x: &[Plane], shift: usize, i: usize) -> __m256i {
    if i < shift || i - shift >= x.len() {
        _mm256_setzero_si256()
    } else {
        ld(&x[i - shift])
    }
}

/// # Safety
/// The CPU must support AVX2.
///
/// Lanes where `(x << xs) + k < (y << ys)` over `w` bits (see the scalar twin). One pass from
/// the least significant bit: the constant is added with a ripple carry, and the comparison is
/// decided by the highest differing bit (`lt = (!a & b) | (!(a ^ b) & lt)`).
#[target_feature(enable = "avx2")]
pub unsafe fn less(x: &[Plane], xs: usize, y: &[Plane], ys: usize, k: i64, w: usize) -> Plane {
    let (kx, ky) = if k >= 0 {
        (k as u64, 0)
    } else {
        (0, k.unsigned_abs())
    };
    let ones = _mm256_set1_epi8(-1);
    let mut cx = _mm256_setzero_si256();
    let mut cy = _mm256_setzero_si256();
    let mut lt = _mm256_setzero_si256();
    for i in 0..w {
        let xi = bit(x, xs, i);
        let yi = bit(y, ys, i);
        let (a, b);
        if i < 64 && kx >> i & 1 == 1 {
            a = _mm256_xor_si256(_mm256_xor_si256(xi, cx), ones);
            cx = _mm256_or_si256(xi, cx);
        } else {
            a = _mm256_xor_si256(xi, cx);
            cx = _mm256_and_si256(xi, cx);
        }
        if i < 64 && ky >> i & 1 == 1 {
            b = _mm256_xor_si256(_mm256_xor_si256(yi, cy), ones);
            cy = _mm256_or_si256(yi, cy);
        } else {
            b = _mm256_xor_si256(yi, cy);
            cy = _mm256_and_si256(yi, cy);
        }
        lt = _mm256_or_si256(
            _mm256_andnot_si256(a, b),
            _mm256_andnot_si256(_mm256_xor_si256(a, b), lt),
        );
    }
    let mut m = [0u64; 4];
    st(&mut m, lt);
    m
}
