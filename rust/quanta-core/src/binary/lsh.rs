//! LSH by random projections (sign-random-projection / SimHash; faiss `IndexLSH` codes).
//!
//! `bit_j(x) = [<x − μ, w_j> − t_j > 0]` with `w_j` seeded Gaussian (`Gaussian`) or the
//! orthonormalized Gaussian columns (`Orthogonal`, faiss's random rotation; needs `nbits <= d`).
//! `μ` is the training mean when `center` (else 0) and `t_j` the per-bit median of the training
//! projections when `train_thresholds` (else 0). With neither, no training is needed.

use super::linalg::random_orthonormal;
use super::{column_mean, linear_sign_encode};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// How the projection directions are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// i.i.d. N(0, 1) entries.
    Gaussian,
    /// Orthonormal directions (QR of a Gaussian matrix), `nbits <= d` only.
    Orthogonal,
}

impl Projection {
    /// Parse "gaussian" / "orthogonal" / "auto" (orthogonal when `nbits <= d`).
    pub fn parse(s: &str, d: usize, nbits: usize) -> Result<Self> {
        match s {
            "gaussian" => Ok(Projection::Gaussian),
            "orthogonal" => Ok(Projection::Orthogonal),
            "auto" => Ok(if nbits <= d {
                Projection::Orthogonal
            } else {
                Projection::Gaussian
            }),
            other => Err(Error::invalid(format!(
                "projection must be 'auto', 'orthogonal' or 'gaussian', got {other:?}"
            ))),
        }
    }

    /// Name as accepted by [`Projection::parse`].
    pub fn name(self) -> &'static str {
        match self {
            Projection::Gaussian => "gaussian",
            Projection::Orthogonal => "orthogonal",
        }
    }
}

/// Random-projection LSH encoder.
#[derive(Debug, Clone)]
pub struct Lsh {
    d: usize,
    nbits: usize,
    projection: Projection,
    center: bool,
    train_thresholds: bool,
    /// `nbits × d` row-major projection directions.
    w: Vec<f32>,
    mean: Vec<f32>,
    thresholds: Vec<f32>,
    /// `<μ, w_j> + t_j`, the per-bit offset used by `encode`.
    offset: Vec<f32>,
    trained: bool,
}

