//! ITQ — Iterative Quantization (Gong & Lazebnik, CVPR 2011); faiss `ITQTransform` semantics.
//!
//! 1. `μ = mean(x)`, `V = (x − μ) P` with `P` the top-`nbits` covariance eigenvectors
//!    (descending eigenvalue, sign-normalized: largest-magnitude component positive).
//! 2. `R_0` = seeded random orthogonal `nbits × nbits`.
//! 3. `niter` times: `B = sgn(V R)` (sgn(0) := +1), `R = argmin_R ‖B − V R‖_F` (orthogonal
//!    Procrustes via SVD of `Vᵀ B`).
//! 4. Encode: `bits = [(x − μ) P R > 0]`.
//!
//! The quantization loss `‖B − V R‖²_F` is recorded before each update and once at the end; it
//! is non-increasing (each half-step minimizes it over one variable). Linear algebra in f64.

use super::linalg::{matmul, matmul_tn, procrustes, random_orthonormal, top_eig};
use super::{column_mean, linear_sign_encode};
use crate::control::Control;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Rows per partial covariance (fixed, so the sum order does not depend on the thread count).
const COV_ROWS: usize = 4096;

/// ITQ encoder.
#[derive(Debug, Clone)]
pub struct Itq {
    d: usize,
    nbits: usize,
    niter: usize,
    seed: u64,
    mean: Vec<f32>,
    /// `nbits × d` row-major: row j = column j of `P R`.
    w: Vec<f32>,
    offset: Vec<f32>,
    losses: Vec<f64>,
    eigenvalues: Vec<f64>,
    trained: bool,
}

impl Itq {
    /// New, untrained encoder (`1 <= nbits <= d`).
    pub fn new(d: usize, nbits: usize, niter: usize, seed: u64) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("d must be >= 1"));
        }
        if nbits == 0 || nbits > d {
            return Err(Error::invalid(format!(
                "nbits must be in 1..=d={d} (ITQ projects onto nbits principal components), got {nbits}"
            )));
        }
        Ok(Itq {
            d,
            nbits,
            niter,
            seed,
            mean: Vec::new(),
            w: Vec::new(),
            offset: Vec::new(),
            losses: Vec::new(),
            eigenvalues: Vec::new(),
            trained: false,
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
    /// Iterations.
    pub fn niter(&self) -> usize {
        self.niter
    }
    /// Whether `encode` may be called.
    pub fn is_trained(&self) -> bool {
        self.trained
    }
    /// Quantization loss `‖B − V R‖²_F` before each iteration and after the last (niter + 1).
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }
    /// Top `nbits` covariance eigenvalues (descending).
    pub fn eigenvalues(&self) -> &[f64] {
        &self.eigenvalues
    }
    /// Training mean.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }
    /// `nbits × d` row-major projection `(P R)ᵀ`.
    pub fn projection(&self) -> &[f32] {
        &self.w
    }

    /// Train on `x` (n × d). Returns warnings (e.g. fewer rows than bits).
    pub fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<String>> {
        let (d, b) = (self.d, self.nbits);
        let n = crate::validate::check_batch(x, d, "x")?;
        if n == 0 {
            return Err(Error::shape("x is empty (0 rows)"));
        }
        let mut warnings = Vec::new();
        if n < b {
            warnings.push(format!(
                "ITQ: {n} training rows for nbits={b}: the covariance is rank-deficient"
            ));
        }
        ctl.set_total(self.niter as u64 + 1);
        let mean = column_mean(x, d);
        // covariance (d × d), partial sums over fixed row blocks, added in block order
        let parts: Vec<Vec<f64>> = x
            .par_chunks(COV_ROWS * d)
            .map(|xs| {
                let rows = xs.len() / d;
                let mut c64 = vec![0f64; rows * d];
                for (r, row) in xs.chunks_exact(d).enumerate() {
                    for j in 0..d {
                        c64[r * d + j] = row[j] as f64 - mean[j];
                    }
                }
                matmul_tn(&c64, &c64, rows, d, d)
            })
            .collect();
        ctl.check()?;
        let mut cov = vec![0f64; d * d];
        for p in &parts {
            for (a, v) in cov.iter_mut().zip(p) {
                *a += v;
            }
        }
        drop(parts);
        let inv = 1.0 / n as f64;
        cov.iter_mut().for_each(|v| *v *= inv);
        let (eigenvalues, p) = top_eig(&cov, d, b);
        drop(cov);
        ctl.check()?;
        // V = (x − μ) P  (n × b), in row blocks
        let v: Vec<f64> = x
            .par_chunks(COV_ROWS * d)
            .flat_map_iter(|xs| {
                let rows = xs.len() / d;
                let mut c64 = vec![0f64; rows * d];
                for (r, row) in xs.chunks_exact(d).enumerate() {
                    for j in 0..d {
                        c64[r * d + j] = row[j] as f64 - mean[j];
                    }
                }
                matmul(&c64, &p, rows, d, b)
            })
            .collect();
        let mut r = random_orthonormal(b, b, self.seed);
        let mut losses = Vec::with_capacity(self.niter + 1);
        let mut bc = vec![0f64; n * b];
        for _it in 0..self.niter {
            ctl.check()?;
            losses.push(sign_step(&v, &r, n, b, &mut bc));
            // R = argmin ‖B − V R‖: Procrustes on M = Vᵀ B
            let m = matmul_tn(&v, &bc, n, b, b);
            r = procrustes(&m, b);
            ctl.advance(1);
        }
        losses.push(sign_step(&v, &r, n, b, &mut bc));
        ctl.advance(1);
        // W = P R (d × b), stored transposed (b × d) for the encoder
        let pr = matmul(&p, &r, d, b, b);
        let mut w = vec![0f32; b * d];
        for i in 0..d {
            for j in 0..b {
                w[j * d + i] = pr[i * b + j] as f32;
            }
        }
        let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        // bits = [(x − μ)·w_j > 0] = [x·w_j > μ·w_j]
        self.offset = (0..b)
            .map(|j| (0..d).map(|i| mean[i] * pr[i * b + j]).sum::<f64>() as f32)
            .collect();
        self.mean = mean32;
        self.w = w;
        self.losses = losses;
        self.eigenvalues = eigenvalues;
        self.trained = true;
        Ok(warnings)
    }

    /// Packed codes (n × ceil(nbits/8)).
    pub fn encode(&self, x: &[f32]) -> Result<Vec<u8>> {
        if !self.trained {
            return Err(Error::NotTrained("ITQ"));
        }
        linear_sign_encode(x, self.d, &self.w, &self.offset, "x")
    }
}

