//! Hamming-distance kernels over packed binary codes: one safe dispatcher per kernel over the
//! scalar twin and the x86-64 variants. `*_with(level, ..)` forms exist for parity tests and
//! benches.
//!
//! Per-code distance variants ([`Kernel`]): `scalar` (portable twin), `popcnt` (the same u64
//! loops with hardware `popcnt`), `lut` (AVX2 nibble lookup with `vpshufb`) and `vpopcnt`
//! (AVX-512 VPOPCNTDQ). Which one is fastest depends on the microarchitecture, not only on the
//! feature bits (e.g. double-pumped 512-bit units on AMD Zen 4, four `popcnt` ALUs on Zen 3), so
//! [`select`] times them at first use; the bit-sliced many-query scan ([`sliced`]) is chosen
//! the same way. `QUANTA_HAMMING_KERNEL` overrides the choice (see [`select`]).
//!
//! The AVX-512 variant needs VPOPCNTDQ on top of the AVX-512 level (F/BW/DQ/VL): some CPUs
//! (e.g. Skylake-X, AMD Zen 3) have AVX-512 or AVX2 without it, so it is checked separately at
//! runtime, once; without it the AVX2 variant runs. The AVX2 variant also requires POPCNT.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "x86_64")]
pub mod popcnt;
pub mod scalar;
pub mod select;
pub mod sliced;

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

/// Whether the CPU has POPCNT (checked once).
pub fn has_popcnt() -> bool {
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

/// A per-code Hamming kernel variant (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Portable u64 loops (the reference twin).
    Scalar,
    /// u64 loops with hardware `popcnt`.
    Popcnt,
    /// AVX2 nibble lookup (`vpshufb`) + `vpsadbw`.
    Lut,
    /// AVX-512 VPOPCNTDQ.
    Vpopcnt,
}

impl Kernel {
    /// Every variant, in the order calibration tries them.
    pub const ALL: [Kernel; 4] = [Kernel::Scalar, Kernel::Popcnt, Kernel::Lut, Kernel::Vpopcnt];

    /// Lower-case name, as accepted by `QUANTA_HAMMING_KERNEL`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Popcnt => "popcnt",
            Kernel::Lut => "lut",
            Kernel::Vpopcnt => "vpopcnt",
        }
    }

    /// Parse a variant name (case-insensitive).
    pub fn parse(s: &str) -> Option<Kernel> {
        let s = s.trim().to_ascii_lowercase();
        Kernel::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether this variant may run at level `lvl` on this CPU: the level caps it
    /// (`QUANTA_SIMD=avx2` never runs `vpopcnt`) and the CPU must have its features.
    pub fn runs_at(self, lvl: SimdLevel) -> bool {
        match self {
            Kernel::Scalar => true,
            // plain x86-64 instruction, below the AVX2 level; the scalar level means the
            // portable twins only
            Kernel::Popcnt => {
                cfg!(target_arch = "x86_64") && lvl > SimdLevel::Scalar && has_popcnt()
            }
            Kernel::Lut => effective_level(lvl) >= SimdLevel::Avx2,
            Kernel::Vpopcnt => effective_level(lvl) == SimdLevel::Avx512,
        }
    }

    /// The variants that may run at `lvl`, in [`Kernel::ALL`] order.
    pub fn available(lvl: SimdLevel) -> Vec<Kernel> {
        Kernel::ALL.into_iter().filter(|k| k.runs_at(lvl)).collect()
    }
}

/// `out[j] = H(q, codes[j])` with a given variant; a variant the CPU cannot run falls back to
/// the scalar twin (same results). Panics if the lengths do not fit.
#[inline]
pub fn hamming_many_kernel(k: Kernel, q: &[u8], codes: &[u8], out: &mut [u32]) {
    assert_eq!(
        codes.len(),
        out.len() * q.len(),
        "hamming_many: length mismatch"
    );
    // the highest level the CPU has: `runs_at` then checks the features alone
    let cpu = crate::simd::detected();
    match k {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `runs_at` checked AVX-512 F/BW and VPOPCNTDQ at runtime.
        Kernel::Vpopcnt if k.runs_at(cpu) => unsafe { avx512::hamming_many(q, codes, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `runs_at` checked AVX2 and POPCNT at runtime.
        Kernel::Lut if k.runs_at(cpu) => unsafe { avx2::hamming_many(q, codes, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `runs_at` checked POPCNT at runtime.
        Kernel::Popcnt if k.runs_at(cpu) => unsafe { popcnt::hamming_many(q, codes, out) },
        _ => scalar::hamming_many(q, codes, out),
    }
}
