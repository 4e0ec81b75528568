//! Seeded random orthogonal rotations, the first step of the training-free rotation codecs
//! (RaBitQ, rotated Lloyd-Max scalar codes).
//!
//! Why a rotation: after multiplying by a Haar-random orthogonal matrix, the coordinates of a
//! unit vector are exchangeable and each is distributed as a coordinate of a uniform point on
//! the sphere (≈ N(0, 1/d)), whatever the data looked like. A per-coordinate quantizer built for
//! that one distribution is then near-optimal for every vector, without training, and the
//! quantization errors of different coordinates are (nearly) independent — which is what makes
//! RaBitQ's estimator unbiased and its error bound hold.
//!
//! Why dense (d × d) and not a randomized Hadamard transform: no padding of `d` to a power of
//! two (384 and 768 are not), exactly Haar-distributed (the bound's derivation assumes it), and
//! one GEMM per batch rotates queries and vectors at tens of GFLOP/s. Encoding pays d² flops per
//! vector (0.15 MFLOP at d = 384), small beside the scan of a large base.
//!
//! The matrix is stored (not regenerated from the seed on load): files must read back the same
//! rotation whatever linear-algebra library version computes the QR decomposition.

use crate::distance::ip_tile;
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter, SharedSlice};
use crate::rng::Rng;
use faer::Mat;
use rayon::prelude::*;

/// Rows rotated per GEMM call (one tile of `ip_tile`).
const ROWS: usize = 1024;

/// A `d × d` orthogonal matrix `R` (row-major, rows orthonormal): `y = R x`.
#[derive(Debug, Clone)]
pub struct RandomRotation {
    d: usize,
    seed: u64,
    matrix: SharedSlice<f32>,
}

/// Rows `d_out` of a Haar-random `d_in`-column matrix with orthonormal rows (the thin Q of the
/// QR decomposition of a Gaussian matrix; sign-fixed by faer's Householder convention).
pub fn random_orthonormal_rows(d_out: usize, d_in: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let g = Mat::<f64>::from_fn(d_in, d_out, |_, _| rng.normal());
    let q = g.qr().compute_thin_Q(); // d_in × d_out, orthonormal columns
    let mut out = vec![0f32; d_out * d_in];
    for i in 0..d_out {
        for j in 0..d_in {
            out[i * d_in + j] = q[(j, i)] as f32;
        }
    }
    out
}

impl RandomRotation {
    /// A Haar-random rotation of `R^d` drawn from `seed` (O(d³) once: 0.1 s at d = 1536).
    pub fn new(d: usize, seed: u64) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("d must be >= 1"));
        }
        Ok(RandomRotation {
            d,
            seed,
            matrix: SharedSlice::from_vec(random_orthonormal_rows(d, d, seed)),
        })
    }

    /// A rotation from an explicit matrix (`d × d`, rows orthonormal within 1e-3).
    pub fn from_matrix(d: usize, seed: u64, matrix: SharedSlice<f32>) -> Result<Self> {
        if d == 0 || matrix.len() != d * d {
            return Err(Error::shape(format!(
                "rotation matrix has {} values, expected d*d = {d}*{d}",
                matrix.len()
            )));
        }
        crate::distance::check_finite(&matrix, d, "rotation")?;
        // Orthonormality: a sampled check of rows (all pairs would be O(d³) on every load).
        let rows: Vec<usize> = (0..d).step_by((d / 16).max(1)).collect();
        for &i in &rows {
            for &j in &rows {
                let dot: f64 = (0..d)
                    .map(|t| matrix[i * d + t] as f64 * matrix[j * d + t] as f64)
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                if (dot - want).abs() > 1e-3 {
                    return Err(Error::invalid(
                        "rotation matrix rows must be orthonormal (R Rᵀ = I within 1e-3)",
                    ));
                }
            }
        }
        Ok(RandomRotation { d, seed, matrix })
    }

    /// Dimension.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Seed it was drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// `R`, row-major `d × d`.
    pub fn matrix(&self) -> &[f32] {
        &self.matrix
    }
    /// Whether the matrix is a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.matrix.is_mapped()
    }

    /// `out[i] = R x[i]` for the rows of `x` (n × d), in parallel over row tiles.
    /// Panics if `x.len()` is not a multiple of `d` or `out.len() != x.len()`.
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
        out.par_chunks_mut(d)
            .zip(y.par_chunks(d))
            .for_each(|(o, yr)| {
                o.fill(0.0);
                for (r, &v) in yr.iter().enumerate() {
                    for (a, &b) in o.iter_mut().zip(&self.matrix[r * d..(r + 1) * d]) {
                        *a += v * b;
                    }
                }
            });
    }

    /// Save as metadata `{prefix}_seed` and f32 section `{prefix}` (`d × d`).
    pub fn write_to<'a>(&'a self, w: &mut FileWriter<'a>, prefix: &str) {
        w.meta_u64(&format!("{prefix}_seed"), self.seed)
            .section_f32(prefix, &self.matrix);
    }

    /// Read what [`RandomRotation::write_to`] saved, for dimension `d`.
    pub fn read_from(r: &FileReader, prefix: &str, d: usize) -> Result<Self> {
        let seed = r.meta_u64(&format!("{prefix}_seed"))?;
        let m = r.section_f32(prefix)?;
        if d.checked_mul(d) != Some(m.len()) {
            return Err(r.err(format!(
                "section '{prefix}' holds {} values, expected d*d = {d}*{d}",
                m.len()
            )));
        }
        RandomRotation::from_matrix(d, seed, m).map_err(|e| r.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_and_inverse_round_trips() {
        let d = 37;
        let r = RandomRotation::new(d, 7).unwrap();
        let mut g = Rng::new(3);
        let x: Vec<f32> = (0..5 * d).map(|_| g.normal() as f32).collect();
        let mut y = vec![0f32; x.len()];
        r.apply(&x, &mut y);
        let mut back = vec![0f32; x.len()];
        r.apply_inverse(&y, &mut back);
        for (a, b) in x.iter().zip(&back) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        // norms preserved
        for (xr, yr) in x.chunks(d).zip(y.chunks(d)) {
            let nx: f32 = xr.iter().map(|v| v * v).sum();
            let ny: f32 = yr.iter().map(|v| v * v).sum();
            assert!((nx - ny).abs() < 1e-3 * nx);
        }
        let mut one = vec![0f32; d];
        r.apply_one(&x[..d], &mut one);
        assert_eq!(&one[..], &y[..d]);
        // same seed, same matrix; another seed, another matrix
        assert_eq!(RandomRotation::new(d, 7).unwrap().matrix(), r.matrix());
        assert_ne!(RandomRotation::new(d, 8).unwrap().matrix(), r.matrix());
    }

    #[test]
    fn rejects_bad_matrices() {
        assert!(RandomRotation::new(0, 1).is_err());
        let bad = SharedSlice::from_vec(vec![1.0f32; 4]);
        assert!(RandomRotation::from_matrix(2, 0, bad).is_err());
        let short = SharedSlice::from_vec(vec![1.0f32; 3]);
        assert!(RandomRotation::from_matrix(2, 0, short).is_err());
    }
}
