//! Scalar twin of the fast-scan kernels: the specification the SIMD variants match bit for bit.

use super::{block_bytes, lut_stride, BBS};

/// `out[q·nb·32 + b·32 + j] = Σ_m luts[q·stride + 16·m + code_bj[m]]` (sizes checked by the
/// dispatcher). Adds wrap, which never happens for `m2 <= MAX_M2` (module docs).
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
