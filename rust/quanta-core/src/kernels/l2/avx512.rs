//! AVX-512 (F + BW + DQ + VL) variants of the L2/IP kernels. Only called through `mod.rs`.

use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX-512F; `a.len() == b.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn l2sqr(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        let t = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
        acc = _mm512_fmadd_ps(t, t, acc);
        i += 16;
    }
    if i < n {
        // masked tail: one partial vector instead of a scalar loop
        let m: __mmask16 = (1u32 << (n - i)) as u16 - 1;
        let t = _mm512_sub_ps(
            _mm512_maskz_loadu_ps(m, pa.add(i)),
            _mm512_maskz_loadu_ps(m, pb.add(i)),
        );
        acc = _mm512_fmadd_ps(t, t, acc);
    }
    _mm512_reduce_add_ps(acc)
}

/// # Safety
/// The CPU must support AVX-512F; `a.len() == b.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc);
        i += 16;
    }
    if i < n {
        let m: __mmask16 = (1u32 << (n - i)) as u16 - 1;
        acc = _mm512_fmadd_ps(
            _mm512_maskz_loadu_ps(m, pa.add(i)),
            _mm512_maskz_loadu_ps(m, pb.add(i)),
            acc,
        );
    }
    _mm512_reduce_add_ps(acc)
}

/// # Safety
/// The CPU must support AVX-512F; `base.len() == ip.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn argmin_shifted(base: &[f32], ip: &[f32]) -> (usize, f32) {
    let n = base.len();
    let (pb, pi) = (base.as_ptr(), ip.as_ptr());
    let mut best = f32::INFINITY;
    let mut arg = 0usize;
    let mut i = 0;
    if n >= 16 {
        let two = _mm512_set1_ps(2.0);
        let mut vbest = _mm512_set1_ps(f32::INFINITY);
        let mut vidx = _mm512_setzero_si512();
        let mut cur = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let step = _mm512_set1_epi32(16);
        while i + 16 <= n {
            let v = _mm512_fnmadd_ps(two, _mm512_loadu_ps(pi.add(i)), _mm512_loadu_ps(pb.add(i)));
            let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, vbest);
            vbest = _mm512_mask_mov_ps(vbest, lt, v);
            vidx = _mm512_mask_mov_epi32(vidx, lt, cur);
            cur = _mm512_add_epi32(cur, step);
            i += 16;
        }
        let mut bv = [0f32; 16];
        let mut bi = [0i32; 16];
        _mm512_storeu_ps(bv.as_mut_ptr(), vbest);
        _mm512_storeu_si512(bi.as_mut_ptr() as *mut __m512i, vidx);
        for l in 0..16 {
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
/// The CPU must support AVX-512F; `base.len() == ip.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn argmin2_shifted(base: &[f32], ip: &[f32]) -> (usize, f32, f32) {
    let n = base.len();
    let (pb, pi) = (base.as_ptr(), ip.as_ptr());
    let (mut best, mut second, mut arg) = (f32::INFINITY, f32::INFINITY, 0usize);
    let mut i = 0;
    if n >= 16 {
        let two = _mm512_set1_ps(2.0);
        let mut vbest = _mm512_set1_ps(f32::INFINITY);
        let mut vsec = _mm512_set1_ps(f32::INFINITY);
        let mut vidx = _mm512_setzero_si512();
        let mut cur = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        // a second set of lanes for the odd 16-blocks: two independent compare/select chains
        let mut vbest2 = _mm512_set1_ps(f32::INFINITY);
        let mut vsec2 = _mm512_set1_ps(f32::INFINITY);
        let mut vidx2 = _mm512_setzero_si512();
        let step = _mm512_set1_epi32(16);
        let step2 = _mm512_set1_epi32(32);
        while i + 32 <= n {
            let v = _mm512_fnmadd_ps(two, _mm512_loadu_ps(pi.add(i)), _mm512_loadu_ps(pb.add(i)));
            let w = _mm512_fnmadd_ps(
                two,
                _mm512_loadu_ps(pi.add(i + 16)),
                _mm512_loadu_ps(pb.add(i + 16)),
            );
            let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, vbest);
            let lt2 = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(w, vbest2);
            vsec = _mm512_min_ps(vsec, _mm512_max_ps(vbest, v));
            vsec2 = _mm512_min_ps(vsec2, _mm512_max_ps(vbest2, w));
            vbest = _mm512_mask_mov_ps(vbest, lt, v);
            vbest2 = _mm512_mask_mov_ps(vbest2, lt2, w);
            vidx = _mm512_mask_mov_epi32(vidx, lt, cur);
            vidx2 = _mm512_mask_mov_epi32(vidx2, lt2, _mm512_add_epi32(cur, step));
            cur = _mm512_add_epi32(cur, step2);
            i += 32;
        }
        if i + 16 <= n {
            let v = _mm512_fnmadd_ps(two, _mm512_loadu_ps(pi.add(i)), _mm512_loadu_ps(pb.add(i)));
            let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, vbest);
            vsec = _mm512_min_ps(vsec, _mm512_max_ps(vbest, v));
            vbest = _mm512_mask_mov_ps(vbest, lt, v);
            vidx = _mm512_mask_mov_epi32(vidx, lt, cur);
            i += 16;
        }
        let mut bv = [0f32; 32];
        let mut sv = [0f32; 32];
        let mut bi = [0i32; 32];
        _mm512_storeu_ps(bv.as_mut_ptr(), vbest);
        _mm512_storeu_ps(sv.as_mut_ptr(), vsec);
        _mm512_storeu_si512(bi.as_mut_ptr() as *mut __m512i, vidx);
        _mm512_storeu_ps(bv.as_mut_ptr().add(16), vbest2);
        _mm512_storeu_ps(sv.as_mut_ptr().add(16), vsec2);
        _mm512_storeu_si512(bi.as_mut_ptr().add(16) as *mut __m512i, vidx2);
        // lanes that never saw a value hold +inf with index 0 (they lose every comparison)
        let mut lane = 0;
        for l in 0..32 {
            let (v, j) = (bv[l], bi[l] as usize);
            if v < best || (v == best && j < arg) {
                best = v;
                arg = j;
                lane = l;
            }
        }
        for l in 0..32 {
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
/// The CPU must support AVX-512F; `start <= v.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn find_below(v: &[f32], start: usize, thr: f32) -> usize {
    let n = v.len();
    let p = v.as_ptr();
    let vt = _mm512_set1_ps(thr);
    let mut j = start;
    while j + 16 <= n {
        let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_loadu_ps(p.add(j)), vt);
        if m != 0 {
            return j + m.trailing_zeros() as usize;
        }
        j += 16;
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
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn first_non_finite(x: &[f32]) -> Option<usize> {
    let n = x.len();
    let p = x.as_ptr() as *const i32;
    let mask = _mm512_set1_epi32(0x7f80_0000);
    let mut i = 0;
    while i + 16 <= n {
        let v = _mm512_and_si512(_mm512_loadu_si512(p.add(i) as *const __m512i), mask);
        let eq = _mm512_cmpeq_epi32_mask(v, mask);
        if eq != 0 {
            return Some(i + eq.trailing_zeros() as usize);
        }
        i += 16;
    }
    (i..n).find(|&j| !x[j].is_finite())
}
