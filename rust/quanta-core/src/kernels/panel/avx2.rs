//! AVX2 + FMA variant of the panel kernel. Only called through `mod.rs`.

use super::{MR, NR};
use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA; `1 <= rows <= MR`, `x.len() >= rows·d`,
/// `panel.len() == d·NR`, `ldo >= NR`, `out.len() >= (rows-1)·ldo + NR` (checked by `mod.rs`).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn ip_rows_panel(
    x: &[f32],
    rows: usize,
    d: usize,
    panel: &[f32],
    out: &mut [f32],
    ldo: usize,
) {
    const { assert!(NR == 16) };
    match rows {
        6 => block::<6>(x, d, panel, out, ldo),
        5 => block::<5>(x, d, panel, out, ldo),
        4 => block::<4>(x, d, panel, out, ldo),
        3 => block::<3>(x, d, panel, out, ldo),
        2 => block::<2>(x, d, panel, out, ldo),
        _ => block::<1>(x, d, panel, out, ldo),
    }
}

/// `R` rows × 16 columns, two 8-lane accumulators per row, over the whole inner dimension.
///
/// # Safety
/// As [`ip_rows_panel`] with `rows == R <= MR`.
#[target_feature(enable = "avx2,fma")]
unsafe fn block<const R: usize>(x: &[f32], d: usize, panel: &[f32], out: &mut [f32], ldo: usize) {
    debug_assert!(R <= MR);
    let px = x.as_ptr();
    let pp = panel.as_ptr();
    let mut lo = [_mm256_setzero_ps(); R];
    let mut hi = [_mm256_setzero_ps(); R];
    for t in 0..d {
        let b0 = _mm256_loadu_ps(pp.add(t * NR));
        let b1 = _mm256_loadu_ps(pp.add(t * NR + 8));
        for r in 0..R {
            let a = _mm256_broadcast_ss(&*px.add(r * d + t));
            lo[r] = _mm256_fmadd_ps(a, b0, lo[r]);
            hi[r] = _mm256_fmadd_ps(a, b1, hi[r]);
        }
    }
    let po = out.as_mut_ptr();
    for r in 0..R {
        _mm256_storeu_ps(po.add(r * ldo), lo[r]);
        _mm256_storeu_ps(po.add(r * ldo + 8), hi[r]);
    }
}
