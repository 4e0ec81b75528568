//! PQ table-scan kernels: the ADC (and SDC, which is ADC with a table cut out of the symmetric
//! tables) distance of a run of codes, `out[i] = Σ_m table[m][code[i][m]]`.
//!
//! Layout contract shared by every variant:
//! - `codes` is row-major, `m` bytes per code (one byte per sub-quantizer);
//! - `table` has `m` rows of [`TABLE_STRIDE`] = 256 floats whatever `ksub` is, so that every
//!   byte value indexes inside the table: the kernels need no bounds checks and cannot read out
//!   of bounds even on codes that were never validated (entries past `ksub` are never hit by a
//!   valid code; callers fill them with +inf);
//! - summation order is fixed: even sub-quantizers into one accumulator, odd ones into another,
//!   in increasing `m`, then `even + odd`. All variants follow it, so they return bit-identical
//!   distances (float adds in the same order), and results do not depend on the SIMD level.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod scalar;

use crate::simd::SimdLevel;

/// Floats per sub-quantizer row of a distance table (one per possible code byte).
pub const TABLE_STRIDE: usize = 256;

/// `out[i] = Σ_m table[m·256 + codes[i·m + m]]`: the kernel every PQ search uses.
///
/// Which variant: table lookups are loads, and the scan is bound by load throughput. Measured
/// on the development machine (AMD EPYC, AVX2, one thread, 64 Ki codes, `cargo bench --bench
/// kernels -- pq_adc`): word-wise scalar loads reach ~420 M codes/s at M = 8, ~210 M at M = 16,
/// ~100 M at M = 32, while the AVX2 `vpgatherdps` variant reaches 137 M, 74 M and 27 M — gathers
/// are micro-coded on this CPU and issue no faster than the equivalent scalar loads. So the scan
/// uses the load kernel at every SIMD level; the gather variants stay available (and
/// parity-tested) through [`adc_block_gather_with`] for CPUs where gathers are fast.
///
/// Panics if `table.len() != m·256` or `codes.len() != out.len()·m` (programming errors: the
/// index layer sizes these buffers itself).
#[inline]
pub fn adc_block(table: &[f32], m: usize, codes: &[u8], out: &mut [f32]) {
    check(table, m, codes, out);
    scalar::adc_block(table, m, codes, out)
}

/// The SIMD-level-specific variants of [`adc_block`]: `vpgatherdps` (AVX2, 8 codes per step)
/// and `vgatherdps` zmm (AVX-512F, 16 codes per step) when `m.is_multiple_of(4)`, else the scalar twin.
/// Bit-identical to [`adc_block`] (same adds in the same order).
#[inline]
pub fn adc_block_gather_with(
    lvl: SimdLevel,
    table: &[f32],
    m: usize,
    codes: &[u8],
    out: &mut [f32],
) {
    check(table, m, codes, out);
    match lvl {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a level above Scalar is only used when the CPU supports it (`detected()`
        // re-checks here); the buffer sizes and `m.is_multiple_of(4)` were checked.
        SimdLevel::Avx512
            if crate::simd::detected() >= SimdLevel::Avx512 && m.is_multiple_of(4) =>
        unsafe { avx512::adc_block(table, m, codes, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, AVX2 is checked by `detected()`.
        SimdLevel::Avx2 | SimdLevel::Avx512
            if crate::simd::detected() >= SimdLevel::Avx2 && m.is_multiple_of(4) =>
        unsafe { avx2::adc_block(table, m, codes, out) },
        _ => scalar::adc_block(table, m, codes, out),
    }
}

fn check(table: &[f32], m: usize, codes: &[u8], out: &[f32]) {
    assert!(m > 0, "adc_block: m must be >= 1");
    assert_eq!(table.len(), m * TABLE_STRIDE, "adc_block: table size");
    assert_eq!(codes.len(), out.len() * m, "adc_block: codes size");
}

/// `out[c] = Σ_j x[j] · ct[j·nc + c]` (`nc = out.len()`): inner products of a sub-vector with
/// every centroid of a transposed codebook, at a given SIMD level (PQ encoding of short
/// sub-vectors, where a GEMM call would be mostly packing). Float results may differ from the
/// scalar twin in the last bits (FMA).
#[inline]
pub fn ip_transposed_with(lvl: SimdLevel, x: &[f32], ct: &[f32], out: &mut [f32]) {
    assert_eq!(
        ct.len(),
        x.len() * out.len(),
        "ip_transposed: codebook size"
    );
    match lvl {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: level support re-checked by `detected()`; sizes asserted above.
        SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx512 => unsafe {
            avx512::ip_transposed(x, ct, out)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdLevel::Avx2 | SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx2 => unsafe {
            avx2::ip_transposed(x, ct, out)
        },
        _ => scalar::ip_transposed(x, ct, out),
    }
}
