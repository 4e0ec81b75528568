//! Scalar-quantizer distance kernels: a float query against a block of codes, read in place
//! (no decode to a temporary buffer). One safe dispatcher per kernel over the scalar twin and
//! the x86-64 AVX2 / AVX-512 variants; `*_with(level, ..)` forms exist for parity tests.
//!
//! The kernels are affine in the decoded value, so the codec folds its per-dimension decode
//! (`x = a + s·c`) and the metric's sign into the query once per search (`sq::Query`) and
//! the inner loops see only `(query, scale, code)`. Codes have stride `cs` bytes; each of the
//! `out.len()` codes gets one value.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod scalar;

use crate::simd::SimdLevel;

/// Whether the CPU converts halves in hardware (F16C; every AVX-512 CPU has the 512-bit form).
/// `is_x86_feature_detected!` caches its answer, so this is one load per kernel call.
#[cfg(target_arch = "x86_64")]
fn has_f16c() -> bool {
    std::arch::is_x86_feature_detected!("f16c")
}

macro_rules! dispatch {
    ($lvl:expr, $name:ident ( $($arg:expr),* )) => {
        dispatch!($lvl, true, $name($($arg),*))
    };
    ($lvl:expr, $avx2_ok:expr, $name:ident ( $($arg:expr),* )) => {{
        match $lvl {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a level is only run when `detected()` reports it (AVX-512F/BW/DQ/VL +
            // AVX2 + FMA); the dispatchers below assert the kernels' length preconditions.
            SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx512 => unsafe { avx512::$name($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX2 + FMA checked by `detected()`, any extra feature by `$avx2_ok`.
            SimdLevel::Avx2 | SimdLevel::Avx512 if crate::simd::detected() >= SimdLevel::Avx2 && $avx2_ok => unsafe { avx2::$name($($arg),*) },
            _ => scalar::$name($($arg),*),
        }
    }};
}

fn check_block(codes: &[u8], cs: usize, need: usize, out: &[f32]) {
    assert!(
        cs >= need && cs > 0,
        "sq kernel: code size {cs} < {need} bytes"
    );
    assert!(
        out.len() <= codes.len() / cs,
        "sq kernel: more outputs than codes"
    );
}

fn packed_bytes(d: usize, bits: usize) -> usize {
    assert!(
        (2..=4).contains(&bits),
        "sq kernel: bits {bits} not in 2..=4"
    );
    (d * bits).div_ceil(8)
}

/// `out[j] = Σ_i (qp[i] - s[i]·c_j[i])²` over 8-bit codes (one byte per dimension).
pub fn l2_u8_with(lvl: SimdLevel, qp: &[f32], s: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    assert_eq!(qp.len(), s.len(), "l2_u8: length mismatch");
    check_block(codes, cs, qp.len(), out);
    dispatch!(lvl, l2_u8(qp, s, codes, cs, out))
}

/// `out[j] = Σ_i w[i]·c_j[i]` over 8-bit codes.
pub fn dot_u8_with(lvl: SimdLevel, w: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    check_block(codes, cs, w.len(), out);
    dispatch!(lvl, dot_u8(w, codes, cs, out))
}

/// `out[j] = Σ_i (qp[i] - s[i]·lut[idx_j(i)])²` over LSB-first packed `bits`-bit codes
/// (`bits` in 2..=4; entries of `lut` past `2^bits` are never read).
#[allow(clippy::too_many_arguments)]
pub fn l2_packed_with(
    lvl: SimdLevel,
    bits: usize,
    qp: &[f32],
    s: &[f32],
    lut: &[f32; 16],
    codes: &[u8],
    cs: usize,
    out: &mut [f32],
) {
    assert_eq!(qp.len(), s.len(), "l2_packed: length mismatch");
    check_block(codes, cs, packed_bytes(qp.len(), bits), out);
    dispatch!(lvl, l2_packed(bits, qp, s, lut, codes, cs, out))
}

/// `out[j] = Σ_i w[i]·lut[idx_j(i)]` over packed `bits`-bit codes (`bits` in 2..=4).
pub fn dot_packed_with(
    lvl: SimdLevel,
    bits: usize,
    w: &[f32],
    lut: &[f32; 16],
    codes: &[u8],
    cs: usize,
    out: &mut [f32],
) {
    check_block(codes, cs, packed_bytes(w.len(), bits), out);
    dispatch!(lvl, dot_packed(bits, w, lut, codes, cs, out))
}

/// `out[j] = Σ_i (q[i] - h_j[i])²` over IEEE fp16 codes (2 bytes per dimension, little-endian).
/// The AVX2 level needs F16C too (else the scalar twin runs).
pub fn l2_f16_with(lvl: SimdLevel, q: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    check_block(codes, cs, 2 * q.len(), out);
    #[cfg(target_arch = "x86_64")]
    let ok = has_f16c();
    #[cfg(not(target_arch = "x86_64"))]
    let ok = false;
    dispatch!(lvl, ok, l2_f16(q, codes, cs, out))
}

/// `out[j] = Σ_i w[i]·h_j[i]` over fp16 codes (AVX2 level: needs F16C).
pub fn dot_f16_with(lvl: SimdLevel, w: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    check_block(codes, cs, 2 * w.len(), out);
    #[cfg(target_arch = "x86_64")]
    let ok = has_f16c();
    #[cfg(not(target_arch = "x86_64"))]
    let ok = false;
    dispatch!(lvl, ok, dot_f16(w, codes, cs, out))
}

/// `out[j] = Σ_i (q[i] - b_j[i])²` over bf16 codes (2 bytes per dimension, little-endian).
pub fn l2_bf16_with(lvl: SimdLevel, q: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    check_block(codes, cs, 2 * q.len(), out);
    dispatch!(lvl, l2_bf16(q, codes, cs, out))
}

/// `out[j] = Σ_i w[i]·b_j[i]` over bf16 codes.
pub fn dot_bf16_with(lvl: SimdLevel, w: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    check_block(codes, cs, 2 * w.len(), out);
    dispatch!(lvl, dot_bf16(w, codes, cs, out))
}
