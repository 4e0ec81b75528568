//! SIMD level: detected once, overridable with `QUANTA_SIMD=scalar|avx2|avx512`.
//!
//! Every kernel dispatches on [`level()`]; the value is cached in a `OnceLock` the first time it is
//! read so the hot paths pay one relaxed load. Tests and the Python suite can force a lower level
//! with [`set_level`] to exercise the scalar twins.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// Instruction-set level used by the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// Portable Rust, the reference ("scalar twin") of every kernel.
    Scalar = 0,
    /// x86-64 AVX2 + FMA.
    Avx2 = 1,
    /// x86-64 AVX-512 F/BW/DQ/VL (+ VPOPCNTDQ where a kernel needs it).
    Avx512 = 2,
}

impl SimdLevel {
    /// Lower-case name, as accepted by `QUANTA_SIMD`.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// Parse a level name (case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "none" | "generic" => Ok(SimdLevel::Scalar),
            "avx2" => Ok(SimdLevel::Avx2),
            "avx512" => Ok(SimdLevel::Avx512),
            other => Err(Error::invalid(format!(
                "unknown SIMD level {other:?}: expected one of scalar, avx2, avx512"
            ))),
        }
    }

    /// Every level this CPU can run, lowest first. Parity tests loop over it.
    pub fn available() -> Vec<SimdLevel> {
        let best = detected();
        [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512]
            .into_iter()
            .filter(|l| *l <= best)
            .collect()
    }

    fn from_u8(v: u8) -> Self {
        match v {
            2 => SimdLevel::Avx512,
            1 => SimdLevel::Avx2,
            _ => SimdLevel::Scalar,
        }
    }
}

/// Best level supported by the CPU, detected once.
pub fn detected() -> SimdLevel {
    static DETECTED: OnceLock<SimdLevel> = OnceLock::new();
    *DETECTED.get_or_init(detect_cpu)
}

#[cfg(target_arch = "x86_64")]
fn detect_cpu() -> SimdLevel {
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
    {
        SimdLevel::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        SimdLevel::Avx2
    } else {
        SimdLevel::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_cpu() -> SimdLevel {
    SimdLevel::Scalar
}

const UNSET: u8 = u8::MAX;
static ACTIVE: AtomicU8 = AtomicU8::new(UNSET);

/// The level kernels use now: `QUANTA_SIMD` if set (clamped to what the CPU has, with a warning on
/// stderr), else the detected one.
#[inline]
pub fn level() -> SimdLevel {
    let v = ACTIVE.load(Ordering::Relaxed);
    if v != UNSET {
        return SimdLevel::from_u8(v);
    }
    let lvl = initial_level();
    ACTIVE.store(lvl as u8, Ordering::Relaxed);
    lvl
}

fn initial_level() -> SimdLevel {
    let best = detected();
    match std::env::var("QUANTA_SIMD") {
        Ok(s) if !s.trim().is_empty() => match SimdLevel::parse(&s) {
            Ok(want) if want <= best => want,
            Ok(want) => {
                eprintln!(
                    "quanta: QUANTA_SIMD={} is not supported by this CPU, using {}",
                    want.name(),
                    best.name()
                );
                best
            }
            Err(e) => {
                eprintln!("quanta: ignoring QUANTA_SIMD: {e}");
                best
            }
        },
        _ => best,
    }
}

/// Force a level (tests, benchmarks). Errors if the CPU cannot run it.
pub fn set_level(lvl: SimdLevel) -> Result<()> {
    if lvl > detected() {
        return Err(Error::SimdUnavailable(format!(
            "SIMD level {} is not supported by this CPU (best: {})",
            lvl.name(),
            detected().name()
        )));
    }
    ACTIVE.store(lvl as u8, Ordering::Relaxed);
    Ok(())
}

/// CPU vendor (CPUID leaf 0), for kernel choices that feature bits cannot make: Zen 4 and Intel
/// both report AVX-512 but execute 512-bit FMAs at different widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// "GenuineIntel".
    Intel,
    /// "AuthenticAMD".
    Amd,
    /// Anything else (or not x86-64).
    Other,
}

/// The CPU vendor, detected once.
pub fn vendor() -> Vendor {
    static VENDOR: OnceLock<Vendor> = OnceLock::new();
    *VENDOR.get_or_init(detect_vendor)
}

#[cfg(target_arch = "x86_64")]
fn detect_vendor() -> Vendor {
    // SAFETY: CPUID leaf 0 exists on every x86-64 CPU and has no side effects.
    #[allow(unused_unsafe)] // `__cpuid` is a safe fn from Rust 1.87 on; MSRV 1.89 accepts both
    let r = unsafe { std::arch::x86_64::__cpuid(0) };
    let mut id = [0u8; 12];
    id[..4].copy_from_slice(&r.ebx.to_le_bytes());
    id[4..8].copy_from_slice(&r.edx.to_le_bytes());
    id[8..].copy_from_slice(&r.ecx.to_le_bytes());
    match &id {
        b"GenuineIntel" => Vendor::Intel,
        b"AuthenticAMD" => Vendor::Amd,
        _ => Vendor::Other,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_vendor() -> Vendor {
    Vendor::Other
}

/// Hint that the cache line holding `*p` will be read soon (a no-op off x86-64). Gathers
/// with random addresses (re-ranking candidates scattered over lists) prefetch every address
/// first so the cache misses overlap instead of stalling one by one.
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint: it never faults and reads no architectural state; SSE is
    // part of the x86-64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p as *const T as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_roundtrip() {
        for l in [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512] {
            assert_eq!(SimdLevel::parse(l.name()).unwrap(), l);
        }
        assert!(SimdLevel::parse("sse9").is_err());
    }

    #[test]
    fn vendor_matches_proc_cpuinfo() {
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            return; // not Linux: nothing to compare with
        };
        let want = if info.contains("GenuineIntel") {
            Vendor::Intel
        } else if info.contains("AuthenticAMD") {
            Vendor::Amd
        } else {
            Vendor::Other
        };
        assert_eq!(vendor(), want);
    }

    #[test]
    fn available_starts_with_scalar() {
        let a = SimdLevel::available();
        assert_eq!(a[0], SimdLevel::Scalar);
        assert_eq!(*a.last().unwrap(), detected());
    }
}
