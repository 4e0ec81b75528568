//! Scalar twin of the PQ table scan: the specification every SIMD variant must match bit for bit.
//!
//! Specialised for the common sub-quantizer counts (4, 8, 16, 32, 64): with `M` a constant the
//! compiler unrolls the inner loop completely and keeps both accumulators in registers.

use super::TABLE_STRIDE;

/// Sum one code's table entries in the fixed order (even m, odd m, then even + odd).
#[inline(always)]
fn one(table: &[f32], code: &[u8], m: usize) -> f32 {
    let mut even = 0.0f32;
    let mut odd = 0.0f32;
    let mut j = 0;
    while j + 1 < m {
        // `code[j] as usize < 256` and `table.len() == m * 256`: always in bounds; the
        // compiler sees `table` rows through `chunks_exact` only in the caller, so index plainly.
        even += table[j * TABLE_STRIDE + code[j] as usize];
        odd += table[(j + 1) * TABLE_STRIDE + code[j + 1] as usize];
        j += 2;
    }
    if j < m {
        even += table[j * TABLE_STRIDE + code[j] as usize];
    }
    even + odd
}

/// `out[i] = Σ_m table[m·256 + codes[i·m + m]]` (sizes checked by the dispatcher).
pub fn adc_block(table: &[f32], m: usize, codes: &[u8], out: &mut [f32]) {
    match m {
        4 => fixed::<4>(table, codes, out),
        8 => fixed::<8>(table, codes, out),
        16 => fixed::<16>(table, codes, out),
        32 => grouped::<32>(table, codes, out),
        64 => grouped::<64>(table, codes, out),
        _ => {
            for (o, code) in out.iter_mut().zip(codes.chunks_exact(m)) {
                *o = one(table, code, m);
            }
        }
    }
}

/// Codes per sub-block of [`grouped`]: its two partial-sum arrays (1 KiB) stay in L1.
const SUB: usize = 128;
/// Sub-quantizers per pass of [`grouped`]: 16 table rows are 16 KiB, half of a typical L1d.
const GROUP: usize = 16;

/// `M > 16`: the whole table (32 KiB at M = 32) would fill L1 and compete with the codes, so
/// sub-blocks of codes are scanned one group of 16 sub-quantizers at a time, carrying the even
/// and odd partial sums between groups — the same adds in the same order as [`one`].
#[inline(always)]
fn grouped<const M: usize>(table: &[f32], codes: &[u8], out: &mut [f32]) {
    let table: &[f32] = &table[..M * TABLE_STRIDE];
    let mut even = [0f32; SUB];
    let mut odd = [0f32; SUB];
    for (cs, os) in codes.chunks(SUB * M).zip(out.chunks_mut(SUB)) {
        let rows = os.len();
        even[..rows].fill(0.0);
        odd[..rows].fill(0.0);
        for g in 0..M / GROUP {
            let t = &table[g * GROUP * TABLE_STRIDE..(g + 1) * GROUP * TABLE_STRIDE];
            for ((code, e), o) in cs
                .chunks_exact(M)
                .zip(&mut even[..rows])
                .zip(&mut odd[..rows])
            {
                let c = &code[g * GROUP..(g + 1) * GROUP];
                let (mut ev, mut od) = (*e, *o);
                for (w, bytes) in c.chunks_exact(8).enumerate() {
                    let word = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                    let tw = &t[w * 8 * TABLE_STRIDE..(w + 1) * 8 * TABLE_STRIDE];
                    for b in (0..8).step_by(2) {
                        ev += tw[b * TABLE_STRIDE + ((word >> (8 * b)) & 0xFF) as usize];
                        od += tw[(b + 1) * TABLE_STRIDE + ((word >> (8 * b + 8)) & 0xFF) as usize];
                    }
                }
                *e = ev;
                *o = od;
            }
        }
        for ((dst, e), o) in os.iter_mut().zip(&even[..rows]).zip(&odd[..rows]) {
            *dst = e + o;
        }
    }
}

/// The same loop with `M` (a multiple of 4) known at compile time.
///
/// Code bytes are read as little-endian words (8 bytes when `M % 8 == 0`, else 4) and split
/// with shifts: one load per word instead of one per byte halves the load-port pressure, which
/// is what bounds this loop (the table lookups themselves are loads).
#[inline(always)]
fn fixed<const M: usize>(table: &[f32], codes: &[u8], out: &mut [f32]) {
    // a fixed-size view lets the bounds checks fold away: the largest index is
    // (M-1)·256 + 255 < M·256 = table.len()
    let table: &[f32] = &table[..M * TABLE_STRIDE];
    for (o, code) in out.iter_mut().zip(codes.chunks_exact(M)) {
        let mut even = 0.0f32;
        let mut odd = 0.0f32;
        if M.is_multiple_of(8) {
            for (w, bytes) in code.chunks_exact(8).enumerate() {
                let word = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                let t = &table[w * 8 * TABLE_STRIDE..(w + 1) * 8 * TABLE_STRIDE];
                for b in (0..8).step_by(2) {
                    even += t[b * TABLE_STRIDE + ((word >> (8 * b)) & 0xFF) as usize];
                    odd += t[(b + 1) * TABLE_STRIDE + ((word >> (8 * b + 8)) & 0xFF) as usize];
                }
            }
        } else {
            for (w, bytes) in code.chunks_exact(4).enumerate() {
                let word = u32::from_le_bytes(bytes.try_into().expect("4 bytes"));
                let t = &table[w * 4 * TABLE_STRIDE..(w + 1) * 4 * TABLE_STRIDE];
                for b in (0..4).step_by(2) {
                    even += t[b * TABLE_STRIDE + ((word >> (8 * b)) & 0xFF) as usize];
                    odd += t[(b + 1) * TABLE_STRIDE + ((word >> (8 * b + 8)) & 0xFF) as usize];
                }
            }
        }
        *o = even + odd;
    }
}

/// `out[c] = Σ_j x[j] · ct[j·nc + c]` for `nc = out.len()` columns of a transposed (dsub × nc)
/// codebook: the inner products of one sub-vector with every centroid (PQ encoding).
pub fn ip_transposed(x: &[f32], ct: &[f32], out: &mut [f32]) {
    let nc = out.len();
    out.fill(0.0);
    for (j, &xj) in x.iter().enumerate() {
        for (a, &c) in out.iter_mut().zip(&ct[j * nc..(j + 1) * nc]) {
            *a += xj * c;
        }
    }
}
