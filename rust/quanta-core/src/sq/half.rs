//! f32 → fp16 / bf16 encoding (the decoders are kernel scalar twins,
//! `kernels::sq::scalar::{f16_to_f32, bf16_to_f32}`).
//!
//! Both round to nearest, ties to even, and saturate at the largest finite value: an index
//! never stores ±inf (its search would return inf/NaN distances), and inputs are finite.
//! faiss's fp16 encoder also rounds to nearest (and overflows to inf); its bf16 encoder
//! truncates, so quanta's bf16 codes may differ from faiss's in the last bit (half the error).

/// Largest finite half.
const F16_MAX: f32 = 65504.0;

/// `x` (finite) as an IEEE binary16, rounded to nearest even, saturated at ±65504.
pub fn f32_to_f16(x: f32) -> u16 {
    let x = x.clamp(-F16_MAX, F16_MAX);
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & 0x7fff_ffff;
    if a >= 0x3880_0000 {
        // normal half (|x| >= 2^-14): rebias the exponent by 127 − 15 and round away 13 bits;
        // a carry out of the mantissa correctly bumps the exponent
        let m = a - (112 << 23);
        let r = (m + 0x0fff + ((m >> 13) & 1)) >> 13;
        sign | r as u16
    } else {
        // subnormal half: the integer mantissa is |x|·2^24 (exact in f32), rounded half-even;
        // 1024 is the encoding of the smallest normal, which is right
        let r = (f32::from_bits(a) * 16_777_216.0).round_ties_even();
        sign | r as u16
    }
}

/// `x` (finite) as a bfloat16, rounded to nearest even, saturated at ±3.3895e38.
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    let r = ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    if r & 0x7fff == 0x7f80 {
        // rounded up to infinity from a finite value
        (r & 0x8000) | 0x7f7f
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::sq::scalar::{bf16_to_f32, f16_to_f32};

    #[test]
    fn every_half_round_trips_and_rounding_is_nearest() {
        for h in 0..=u16::MAX {
            let v = f16_to_f32(h);
            if v.is_finite() && !(v == 0.0 && h == 0x8000) {
                assert_eq!(f32_to_f16(v), h, "{h:#x} {v}");
            }
            let b = bf16_to_f32(h);
            if b.is_finite() {
                assert_eq!(f32_to_bf16(b), h, "bf16 {h:#x}");
            }
        }
        assert_eq!(f32_to_f16(-0.0), 0x8000);
        assert_eq!(f16_to_f32(f32_to_f16(1e6)), 65504.0);
        assert_eq!(f16_to_f32(f32_to_f16(-1e6)), -65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        // ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert!(bf16_to_f32(f32_to_bf16(f32::MAX)).is_finite());
        // nearest: the error is at most half an ulp
        let x = 0.1f32;
        assert!((f16_to_f32(f32_to_f16(x)) - x).abs() <= 2f32.powi(-15));
        assert!((bf16_to_f32(f32_to_bf16(x)) - x).abs() <= 2f32.powi(-12));
    }
}
