//! Scalar twin of the fast-scan kernels: the specification the SIMD variants match bit for bit.

use super::{block_bytes, lut_stride, BBS};

/// `out[q·nb·32 + b·32 + j] = Σ_m luts[q·stride + 16·m + code_bj[m]]` (sizes checked by the
/// dispatcher). Adds wrap, which never happens for `m2 <= MAX_M2`, nor past it for the
/// tables the quantizer builds (module docs).
pub fn accumulate(luts: &[u8], nq: usize, m2: usize, blocks: &[u8], out: &mut [u16]) {
    let bb = block_bytes(m2);
    let stride = lut_stride(m2);
    let nb = blocks.len() / bb;
    for q in 0..nq {
        let lut = &luts[q * stride..(q + 1) * stride];
        for (b, blk) in blocks.chunks_exact(bb).enumerate() {
            let o = &mut out[(q * nb + b) * BBS..(q * nb + b + 1) * BBS];
            o.fill(0);
            for (t, c) in lut.chunks_exact(16).zip(blk.chunks_exact(16)) {
                for j in 0..16 {
                    let lo = (c[j] & 0x0F) as usize;
                    let hi = (c[j] >> 4) as usize;
                    o[j] = o[j].wrapping_add(t[lo] as u16);
                    o[16 + j] = o[16 + j].wrapping_add(t[hi] as u16);
                }
            }
        }
    }
}

/// Positions with `d[i] <= thr`, in order, into `idx`; returns how many.
pub fn filter_le(d: &[u16], thr: u16, idx: &mut [u32]) -> usize {
    let mut n = 0;
    for (i, &v) in d.iter().enumerate() {
        if v <= thr {
            idx[n] = i as u32;
            n += 1;
        }
    }
    n
}

/// Quantize one float table into u8 (`crate::fastscan` module docs, faiss
/// `round_uint8_per_column`): entry `(m, j)` is `t[m·stride + j] (+ p[m·stride + j])`, plus
/// `key0` in row 0, for `j < 16`; writes rows `0..m` of `lut` (`m = t.len() / stride`) and
/// returns `(a, β)`. The SIMD variants do the same float operations in the same order. Past
/// [`MAX_M2`](super::MAX_M2) rows, `a` is fitted to u16 ([`fit_u16`](super::fit_u16)).
pub fn quantize(
    t: &[f32],
    p: Option<&[f32]>,
    key0: f32,
    stride: usize,
    lut: &mut [u8],
) -> (f32, f32) {
    let m = t.len() / stride;
    if m <= super::MAX_M2 {
        let mut mins = [0f32; super::MAX_M2];
        quantize_in(t, p, key0, stride, lut, &mut mins, None)
    } else {
        let (mut mins, mut spans) = (vec![0f32; m], vec![0f32; m]);
        quantize_in(t, p, key0, stride, lut, &mut mins, Some(&mut spans))
    }
}

/// [`quantize`] with the row minima in `mins` (at least `m` long) and, for wide tables, the
/// row spans in `spans` (`m` long).
fn quantize_in(
    t: &[f32],
    p: Option<&[f32]>,
    key0: f32,
    stride: usize,
    lut: &mut [u8],
    mins: &mut [f32],
    mut spans: Option<&mut [f32]>,
) -> (f32, f32) {
    let m = t.len() / stride;
    let entry = |mm: usize, j: usize| {
        let i = mm * stride + j;
        let v = match p {
            Some(p) => t[i] + p[i],
            None => t[i],
        };
        if mm == 0 {
            v + key0
        } else {
            v
        }
    };
    let mut span = 0f32;
    for (mm, lo_out) in mins.iter_mut().enumerate().take(m) {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        for j in 0..16 {
            let v = entry(mm, j);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        *lo_out = lo;
        if let Some(s) = spans.as_deref_mut() {
            s[mm] = hi - lo;
        }
        span = span.max(hi - lo);
    }
    let mut a = if span > 0.0 { 255.0 / span } else { 1.0 };
    if let Some(s) = spans {
        a = super::fit_u16(a, s);
    }
    let mut b = 0f32;
    for (mm, &lo) in mins.iter().enumerate().take(m) {
        b += lo;
        for j in 0..16 {
            // (v − μ)·a + 0.5 >= 0, so the saturating cast is floor + clamp to 255
            lut[16 * mm + j] = ((entry(mm, j) - lo) * a + 0.5) as u8;
        }
    }
    (a, b)
}