impl Lsh {
    /// New encoder; directions are drawn from `seed` now.
    pub fn new(
        d: usize,
        nbits: usize,
        seed: u64,
        projection: Projection,
        center: bool,
        train_thresholds: bool,
    ) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("d must be >= 1"));
        }
        if nbits == 0 {
            return Err(Error::invalid("nbits must be >= 1"));
        }
        if projection == Projection::Orthogonal && nbits > d {
            return Err(Error::invalid(format!(
                "projection 'orthogonal' needs nbits <= d, got nbits={nbits} > d={d}"
            )));
        }
        let w64 = match projection {
            Projection::Orthogonal => random_orthonormal(d, nbits, seed),
            Projection::Gaussian => {
                let mut r = Rng::new(seed);
                (0..d * nbits).map(|_| r.normal()).collect()
            }
        };
        // stored as nbits rows of d (column j of the d × nbits matrix is w_j)
        let mut w = vec![0f32; nbits * d];
        for i in 0..d {
            for j in 0..nbits {
                w[j * d + i] = w64[i * nbits + j] as f32;
            }
        }
        Ok(Lsh {
            d,
            nbits,
            projection,
            center,
            train_thresholds,
            w,
            mean: vec![0.0; d],
            thresholds: vec![0.0; nbits],
            offset: vec![0.0; nbits],
            trained: !center && !train_thresholds,
        })
    }

    /// Input dimension.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Bits per code.
    pub fn nbits(&self) -> usize {
        self.nbits
    }
    /// Projection kind.
    pub fn projection(&self) -> Projection {
        self.projection
    }
    /// Whether the training mean is subtracted.
    pub fn center(&self) -> bool {
        self.center
    }
    /// Whether thresholds are trained (medians).
    pub fn train_thresholds(&self) -> bool {
        self.train_thresholds
    }
    /// Whether `encode` may be called.
    pub fn is_trained(&self) -> bool {
        self.trained
    }
    /// `nbits × d` projection directions (row j = w_j).
    pub fn directions(&self) -> &[f32] {
        &self.w
    }
    /// Training mean (zeros unless `center`).
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }
    /// Per-bit thresholds (zeros unless `train_thresholds`).
    pub fn thresholds(&self) -> &[f32] {
        &self.thresholds
    }

    /// Learn the mean and/or the thresholds from `x` (n × d, n >= 1).
    pub fn train(&mut self, x: &[f32]) -> Result<()> {
        let n = crate::validate::check_batch(x, self.d, "x")?;
        if n == 0 {
            return Err(Error::shape("x is empty (0 rows)"));
        }
        let d = self.d;
        let mean: Vec<f32> = if self.center {
            column_mean(x, d).into_iter().map(|v| v as f32).collect()
        } else {
            vec![0.0; d]
        };
        let mw: Vec<f32> = (0..self.nbits)
            .map(|j| dot64(&mean, &self.w[j * d..(j + 1) * d]) as f32)
            .collect();
        let mut thresholds = vec![0f32; self.nbits];
        if self.train_thresholds {
            // projections of the (centred) training data, per bit, then the median
            let mut proj = vec![0f32; n * self.nbits];
            crate::distance::ip_tile(crate::simd::level(), x, &self.w, d, &mut proj);
            let mut col = vec![0f32; n];
            for (j, t) in thresholds.iter_mut().enumerate() {
                for (i, c) in col.iter_mut().enumerate() {
                    *c = proj[i * self.nbits + j] - mw[j];
                }
                col.sort_unstable_by(|a, b| a.total_cmp(b));
                *t = if n % 2 == 1 {
                    col[n / 2]
                } else {
                    0.5 * (col[n / 2 - 1] + col[n / 2])
                };
            }
        }
        self.offset = mw.iter().zip(&thresholds).map(|(m, t)| m + t).collect();
        self.mean = mean;
        self.thresholds = thresholds;
        self.trained = true;
        Ok(())
    }

    /// Packed codes (n × ceil(nbits/8)).
    pub fn encode(&self, x: &[f32]) -> Result<Vec<u8>> {
        if !self.trained {
            return Err(Error::NotTrained("LSH"));
        }
        linear_sign_encode(x, self.d, &self.w, &self.offset, "x")
    }
}

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collision_probability_is_angle_over_pi() {
        // two fixed unit vectors at 60°: P[bit differs] = 1/3 over random directions
        let d = 16;
        let mut x = vec![0f32; 2 * d];
        x[0] = 1.0;
        x[d] = 0.5;
        x[d + 1] = (3f32).sqrt() / 2.0;
        let lsh = Lsh::new(d, 4096, 7, Projection::Gaussian, false, false).unwrap();
        let c = lsh.encode(&x).unwrap();
        let cs = 512;
        let h = crate::kernels::hamming::scalar::hamming(&c[..cs], &c[cs..]);
        let p = h as f64 / 4096.0;
        assert!((p - 1.0 / 3.0).abs() < 0.03, "p={p}");
    }

    #[test]
    fn medians_split_training_data() {
        let mut r = Rng::new(4);
        let (n, d, nbits) = (1001, 8, 8);
        let x: Vec<f32> = (0..n * d).map(|_| r.normal() as f32 + 3.0).collect();
        let mut lsh = Lsh::new(d, nbits, 1, Projection::Orthogonal, true, true).unwrap();
        assert!(lsh.encode(&x).is_err());
        lsh.train(&x).unwrap();
        let c = lsh.encode(&x).unwrap();
        for j in 0..nbits {
            let ones = c.iter().filter(|&&b| (b >> j) & 1 == 1).count();
            // the median row itself gives 0 (strict >): exactly (n - 1) / 2 ones, up to rounding
            assert!((ones as i64 - 500).abs() <= 2, "bit {j}: {ones}");
        }
        assert!(Lsh::new(4, 5, 0, Projection::Orthogonal, false, false).is_err());
    }
}
