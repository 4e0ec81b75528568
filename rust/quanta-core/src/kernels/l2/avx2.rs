//! AVX2 + FMA variants of the L2/IP kernels. Only called through the dispatcher in `mod.rs`.

use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA; `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn l2sqr(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        let t = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
        acc = _mm256_fmadd_ps(t, t, acc);
        i += 8;
    }
    let mut tail = 0.0f32;
    while i < n {
        let t = *pa.add(i) - *pb.add(i);
        tail += t * t;
        i += 1;
    }
    hsum(acc) + tail
}

/// # Safety
/// The CPU must support AVX2 and FMA; `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc);
        i += 8;
    }
    let mut tail = 0.0f32;
    while i < n {
        tail += *pa.add(i) * *pb.add(i);
        i += 1;
    }
    hsum(acc) + tail
}

/// Same association as the scalar `reduce8`: (l0+l4)+(l2+l6) + (l1+l5)+(l3+l7).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi); // l0+l4, l1+l5, l2+l6, l3+l7
    let sh = _mm_movehl_ps(s, s); // l2+l6, l3+l7
    let s2 = _mm_add_ps(s, sh); // (l0+l4)+(l2+l6), (l1+l5)+(l3+l7)
    let s3 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    _mm_cvtss_f32(s3)
}

/// # Safety
/// The CPU must support AVX2 and FMA; `base.len() == ip.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn argmin_shifted(base: &[f32], ip: &[f32]) -> (usize, f32) {
    let n = base.len();
    let (pb, pi) = (base.as_ptr(), ip.as_ptr());
    let mut best = f32::INFINITY;
    let mut arg = 0usize;
    let mut i = 0;
    if n >= 8 {
        let two = _mm256_set1_ps(2.0);
        let mut vbest = _mm256_set1_ps(f32::INFINITY);
        let mut vidx = _mm256_setzero_si256();
        let mut cur = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let step = _mm256_set1_epi32(8);
        while i + 8 <= n {
            let v = _mm256_fnmadd_ps(two, _mm256_loadu_ps(pi.add(i)), _mm256_loadu_ps(pb.add(i)));
            // strict less keeps the first occurrence per lane (tie rule)
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(v, vbest);
            vbest = _mm256_blendv_ps(vbest, v, lt);
            vidx = _mm256_blendv_epi8(vidx, cur, _mm256_castps_si256(lt));
            cur = _mm256_add_epi32(cur, step);
            i += 8;
        }
        let mut bv = [0f32; 8];
        let mut bi = [0i32; 8];
        _mm256_storeu_ps(bv.as_mut_ptr(), vbest);
        _mm256_storeu_si256(bi.as_mut_ptr() as *mut __m256i, vidx);
        for l in 0..8 {
            let (v, j) = (bv[l], bi[l] as usize);
            if v < best || (v == best && j < arg) {
                best = v;
                arg = j;
            }
        }
    }
    while i < n {
        let v = *pb.add(i) - 2.0 * *pi.add(i);
        if v < best {
            best = v;
            arg = i;
        }
        i += 1;
    }
    (arg, best)
}

/// # Safety
/// The CPU must support AVX2 and FMA; `base.len() == ip.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn argmin2_shifted(base: &[f32], ip: &[f32]) -> (usize, f32, f32) {
    let n = base.len();
    let (pb, pi) = (base.as_ptr(), ip.as_ptr());
    let (mut best, mut second, mut arg) = (f32::INFINITY, f32::INFINITY, 0usize);
    let mut i = 0;
    if n >= 8 {
        let two = _mm256_set1_ps(2.0);
        let mut vbest = _mm256_set1_ps(f32::INFINITY);
        let mut vsec = _mm256_set1_ps(f32::INFINITY);
        let mut vidx = _mm256_setzero_si256();
        let mut cur = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let step = _mm256_set1_epi32(8);
        while i + 8 <= n {
            let v = _mm256_fnmadd_ps(two, _mm256_loadu_ps(pi.add(i)), _mm256_loadu_ps(pb.add(i)));
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(v, vbest);
            // per lane: the new second is min(second, max(best, v)) — the old best when v wins
            vsec = _mm256_min_ps(vsec, _mm256_max_ps(vbest, v));
            vbest = _mm256_blendv_ps(vbest, v, lt);
            vidx = _mm256_blendv_epi8(vidx, cur, _mm256_castps_si256(lt));
            cur = _mm256_add_epi32(cur, step);
            i += 8;
        }
        let mut bv = [0f32; 8];
        let mut sv = [0f32; 8];
        let mut bi = [0i32; 8];
        _mm256_storeu_ps(bv.as_mut_ptr(), vbest);
        _mm256_storeu_ps(sv.as_mut_ptr(), vsec);
        _mm256_storeu_si256(bi.as_mut_ptr() as *mut __m256i, vidx);
        let mut lane = 0;
        for l in 0..8 {
            let (v, j) = (bv[l], bi[l] as usize);
            if v < best || (v == best && j < arg) {
                best = v;
                arg = j;
                lane = l;
            }
        }
        for l in 0..8 {
            second = second.min(sv[l]);
            if l != lane {
                second = second.min(bv[l]);
            }
        }
    }
    while i < n {
        let v = *pb.add(i) - 2.0 * *pi.add(i);
        if v < best {
            second = best;
            best = v;
            arg = i;
        } else if v < second {
            second = v;
        }
        i += 1;
    }
    (arg, best, second)
}

