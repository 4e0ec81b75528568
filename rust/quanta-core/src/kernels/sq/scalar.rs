//! Scalar twins of the scalar-quantizer kernels: the reference semantics.
//!
//! Every kernel reads one code of `cs` bytes per output and never decodes it to a buffer. Sums
//! use 8 accumulators (lane `i mod 8` of each full group of 8 dimensions) combined pairwise,
//! plus a tail sum over the last `d mod 8` dimensions: the association of the AVX2 variants,
//! so the two differ only by FMA rounding.

/// Exact IEEE binary16 → binary32 (every half is representable as a float).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // subnormal half: value = man · 2^-24, normalised into a float exponent
            let p = 31 - man.leading_zeros(); // position of the leading 1, 0..=9
            let m = (man << (23 - p)) & 0x7f_ffff;
            sign | ((p + 103) << 23) | m
        }
        0x1f => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// bf16 → f32: the high half of the float's bits.
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Index of dimension `i` in an LSB-first bit stream of `bits`-bit fields (`bits` in 1..=8).
#[inline]
pub fn packed_index(code: &[u8], bits: usize, i: usize) -> usize {
    let bit = i * bits;
    let (byte, sh) = (bit / 8, bit % 8);
    let lo = code[byte] as u32;
    // a field straddles two bytes only when it does not fit in the rest of the first one
    let w = if sh + bits > 8 {
        lo | ((code[byte + 1] as u32) << 8)
    } else {
        lo
    };
    ((w >> sh) & ((1u32 << bits) - 1)) as usize
}

#[inline]
fn reduce8(a: [f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// The shared loop: `f(i, acc_in) -> acc_out` per dimension, lane `i mod 8` for full groups.
#[inline(always)]
fn lanes(d: usize, mut term: impl FnMut(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let full = d / 8 * 8;
    for g in (0..full).step_by(8) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += term(g + l);
        }
    }
    let mut tail = 0.0f32;
    for i in full..d {
        tail += term(i);
    }
    reduce8(acc) + tail
}

/// `out[j] = Σ_i (qp[i] - s[i]·c_j[i])²` over 8-bit codes `c_j` (d bytes each, stride `cs`).
pub fn l2_u8(qp: &[f32], s: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        *o = lanes(qp.len(), |i| {
            let t = qp[i] - s[i] * c[i] as f32;
            t * t
        });
    }
}

/// `out[j] = Σ_i w[i]·c_j[i]` over 8-bit codes.
pub fn dot_u8(w: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        *o = lanes(w.len(), |i| w[i] * c[i] as f32);
    }
}

/// `out[j] = Σ_i (qp[i] - s[i]·lut[idx_j(i)])²` over `bits`-bit packed codes (`bits` in 2..=4).
pub fn l2_packed(
    bits: usize,
    qp: &[f32],
    s: &[f32],
    lut: &[f32; 16],
    codes: &[u8],
    cs: usize,
    out: &mut [f32],
) {
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        *o = lanes(qp.len(), |i| {
            let t = qp[i] - s[i] * lut[packed_index(c, bits, i)];
            t * t
        });
    }
}

/// `out[j] = Σ_i w[i]·lut[idx_j(i)]` over `bits`-bit packed codes (`bits` in 2..=4).
pub fn dot_packed(
    bits: usize,
    w: &[f32],
    lut: &[f32; 16],
    codes: &[u8],
    cs: usize,
    out: &mut [f32],
) {
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        *o = lanes(w.len(), |i| w[i] * lut[packed_index(c, bits, i)]);
    }
}

#[inline(always)]
fn half(c: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([c[2 * i], c[2 * i + 1]])
}

/// `out[j] = Σ_i (q[i] - h_j[i])²` over fp16 codes (little-endian halves).
pub fn l2_f16(q: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        *o = lanes(q.len(), |i| {
            let t = q[i] - f16_to_f32(half(c, i));
            t * t
        });
    }
}

/// `out[j] = Σ_i w[i]·h_j[i]` over fp16 codes.
pub fn dot_f16(w: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        *o = lanes(w.len(), |i| w[i] * f16_to_f32(half(c, i)));
    }
}

/// `out[j] = Σ_i (q[i] - b_j[i])²` over bf16 codes.
pub fn l2_bf16(q: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        *o = lanes(q.len(), |i| {
            let t = q[i] - bf16_to_f32(half(c, i));
            t * t
        });
    }
}

/// `out[j] = Σ_i w[i]·b_j[i]` over bf16 codes.
pub fn dot_bf16(w: &[f32], codes: &[u8], cs: usize, out: &mut [f32]) {
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        *o = lanes(w.len(), |i| w[i] * bf16_to_f32(half(c, i)));
    }
}
