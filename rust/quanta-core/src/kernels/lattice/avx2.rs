//! AVX2 variants of the lattice kernels. Only called through the dispatcher in `mod.rs`.
//!
//! No FMA: every lane performs the scalar twin's multiply and add separately, so results are
//! bit-identical to `scalar.rs`.

use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2; `t.len() >= x.len() * scores.len()` and `scores` is not empty.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn score_argmax(t: &[f32], x: &[f32], scores: &mut [f32]) -> usize {
    let n = scores.len();
    let pt = t.as_ptr();
    let ps = scores.as_mut_ptr();
    let mut j = 0;
    while j + 32 <= n {
        let (mut a0, mut a1, mut a2, mut a3) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        for (i, &xi) in x.iter().enumerate() {
            let xv = _mm256_set1_ps(xi);
            let r = pt.add(i * n + j);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(xv, _mm256_loadu_ps(r)));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(xv, _mm256_loadu_ps(r.add(8))));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(xv, _mm256_loadu_ps(r.add(16))));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(xv, _mm256_loadu_ps(r.add(24))));
        }
        _mm256_storeu_ps(ps.add(j), a0);
        _mm256_storeu_ps(ps.add(j + 8), a1);
        _mm256_storeu_ps(ps.add(j + 16), a2);
        _mm256_storeu_ps(ps.add(j + 24), a3);
        j += 32;
    }
    while j + 8 <= n {
        let mut a0 = _mm256_setzero_ps();
        for (i, &xi) in x.iter().enumerate() {
            let xv = _mm256_set1_ps(xi);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(xv, _mm256_loadu_ps(pt.add(i * n + j))));
        }
        _mm256_storeu_ps(ps.add(j), a0);
        j += 8;
    }
    while j < n {
        let mut acc = 0.0f32;
        for (i, &xi) in x.iter().enumerate() {
            acc += xi * *pt.add(i * n + j);
        }
        *ps.add(j) = acc;
        j += 1;
    }
    argmax(scores)
}

/// Index of the largest value, lowest on ties: vector max, then the first equal entry.
#[target_feature(enable = "avx2,fma")]
unsafe fn argmax(v: &[f32]) -> usize {
    let n = v.len();
    let p = v.as_ptr();
    let mut m = f32::NEG_INFINITY;
    let mut j = 0;
    if n >= 8 {
        let mut mv = _mm256_loadu_ps(p);
        j = 8;
        while j + 8 <= n {
            mv = _mm256_max_ps(mv, _mm256_loadu_ps(p.add(j)));
            j += 8;
        }
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), mv);
        for l in lanes {
            if l > m {
                m = l;
            }
        }
    }
    for &s in &v[j..] {
        if s > m {
            m = s;
        }
    }
    v.iter().position(|&s| s == m).unwrap_or(0)
}

/// Same association as the scalar `reduce8`: (l0+l4)+(l2+l6) + (l1+l5)+(l3+l7).
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let sh = _mm_movehl_ps(s, s);
    let s2 = _mm_add_ps(s, sh);
    let s3 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    _mm_cvtss_f32(s3)
}

/// Nearest D8 point of one block (see `scalar::d8_nearest`).
#[target_feature(enable = "avx2,fma")]
unsafe fn d8(x: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let t = _mm256_round_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    let fr = _mm256_sub_ps(x, t);
    let up = _mm256_cmp_ps(fr, _mm256_set1_ps(0.5), _CMP_GT_OQ);
    let dn = _mm256_cmp_ps(fr, _mm256_set1_ps(-0.5), _CMP_LT_OQ);
    let mut f = _mm256_blendv_ps(t, _mm256_add_ps(t, one), up);
    f = _mm256_blendv_ps(f, _mm256_sub_ps(t, one), dn);
    let sum = hsum(f);
    if (sum as i64) & 1 == 0 {
        return f;
    }
    let e = _mm256_sub_ps(x, f);
    let mut ea = [0.0f32; 8];
    let mut fa = [0.0f32; 8];
    _mm256_storeu_ps(ea.as_mut_ptr(), e);
    _mm256_storeu_ps(fa.as_mut_ptr(), f);
    let mut k = 0;
    let mut m = ea[0].abs();
    for (i, ei) in ea.iter().enumerate().skip(1) {
        if ei.abs() > m {
            m = ei.abs();
            k = i;
        }
    }
    fa[k] += if ea[k] >= 0.0 { 1.0 } else { -1.0 };
    _mm256_loadu_ps(fa.as_ptr())
}

/// # Safety
/// The CPU must support AVX2; `x.len() == out.len()`, a multiple of 8.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn e8_nearest(x: &[f32], out: &mut [f32]) {
    let half = _mm256_set1_ps(0.5);
    for (xb, ob) in x.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
        let xv = _mm256_loadu_ps(xb.as_ptr());
        let y0 = d8(xv);
        let y1 = _mm256_add_ps(d8(_mm256_sub_ps(xv, half)), half);
        let a = _mm256_sub_ps(xv, y0);
        let b = _mm256_sub_ps(xv, y1);
        let s0 = hsum(_mm256_mul_ps(a, a));
        let s1 = hsum(_mm256_mul_ps(b, b));
        let y = if s1 < s0 { y1 } else { y0 };
        _mm256_storeu_ps(ob.as_mut_ptr(), y);
    }
}

/// BMI2 bit deposit and AVX2 counting (4 × 64-bit compares).
struct Bmi2Ops;

impl super::zn::ZnOps for Bmi2Ops {
    #[inline(always)]
    fn pdep(src: u64, mask: u64) -> u64 {
        // SAFETY: only reached from `zn_unrank`, which requires BMI2.
        unsafe { _pdep_u64(src, mask) }
    }

    #[inline(always)]
    fn count_le(col: &[u64; super::zn::PLAN_MAX_D], cc: u64, lo: usize, top: usize) -> usize {
        // entries are below 2^63, so the signed compare is the unsigned one; lanes before `lo`
        // count (`<= cc`), lanes at `r >= top` do not (`> cc`): compare whole chunks of 4
        let c0 = lo / 4;
        let c1 = top.min(super::zn::PLAN_MAX_D).div_ceil(4);
        let mut gt = 0u32;
        // SAFETY: AVX2 is required by `zn_unrank`; chunks `c0..c1` lie within the 64 entries.
        unsafe {
            let v = _mm256_set1_epi64x(cc as i64);
            let p = col.as_ptr() as *const __m256i;
            for i in c0..c1 {
                let c = _mm256_loadu_si256(p.add(i));
                gt += (_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(c, v))) as u32)
                    .count_ones();
            }
        }
        4 * c1 - gt as usize
    }
}

/// # Safety
/// The CPU must support AVX2, BMI2 and POPCNT; every code must be `< plan.nv()` and
/// `out.len() == codes.len() * plan.d()`.
#[target_feature(enable = "avx2,bmi2,popcnt")]
pub unsafe fn zn_unrank(plan: &super::zn::ZnPlan, codes: &[u64], out: &mut [f32]) {
    super::zn::unrank_rows::<Bmi2Ops>(plan, codes, out)
}
