//! AVX-512 PQ table scan: 16 codes per step, code bytes fetched 4 at a time with one 32-bit gather
//! per lane, table entries with `vgatherdps`. Lanes are codes; per lane the adds follow the
//! scalar order exactly (even-m accumulator, odd-m accumulator, then their sum).

use super::TABLE_STRIDE;
use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX-512F; `m.is_multiple_of(4)`, `table.len() == m·256`, `codes.len() == out.len()·m`.
#[target_feature(enable = "avx512f")]
pub unsafe fn adc_block(table: &[f32], m: usize, codes: &[u8], out: &mut [f32]) {
    debug_assert!(
        m.is_multiple_of(4) && table.len() == m * TABLE_STRIDE && codes.len() == out.len() * m
    );
    let n = out.len();
    let tp = table.as_ptr();
    let mask = _mm512_set1_epi32(0xFF);
    // lane l reads the code of row i + l: byte offsets l·m
    let row_off = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(m as i32),
    );
    let mut i = 0;
    while i + 16 <= n {
        let base = codes.as_ptr().add(i * m);
        let mut even = _mm512_setzero_ps();
        let mut odd = _mm512_setzero_ps();
        let mut j = 0;
        while j < m {
            // bytes j..j+4 of the 16 codes; j + 3 < m keeps every read inside the 16 rows
            let w = _mm512_i32gather_epi32::<1>(row_off, base.add(j) as *const _);
            let t = tp.add(j * TABLE_STRIDE);
            let i0 = _mm512_and_si512(w, mask);
            let i1 = _mm512_add_epi32(
                _mm512_and_si512(_mm512_srli_epi32::<8>(w), mask),
                _mm512_set1_epi32(TABLE_STRIDE as i32),
            );
            let i2 = _mm512_add_epi32(
                _mm512_and_si512(_mm512_srli_epi32::<16>(w), mask),
                _mm512_set1_epi32(2 * TABLE_STRIDE as i32),
            );
            let i3 = _mm512_add_epi32(
                _mm512_srli_epi32::<24>(w),
                _mm512_set1_epi32(3 * TABLE_STRIDE as i32),
            );
            even = _mm512_add_ps(even, _mm512_i32gather_ps::<4>(i0, t as *const _));
            odd = _mm512_add_ps(odd, _mm512_i32gather_ps::<4>(i1, t as *const _));
            even = _mm512_add_ps(even, _mm512_i32gather_ps::<4>(i2, t as *const _));
            odd = _mm512_add_ps(odd, _mm512_i32gather_ps::<4>(i3, t as *const _));
            j += 4;
        }
        _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_add_ps(even, odd));
        i += 16;
    }
    if i < n {
        super::scalar::adc_block(table, m, &codes[i * m..], &mut out[i..]);
    }
}

/// Inner products of `x` with the columns of a transposed (dsub × nc) codebook, 128 columns at
/// a time in 8 zmm accumulators.
///
/// # Safety
/// The CPU must support AVX-512F; `ct.len() == x.len() · out.len()`.
#[target_feature(enable = "avx512f")]
pub unsafe fn ip_transposed(x: &[f32], ct: &[f32], out: &mut [f32]) {
    let nc = out.len();
    debug_assert_eq!(ct.len(), x.len() * nc);
    let cp = ct.as_ptr();
    let op = out.as_mut_ptr();
    let mut c0 = 0;
    while c0 + 128 <= nc {
        let mut acc = [_mm512_setzero_ps(); 8];
        for (j, &xj) in x.iter().enumerate() {
            let xv = _mm512_set1_ps(xj);
            let row = cp.add(j * nc + c0);
            for (u, a) in acc.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(16 * u)), *a);
            }
        }
        for (u, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(op.add(c0 + 16 * u), *a);
        }
        c0 += 128;
    }
    while c0 + 16 <= nc {
        let mut a = _mm512_setzero_ps();
        for (j, &xj) in x.iter().enumerate() {
            a = _mm512_fmadd_ps(_mm512_set1_ps(xj), _mm512_loadu_ps(cp.add(j * nc + c0)), a);
        }
        _mm512_storeu_ps(op.add(c0), a);
        c0 += 16;
    }
    for c in c0..nc {
        let mut a = 0.0f32;
        for (j, &xj) in x.iter().enumerate() {
            a = xj.mul_add(*cp.add(j * nc + c), a);
        }
        *op.add(c) = a;
    }
}
