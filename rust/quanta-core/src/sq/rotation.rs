//! Private stand-in for `crate::rotation::RandomRotation` (being landed on `main` separately):
//! the same API subset the rotated Lloyd-Max codec uses, and the same file layout (metadata
//! `{prefix}_seed`, f32 section `{prefix}`), so switching to the shared type is one `use` line.

use crate::distance::ip_tile;
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter, SharedSlice};
use crate::rng::Rng;
use faer::Mat;
use rayon::prelude::*;

/// Rows rotated per GEMM call.
const ROWS: usize = 1024;

/// A Haar-random `d × d` orthogonal matrix `R` (row-major): `y = R x`.
#[derive(Debug, Clone)]
pub struct RandomRotation {
    d: usize,
    seed: u64,
    matrix: SharedSlice<f32>,
}

impl RandomRotation {
    /// The Q factor of the QR decomposition of a seeded Gaussian matrix (Haar-distributed up
    /// to the sign convention of the Householder QR).
    pub fn new(d: usize, seed: u64) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("d must be >= 1"));
        }
        let mut rng = Rng::new(seed);
        let g = Mat::<f64>::from_fn(d, d, |_, _| rng.normal());
        let q = g.qr().compute_thin_Q();
        let m: Vec<f32> = (0..d * d).map(|k| q[(k % d, k / d)] as f32).collect();
        Ok(RandomRotation {
            d,
            seed,
            matrix: SharedSlice::from_vec(m),
        })
    }

    /// `out[i] = R x[i]` for the rows of `x` (n × d), in parallel over row tiles.
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        let d = self.d;
        assert!(
            x.len().is_multiple_of(d) && out.len() == x.len(),
            "rotation: sizes"
        );
        let lvl = crate::simd::level();
        out.par_chunks_mut(ROWS * d)
            .zip(x.par_chunks(ROWS * d))
            .for_each(|(o, xs)| ip_tile(lvl, xs, &self.matrix, d, o));
    }

    /// `R x` of one row, single-threaded (queries rotated inside a parallel search).
    pub fn apply_one(&self, x: &[f32], out: &mut [f32]) {
        assert!(x.len() == self.d && out.len() == self.d, "rotation: sizes");
        ip_tile(crate::simd::level(), x, &self.matrix, self.d, out);
    }

    /// `out[i] = Rᵀ y[i]` (the inverse rotation) for the rows of `y` (n × d).
    pub fn apply_inverse(&self, y: &[f32], out: &mut [f32]) {
        let d = self.d;
        assert!(
            y.len().is_multiple_of(d) && out.len() == y.len(),
            "rotation: sizes"
        );
        for (o, yr) in out.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
            o.fill(0.0);
            for (r, &v) in yr.iter().enumerate() {
                for (a, &b) in o.iter_mut().zip(&self.matrix[r * d..(r + 1) * d]) {
                    *a += v * b;
                }
            }
        }
    }

    /// Whether the matrix is a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.matrix.is_mapped()
    }

    /// Save as metadata `{prefix}_seed` and f32 section `{prefix}` (`d × d`).
    pub fn write_to<'a>(&'a self, w: &mut FileWriter<'a>, prefix: &str) {
        w.meta_u64(&format!("{prefix}_seed"), self.seed)
            .section_f32(prefix, &self.matrix);
    }

    /// Read what [`RandomRotation::write_to`] saved, for dimension `d` (rows checked to be
    /// orthonormal on a sample, so a corrupt file cannot make the estimator meaningless).
    pub fn read_from(r: &FileReader, prefix: &str, d: usize) -> Result<Self> {
        let seed = r.meta_u64(&format!("{prefix}_seed"))?;
        let m = r.section_f32(prefix)?;
        if d.checked_mul(d) != Some(m.len()) {
            return Err(r.err(format!(
                "section '{prefix}' holds {} values, expected d*d = {d}*{d}",
                m.len()
            )));
        }
        crate::distance::check_finite(&m, d, "rotation").map_err(|e| r.err(e))?;
        let rows: Vec<usize> = (0..d).step_by((d / 16).max(1)).collect();
        for &i in &rows {
            for &j in &rows {
                let dot: f64 = (0..d)
                    .map(|t| m[i * d + t] as f64 * m[j * d + t] as f64)
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                if (dot - want).abs() > 1e-3 {
                    return Err(r.err(format!("section '{prefix}' is not orthonormal")));
                }
            }
        }
        Ok(RandomRotation { d, seed, matrix: m })
    }
}