/// # Safety
/// The CPU must support AVX2; `start <= v.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn find_below(v: &[f32], start: usize, thr: f32) -> usize {
    let n = v.len();
    let p = v.as_ptr();
    let vt = _mm256_set1_ps(thr);
    let mut j = start;
    while j + 8 <= n {
        let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_loadu_ps(p.add(j)), vt));
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

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn first_non_finite(x: &[f32]) -> Option<usize> {
    // exponent bits all ones <=> NaN or Inf
    let n = x.len();
    let p = x.as_ptr() as *const i32;
    let mask = _mm256_set1_epi32(0x7f80_0000);
    let mut i = 0;
    while i + 8 <= n {
        let v = _mm256_and_si256(_mm256_loadu_si256(p.add(i) as *const __m256i), mask);
        let eq = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(v, mask)));
        if eq != 0 {
            return Some(i + eq.trailing_zeros() as usize);
        }
        i += 8;
    }
    (i..n).find(|&j| !x[j].is_finite())
}

/// # Safety
/// The CPU must support AVX2 and FMA; `base.len() == ip.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn collect_le_shifted(
    base: &[f32],
    ip: &[f32],
    thr: f32,
    id0: u32,
    out: &mut Vec<(f32, u32)>,
) {
    let n = base.len();
    let (pb, pi) = (base.as_ptr(), ip.as_ptr());
    let two = _mm256_set1_ps(2.0);
    let vt = _mm256_set1_ps(thr);
    let mut vals = [0f32; 8];
    let mut i = 0;
    while i + 8 <= n {
        // base - 2 ip in one rounding (2 ip is exact), as the scalar twin
        let v = _mm256_fnmadd_ps(two, _mm256_loadu_ps(pi.add(i)), _mm256_loadu_ps(pb.add(i)));
        let mut m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(v, vt)) as u32;
        if m != 0 {
            _mm256_storeu_ps(vals.as_mut_ptr(), v);
            while m != 0 {
                let l = m.trailing_zeros() as usize;
                out.push((vals[l], id0 + (i + l) as u32));
                m &= m - 1;
            }
        }
        i += 8;
    }
    while i < n {
        let v = *pb.add(i) - 2.0 * *pi.add(i);
        if v <= thr {
            out.push((v, id0 + i as u32));
        }
        i += 1;
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `base.len() == ip.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn strided_min_shifted(base: &[f32], ip: &[f32], mins: &mut [f32]) {
    let (n, g) = (base.len(), mins.len());
    let (pb, pi, pm) = (base.as_ptr(), ip.as_ptr(), mins.as_mut_ptr());
    let two = _mm256_set1_ps(2.0);
    let mut c0 = 0;
    while c0 < n {
        let len = g.min(n - c0);
        let mut s = 0;
        while s + 8 <= len {
            let v = _mm256_fnmadd_ps(
                two,
                _mm256_loadu_ps(pi.add(c0 + s)),
                _mm256_loadu_ps(pb.add(c0 + s)),
            );
            // min_ps(v, m) = v < m ? v : m, the scalar twin's rule
            let m = _mm256_min_ps(v, _mm256_loadu_ps(pm.add(s)));
            _mm256_storeu_ps(pm.add(s), m);
            s += 8;
        }
        while s < len {
            let v = *pb.add(c0 + s) - 2.0 * *pi.add(c0 + s);
            if v < *pm.add(s) {
                *pm.add(s) = v;
            }
            s += 1;
        }
        c0 += g;
    }
}
