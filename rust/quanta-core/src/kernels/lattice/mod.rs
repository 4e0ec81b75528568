//! Lattice kernels: atom/shell scoring with a fused argmax (Zn sphere codec, E8 shell codec),
//! the Conway–Sloane E8 nearest-point decoder, and Zn sphere decoding from a flat plan (`zn`).
//! One safe dispatcher per kernel over the scalar twin and the x86-64 variants (AVX2; AVX-512
//! for the Zn decoder); `*_with(level, ..)` forms exist for parity tests.
//!
//! Every kernel gives bit-identical results at every level: the AVX2 float code performs the
//! same IEEE operations in the same order per lane as the scalar twin (no FMA contraction), and
//! the Zn decoder performs the same integer steps (BMI2 `pdep` for the portable bit deposit).

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod scalar;
pub mod zn;

use crate::simd::{level, SimdLevel};

macro_rules! dispatch {
    ($lvl:expr, $name:ident ( $($arg:expr),* )) => {{
        match $lvl {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a level above Scalar is only selected when the CPU supports AVX2+FMA
            // (`simd::level` clamps `QUANTA_SIMD`, `set_level` refuses unsupported levels) and
            // `detected()` is checked again here.
            SimdLevel::Avx2 | SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx2 => unsafe { avx2::$name($($arg),*) },
            _ => scalar::$name($($arg),*),
        }
    }};
}

/// `scores[j] = Σ_i x[i] · t[i·n + j]` (`n = scores.len()`, `t` holds `x.len()` rows of `n`),
/// accumulated in increasing `i`; returns the index of the largest score (lowest on ties).
///
/// `t` is a transposed codebook (one row per coordinate), so the inner loop runs over
/// codewords and vectorizes without horizontal sums. Panics if `t` is too short or `n == 0`.
#[inline]
pub fn score_argmax_with(lvl: SimdLevel, t: &[f32], x: &[f32], scores: &mut [f32]) -> usize {
    assert!(!scores.is_empty(), "score_argmax: empty codebook");
    assert!(
        t.len() >= x.len() * scores.len(),
        "score_argmax: table too short"
    );
    dispatch!(lvl, score_argmax(t, x, scores))
}

/// See [`score_argmax_with`].
#[inline]
pub fn score_argmax(t: &[f32], x: &[f32], scores: &mut [f32]) -> usize {
    score_argmax_with(level(), t, x, scores)
}

/// Nearest E8 points of the 8-dim blocks of `x` (unscaled lattice), into `out`, at a level.
/// Panics if the lengths differ or are not multiples of 8.
#[inline]
pub fn e8_nearest_with(lvl: SimdLevel, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "e8_nearest: length mismatch");
    assert!(
        x.len().is_multiple_of(8),
        "e8_nearest: length not a multiple of 8"
    );
    dispatch!(lvl, e8_nearest(x, out))
}

/// See [`e8_nearest_with`].
#[inline]
pub fn e8_nearest(x: &[f32], out: &mut [f32]) {
    e8_nearest_with(level(), x, out)
}

/// BMI2 `pdep` is available and fast (AMD before Zen 3 microcodes it: hundreds of cycles).
#[cfg(target_arch = "x86_64")]
fn fast_pdep() -> bool {
    static FAST: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAST.get_or_init(|| {
        if !(is_x86_feature_detected!("bmi2") && is_x86_feature_detected!("popcnt")) {
            return false;
        }
        // `cpuid` leaves 0 and 1 exist on every x86-64 CPU
        let (v, f) = (std::arch::x86_64::__cpuid(0), std::arch::x86_64::__cpuid(1));
        let amd = (v.ebx, v.edx, v.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
        let family = ((f.eax >> 8) & 0xf) + ((f.eax >> 20) & 0xff);
        !(amd && family < 0x19)
    })
}

/// Unit vectors of Zn sphere `codes` (each `< plan.nv()`) into `out` (`codes.len() × d`), at
/// a level; the AVX2 and AVX-512 levels use BMI2 bit deposit where it is fast (else the
/// scalar twin).
/// Panics if the lengths disagree.
#[inline]
pub fn zn_unrank_with(lvl: SimdLevel, plan: &zn::ZnPlan, codes: &[u64], out: &mut [f32]) {
    assert_eq!(
        out.len(),
        codes.len() * plan.d(),
        "zn_unrank: output length mismatch"
    );
    match lvl {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is checked by `detected()`, BMI2 and POPCNT by `fast_pdep()`; the
        // lengths are checked above and the codes are checked by the caller (an invalid one
        // can only panic on an index, never read out of bounds).
        SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx512 && fast_pdep() => unsafe {
            avx512::zn_unrank(plan, codes, out)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, with AVX2.
        SimdLevel::Avx2 | SimdLevel::Avx512
            if crate::simd::detected() >= SimdLevel::Avx2 && fast_pdep() =>
        unsafe { avx2::zn_unrank(plan, codes, out) },
        _ => scalar::zn_unrank(plan, codes, out),
    }
}

/// See [`zn_unrank_with`].
#[inline]
pub fn zn_unrank(plan: &zn::ZnPlan, codes: &[u64], out: &mut [f32]) {
    zn_unrank_with(level(), plan, codes, out)
}
