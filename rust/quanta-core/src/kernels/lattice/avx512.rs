//! AVX-512 variant of the Zn sphere decoder. Only called through the dispatcher in `mod.rs`.
//!
//! Same integer steps as the scalar twin (`zn::PortableOps`): BMI2 bit deposit and 8-lane
//! unsigned 64-bit compares for the binomial-column counts.

use super::zn::{unrank_rows, GroupPlan, ZnOps, ZnPlan, PLAN_MAX_D};
use std::arch::x86_64::*;

struct Avx512Ops;

impl ZnOps for Avx512Ops {
    #[inline(always)]
    fn pdep(src: u64, mask: u64) -> u64 {
        // SAFETY: only reached from `zn_unrank`, which requires BMI2.
        unsafe { _pdep_u64(src, mask) }
    }

    #[inline(always)]
    fn count_le(col: &[u64; PLAN_MAX_D], cc: u64, lo: usize, top: usize) -> usize {
        // lanes before `lo` count (`<= cc`), lanes at `r >= top` do not (`> cc`): compare
        // whole chunks of 8
        let c0 = lo / 8;
        let c1 = top.min(PLAN_MAX_D).div_ceil(8);
        let mut le = 8 * c0 as u32;
        // SAFETY: AVX-512F is required by `zn_unrank`; chunks `c0..c1` lie within the 64
        // entries.
        unsafe {
            let v = _mm512_set1_epi64(cc as i64);
            let p = col.as_ptr() as *const __m512i;
            for i in c0..c1 {
                let c = _mm512_loadu_si512(p.add(i));
                le += (_mm512_cmple_epu64_mask(c, v) as u32).count_ones();
            }
        }
        le as usize
    }

    #[inline(always)]
    fn write_row(
        out: &mut [f32],
        gs: &[GroupPlan],
        masks: &[u64; PLAN_MAX_D],
        last: (u64, u32),
        neg: u64,
    ) {
        // 16 lanes at a time: blend each run's value in under its mask, flip the sign bits
        // (`-x` for the non-zero values `neg` selects), store the row's lanes
        let d = out.len().min(PLAN_MAX_D);
        let po = out.as_mut_ptr();
        for c in 0..d.div_ceil(16) {
            let sh = 16 * c;
            // SAFETY: AVX-512F is required by `zn_unrank`; the store writes lanes
            // `sh..min(sh + 16, d)` of `out` only.
            unsafe {
                let mut v = _mm512_setzero_si512();
                for (gp, &m) in gs.iter().zip(masks) {
                    v = _mm512_mask_mov_epi32(
                        v,
                        (m >> sh) as u16,
                        _mm512_set1_epi32(gp.unit as i32),
                    );
                }
                v = _mm512_mask_mov_epi32(
                    v,
                    (last.0 >> sh) as u16,
                    _mm512_set1_epi32(last.1 as i32),
                );
                v = _mm512_mask_xor_epi32(v, (neg >> sh) as u16, v, _mm512_set1_epi32(i32::MIN));
                let lanes = (d - sh).min(16);
                let k = (u32::MAX >> (32 - lanes)) as u16;
                _mm512_mask_storeu_epi32(po.add(sh) as *mut i32, k, v);
            }
        }
    }
}

/// # Safety
/// The CPU must support AVX-512F, BMI2 and POPCNT; every code must be `< plan.nv()` and
/// `out.len() == codes.len() * plan.d()`.
#[target_feature(enable = "avx512f,bmi2,popcnt")]
pub unsafe fn zn_unrank(plan: &ZnPlan, codes: &[u64], out: &mut [f32]) {
    unrank_rows::<Avx512Ops>(plan, codes, out)
}