/// `B = sgn(V R)` (sgn(0) = +1) into `bc`; returns `‖B − V R‖²_F`.
fn sign_step(v: &[f64], r: &[f64], n: usize, b: usize, bc: &mut [f64]) -> f64 {
    let vr = matmul(v, r, n, b, b);
    let mut loss = 0.0;
    for (o, &y) in bc.iter_mut().zip(&vr) {
        *o = if y >= 0.0 { 1.0 } else { -1.0 };
        loss += (*o - y) * (*o - y);
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn loss_is_monotone_and_codes_are_balanced() {
        let mut rng = Rng::new(8);
        let (n, d, b) = (2000, 24, 8);
        let x: Vec<f32> = (0..n * d)
            .map(|i| (rng.normal() * (1.0 + (i % d) as f64 / 4.0)) as f32 + 5.0)
            .collect();
        let mut itq = Itq::new(d, b, 30, 123).unwrap();
        assert!(itq.encode(&x).is_err());
        itq.train(&x, &Control::new()).unwrap();
        let l = itq.losses();
        assert_eq!(l.len(), 31);
        for w in l.windows(2) {
            assert!(w[1] <= w[0] * (1.0 + 1e-12), "{l:?}");
        }
        assert!(l[30] < l[0]);
        let c = itq.encode(&x).unwrap();
        assert_eq!(c.len(), n);
        assert!(Itq::new(4, 5, 1, 0).is_err());
        // deterministic
        let mut again = Itq::new(d, b, 30, 123).unwrap();
        again.train(&x, &Control::new()).unwrap();
        assert_eq!(again.encode(&x).unwrap(), c);
    }
}
