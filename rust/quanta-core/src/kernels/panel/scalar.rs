//! Scalar twin of the panel kernel: the reference semantics (see `mod.rs`).

use super::NR;

/// `out[r·ldo + c] = Σ_t x[r·d + t] · panel[t·NR + c]`, summed in increasing `t`.
pub fn ip_rows_panel(x: &[f32], rows: usize, d: usize, panel: &[f32], out: &mut [f32], ldo: usize) {
    for r in 0..rows {
        let xr = &x[r * d..(r + 1) * d];
        let o = &mut out[r * ldo..r * ldo + NR];
        o.fill(0.0);
        for (t, &xv) in xr.iter().enumerate() {
            for (a, &p) in o.iter_mut().zip(&panel[t * NR..(t + 1) * NR]) {
                *a += xv * p;
            }
        }
    }
}
