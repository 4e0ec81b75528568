//! Hamming-distance kernels over packed binary codes: one safe dispatcher per kernel over the
//! scalar twin and the x86-64 AVX2 / AVX-512 variants. `*_with(level, ..)` forms exist for
//! parity tests and benches.
//!
//! The AVX-512 variant needs VPOPCNTDQ on top of the AVX-512 level (F/BW/DQ/VL): some CPUs
//! (e.g. Skylake-X, AMD Zen 3) have AVX-512 or AVX2 without it, so it is checked separately at
//! runtime, once; without it the AVX2 variant runs. The AVX2 variant also requires POPCNT.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod scalar;

use crate::simd::{level, SimdLevel};
use std::sync::OnceLock;

/// Whether the CPU has AVX-512 VPOPCNTDQ (checked once).
pub fn has_vpopcntdq() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx512vpopcntdq")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

fn has_popcnt() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("popcnt")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// The variant a level actually runs: `Avx512` only with VPOPCNTDQ, `Avx2` only with POPCNT.
pub fn effective_level(lvl: SimdLevel) -> SimdLevel {
    let best = crate::simd::detected();
    if lvl >= SimdLevel::Avx512 && best >= SimdLevel::Avx512 && has_vpopcntdq() {
        SimdLevel::Avx512
    } else if lvl >= SimdLevel::Avx2 && best >= SimdLevel::Avx2 && has_popcnt() {
        SimdLevel::Avx2
    } else {
        SimdLevel::Scalar
    }
}

macro_rules! dispatch {
    ($lvl:expr, $name:ident ( $($arg:expr),* )) => {{
        match effective_level($lvl) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `effective_level` returns Avx512 only when the CPU has AVX-512 F/BW and
            // VPOPCNTDQ (runtime-detected).
            SimdLevel::Avx512 => unsafe { avx512::$name($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx2 only when the CPU has AVX2 and POPCNT (runtime-detected).
            SimdLevel::Avx2 => unsafe { avx2::$name($($arg),*) },
            _ => scalar::$name($($arg),*),
        }
    }};
}

/// Hamming distance of two equally long codes at a given level. Panics if lengths differ.
#[inline]
pub fn hamming_with(lvl: SimdLevel, a: &[u8], b: &[u8]) -> u32 {
    assert_eq!(a.len(), b.len(), "hamming: length mismatch");
    dispatch!(lvl, hamming(a, b))
}

/// `out[j] = H(q, codes[j])` at a given level; `codes` holds `out.len()` rows of `q.len()` bytes.
/// Panics if the lengths do not fit.
#[inline]
pub fn hamming_many_with(lvl: SimdLevel, q: &[u8], codes: &[u8], out: &mut [u32]) {
    assert_eq!(
        codes.len(),
        out.len() * q.len(),
        "hamming_many: length mismatch"
    );
    dispatch!(lvl, hamming_many(q, codes, out))
}

/// First `j >= start` with `v[j] < thr` (or `v.len()`), at a given level.
#[inline]
pub fn find_below_u32_with(lvl: SimdLevel, v: &[u32], start: usize, thr: u32) -> usize {
    if start >= v.len() {
        return v.len();
    }
    dispatch!(lvl, find_below_u32(v, start, thr))
}

/// Hamming distance of two equally long codes.
#[inline]
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    hamming_with(level(), a, b)
}

/// See [`hamming_many_with`].
#[inline]
pub fn hamming_many(q: &[u8], codes: &[u8], out: &mut [u32]) {
    hamming_many_with(level(), q, codes, out)
}
