//! Lattice kernels: atom/shell scoring with a fused argmax (Zn sphere codec, E8 shell codec)
//! and the Conway–Sloane E8 nearest-point decoder. One safe dispatcher per kernel over the
//! scalar twin and the x86-64 AVX2 variant; `*_with(level, ..)` forms exist for parity tests.
//!
//! Both kernels give bit-identical results at every level: the AVX2 code performs the same IEEE
//! operations in the same order per lane as the scalar twin (no FMA contraction).

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod scalar;

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
