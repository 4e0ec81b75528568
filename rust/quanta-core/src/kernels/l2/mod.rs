//! L2 / inner-product kernels: one safe dispatcher per kernel over the scalar twin and the
//! x86-64 AVX2 / AVX-512 variants. `*_with(level, ..)` forms exist for parity tests and benches.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod scalar;

use crate::simd::{level, SimdLevel};

macro_rules! dispatch {
    ($lvl:expr, $name:ident ( $($arg:expr),* )) => {{
        match $lvl {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a level above Scalar is only ever selected when the CPU supports it
            // (`simd::level` clamps `QUANTA_SIMD` and `set_level` refuses unsupported levels).
            SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx512 => unsafe { avx512::$name($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, AVX2+FMA is checked by `detected()`.
            SimdLevel::Avx2 | SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx2 => unsafe { avx2::$name($($arg),*) },
            _ => scalar::$name($($arg),*),
        }
    }};
}

/// Squared L2 distance at a given level. Panics if lengths differ.
#[inline]
pub fn l2sqr_with(lvl: SimdLevel, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2sqr: length mismatch");
    dispatch!(lvl, l2sqr(a, b))
}

/// Inner product at a given level. Panics if lengths differ.
#[inline]
pub fn inner_product_with(lvl: SimdLevel, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "inner_product: length mismatch");
    dispatch!(lvl, inner_product(a, b))
}

/// `argmin_j base[j] - 2 ip[j]` with the lowest index on ties, at a given level.
#[inline]
pub fn argmin_shifted_with(lvl: SimdLevel, base: &[f32], ip: &[f32]) -> (usize, f32) {
    assert_eq!(base.len(), ip.len(), "argmin_shifted: length mismatch");
    dispatch!(lvl, argmin_shifted(base, ip))
}

/// `(argmin, best, second best)` of `base[j] - 2 ip[j]`, at a given level (see the scalar twin).
#[inline]
pub fn argmin2_shifted_with(lvl: SimdLevel, base: &[f32], ip: &[f32]) -> (usize, f32, f32) {
    assert_eq!(base.len(), ip.len(), "argmin2_shifted: length mismatch");
    dispatch!(lvl, argmin2_shifted(base, ip))
}

/// Append `(v, id0 + j)`, in increasing `j`, for every `v = base[j] - 2 ip[j] <= thr`, at a given
/// level (candidate selection of the k-means full search). Bit-identical at every level: the
/// subtraction rounds once everywhere. The AVX-512 level runs the AVX2 variant (the pass is a
/// compare and a rare push per 8 values; wider vectors would not shorten it).
#[inline]
pub fn collect_le_shifted_with(
    lvl: SimdLevel,
    base: &[f32],
    ip: &[f32],
    thr: f32,
    id0: u32,
    out: &mut Vec<(f32, u32)>,
) {
    assert_eq!(base.len(), ip.len(), "collect_le_shifted: length mismatch");
    match lvl {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2+FMA re-checked by `detected()`; lengths asserted above.
        SimdLevel::Avx2 | SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx2 => unsafe {
            avx2::collect_le_shifted(base, ip, thr, id0, out)
        },
        _ => scalar::collect_le_shifted(base, ip, thr, id0, out),
    }
}

/// `mins[j mod g] = min(mins[j mod g], base[j] - 2 ip[j])` for `g = mins.len() >= 1`, at a
/// given level (the threshold of the candidate selection). Bit-identical at every level; the
/// AVX-512 level runs the AVX2 variant.
#[inline]
pub fn strided_min_shifted_with(lvl: SimdLevel, base: &[f32], ip: &[f32], mins: &mut [f32]) {
    assert_eq!(base.len(), ip.len(), "strided_min_shifted: length mismatch");
    assert!(!mins.is_empty(), "strided_min_shifted: no groups");
    match lvl {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2+FMA re-checked by `detected()`; lengths asserted above.
        SimdLevel::Avx2 | SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx2 => unsafe {
            avx2::strided_min_shifted(base, ip, mins)
        },
        _ => scalar::strided_min_shifted(base, ip, mins),
    }
}

/// First `j >= start` with `v[j] < thr` (or `v.len()`), at a given level.
#[inline]
pub fn find_below_with(lvl: SimdLevel, v: &[f32], start: usize, thr: f32) -> usize {
    if start >= v.len() {
        return v.len();
    }
    dispatch!(lvl, find_below(v, start, thr))
}

/// Position of the first NaN/Inf, at a given level.
#[inline]
pub fn first_non_finite_with(lvl: SimdLevel, x: &[f32]) -> Option<usize> {
    dispatch!(lvl, first_non_finite(x))
}

/// Squared L2 distance.
#[inline]
pub fn l2sqr(a: &[f32], b: &[f32]) -> f32 {
    l2sqr_with(level(), a, b)
}

/// Inner product.
#[inline]
pub fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    inner_product_with(level(), a, b)
}

/// See [`argmin_shifted_with`].
#[inline]
pub fn argmin_shifted(base: &[f32], ip: &[f32]) -> (usize, f32) {
    argmin_shifted_with(level(), base, ip)
}

/// See [`find_below_with`].
#[inline]
pub fn find_below(v: &[f32], start: usize, thr: f32) -> usize {
    find_below_with(level(), v, start, thr)
}

/// See [`first_non_finite_with`].
#[inline]
pub fn first_non_finite(x: &[f32]) -> Option<usize> {
    first_non_finite_with(level(), x)
}

/// Squared L2 norm of each `d`-dimensional row of `x` into `out` (len `x.len() / d`).
pub fn norms_sqr(x: &[f32], d: usize, out: &mut [f32]) {
    let lvl = level();
    debug_assert_eq!(x.len(), out.len() * d);
    for (row, o) in x.chunks_exact(d).zip(out.iter_mut()) {
        *o = inner_product_with(lvl, row, row);
    }
}
