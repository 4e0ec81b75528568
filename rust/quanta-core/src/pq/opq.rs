//! Non-parametric OPQ (Ge, He, Ke, Sun, CVPR 2013; faiss `OPQMatrix`): an orthogonal matrix `A`
//! (d_out × d_in) learned so that the product quantization of `y = A x` loses as little as
//! possible. Alternates (1) PQ training on the rotated data (warm-started after the first
//! round) and (2) orthogonal Procrustes: with reconstructions Ŷ, `Ŷᵀ X = U Σ Vᵀ` and `A = U Vᵀ`.
//!
//! The alternation is non-convex, and its outcome is a chaotic function of every float rounding
//! on the way (k-means assignments near ties, GEMM blocking, FMA lanes): from a *random* start
//! (faiss's choice) the recall@10 of OPQ8 on 10k SIFT vectors spreads over about ±0.02 between
//! SIMD levels, CPUs and training-row orders (`docs/opq.md`). Ge et al. (§4.2, §5) start the
//! non-parametric iterations from the parametric solution instead — PCA axes dealt to the
//! sub-spaces by *eigenvalue allocation*, balancing the product of variances per sub-space —
//! which is deterministic up to rounding and starts near a good optimum; that is the default
//! here ([`OpqInit::EigenAllocation`]), the random start stays available ([`OpqInit::Random`]).

use super::{PqTrainParams, ProductQuantizer};
use crate::control::Control;
use crate::distance::ip_tile;
use crate::error::{Error, Result};
use crate::rng::faiss_perm_prefix;
use crate::rotation::random_orthonormal_rows;
use crate::validate::check_batch;
use faer::Mat;
use rayon::prelude::*;

/// How the rotation is initialised before the first alternation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpqInit {
    /// Parametric OPQ (Ge et al. 2013, eigenvalue allocation) on the training sample.
    EigenAllocation,
    /// A seeded random orthogonal matrix (faiss `OPQMatrix`).
    Random,
}

impl OpqInit {
    /// Parse "eigen" / "random".
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "eigen" | "pca" | "eigen_allocation" => Ok(OpqInit::EigenAllocation),
            "random" => Ok(OpqInit::Random),
            other => Err(Error::invalid(format!(
                "init must be 'eigen' or 'random', got {other:?}"
            ))),
        }
    }

    /// Name as accepted by [`OpqInit::parse`].
    pub fn name(self) -> &'static str {
        match self {
            OpqInit::EigenAllocation => "eigen",
            OpqInit::Random => "random",
        }
    }
}

/// The learned rotation and its training settings (faiss defaults but for the initialisation).
#[derive(Debug, Clone)]
pub struct OpqMatrix {
    d_in: usize,
    d_out: usize,
    m: usize,
    /// Outer alternations.
    pub niter: usize,
    /// PQ k-means iterations in the first alternation.
    pub niter_pq_0: usize,
    /// PQ k-means iterations in later alternations (warm-started).
    pub niter_pq: usize,
    /// Training rows kept (a seeded subsample beyond it).
    pub max_train_points: usize,
    /// Seed of the subsample and of the random orthogonal initialisation.
    pub seed: u64,
    /// Initial rotation (used when training an untrained matrix).
    pub init: OpqInit,
    /// d_out × d_in, rows orthonormal.
    a: Vec<f32>,
    trained: bool,
}

impl OpqMatrix {
    /// Untrained OPQ for `M` sub-quantizers; `d_out` (default d) must be ≤ d and divisible by M.
    pub fn new(d: usize, m: usize, d_out: Option<usize>) -> Result<Self> {
        let d_out = d_out.unwrap_or(d);
        if d == 0 || m == 0 {
            return Err(Error::invalid("d and M must be >= 1"));
        }
        if d_out == 0 || d_out > d {
            return Err(Error::invalid(format!(
                "d_out must be in 1..=d={d} (a rotation cannot add dimensions), got {d_out}"
            )));
        }
        if !d_out.is_multiple_of(m) {
            return Err(Error::invalid(format!(
                "d_out={d_out} is not divisible by M={m}; valid M: {:?}",
                super::divisors(d_out)
            )));
        }
        Ok(OpqMatrix {
            d_in: d,
            d_out,
            m,
            niter: 50,
            niter_pq_0: 40,
            niter_pq: 4,
            max_train_points: 256 * 256,
            seed: 123,
            init: OpqInit::EigenAllocation,
            a: Vec::new(),
            trained: false,
        })
    }

    /// Input dimension.
    pub fn d_in(&self) -> usize {
        self.d_in
    }
    /// Output dimension.
    pub fn d_out(&self) -> usize {
        self.d_out
    }
    /// Sub-quantizers the rotation is optimized for.
    pub fn m(&self) -> usize {
        self.m
    }
    /// Whether `A` is learned.
    pub fn is_trained(&self) -> bool {
        self.trained
    }
    /// The matrix, d_out × d_in row-major (rows orthonormal).
    pub fn matrix(&self) -> &[f32] {
        &self.a
    }

    /// Set `A` (d_out × d_in) directly, e.g. from faiss; rows must be orthonormal (1e-3).
    pub fn set_matrix(&mut self, a: &[f32]) -> Result<()> {
        if a.len() != self.d_out * self.d_in {
            return Err(Error::shape(format!(
                "matrix has {} values, expected d_out*d_in = {}*{}",
                a.len(),
                self.d_out,
                self.d_in
            )));
        }
        crate::distance::check_finite(a, self.d_in, "matrix")?;
        let mut gram = vec![0f32; self.d_out * self.d_out];
        ip_tile(crate::simd::level(), a, a, self.d_in, &mut gram);
        for i in 0..self.d_out {
            for j in 0..self.d_out {
                let want = if i == j { 1.0 } else { 0.0 };
                if (gram[i * self.d_out + j] - want).abs() > 1e-3 {
                    return Err(Error::invalid(
                        "matrix rows must be orthonormal (A Aᵀ = I within 1e-3)",
                    ));
                }
            }
        }
        self.a = a.to_vec();
        self.trained = true;
        Ok(())
    }

    /// `y = A x` for every row of `x` (n × d_in) → n × d_out.
    pub fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        if !self.trained {
            return Err(Error::NotTrained("OPQMatrix"));
        }
        let n = check_batch(x, self.d_in, "x")?;
        Ok(self.apply_unchecked(x, n))
    }

    fn apply_unchecked(&self, x: &[f32], n: usize) -> Vec<f32> {
        let (di, dout) = (self.d_in, self.d_out);
        let mut out = vec![0f32; n * dout];
        let lvl = crate::simd::level();
        const ROWS: usize = 1024;
        out.par_chunks_mut(ROWS * dout)
            .zip(x.par_chunks(ROWS * di))
            .for_each(|(o, xs)| ip_tile(lvl, xs, &self.a, di, o));
        out
    }

    /// `x = Aᵀ y` (n × d_out → n × d_in): the inverse on the span of A's rows.
    pub fn reverse(&self, y: &[f32]) -> Result<Vec<f32>> {
        if !self.trained {
            return Err(Error::NotTrained("OPQMatrix"));
        }
        let n = check_batch(y, self.d_out, "y")?;
        let (di, dout) = (self.d_in, self.d_out);
        let mut out = vec![0f32; n * di];
        out.par_chunks_mut(di)
            .zip(y.par_chunks(dout))
            .for_each(|(o, yr)| {
                for (r, &v) in yr.iter().enumerate() {
                    for (a, &b) in o.iter_mut().zip(&self.a[r * di..(r + 1) * di]) {
                        *a += v * b;
                    }
                }
            });
        Ok(out)
    }

    /// Learn `A` on `x` (n × d_in). Returns the mean squared PQ reconstruction error (in the
    /// rotated space) after each alternation — it decreases as the rotation improves.
    pub fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<f64>> {
        let n_all = check_batch(x, self.d_in, "x")?;
        if self.niter == 0 || self.niter_pq_0 == 0 || self.niter_pq == 0 {
            return Err(Error::invalid(
                "niter, niter_pq_0 and niter_pq must be >= 1",
            ));
        }
        if n_all < 256 {
            return Err(Error::invalid(format!(
                "x has {n_all} training vectors; OPQ trains 256-centroid sub-quantizers and \
                 needs at least 256"
            )));
        }
        let (di, dout) = (self.d_in, self.d_out);
        // seeded subsample, as faiss
        let xs: Vec<f32> = if n_all > self.max_train_points {
            let idx = faiss_perm_prefix(n_all, self.max_train_points, self.seed as i64);
            idx.iter()
                .flat_map(|&i| x[i * di..(i + 1) * di].iter().copied())
                .collect()
        } else {
            x.to_vec()
        };
        let n = xs.len() / di;
        if !self.trained {
            self.a = match self.init {
                OpqInit::Random => random_orthonormal_rows(dout, di, self.seed),
                OpqInit::EigenAllocation => eigen_allocation(&xs, n, di, dout, self.m)?,
            };
        }
        self.trained = true;
        let mut pq = ProductQuantizer::new(dout, self.m, 8)?;
        let mut errors = Vec::with_capacity(self.niter);
        ctl.set_total(self.niter as u64);
        for it in 0..self.niter {
            ctl.check()?;
            let y = self.apply_unchecked(&xs, n);
            let params = PqTrainParams {
                niter: if it == 0 {
                    self.niter_pq_0
                } else {
                    self.niter_pq
                },
                max_points_per_centroid: 1000,
                warm_start: it > 0,
                ..Default::default()
            };
            pq.train_codebooks(&y, &params, ctl)?;
            let mut codes = vec![0u8; n * self.m];
            pq.encode_into(&y, &mut codes, ctl)?;
            let mut rec = vec![0f32; n * dout];
            rec.par_chunks_mut(dout * 1024)
                .zip(codes.par_chunks(self.m * 1024))
                .for_each(|(r, c)| pq.decode_into(c, r));
            let err: f64 = y
                .par_iter()
                .zip(&rec)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / n as f64;
            errors.push(err);
            // Procrustes: maximize tr(A Xᵀ Ŷ) over A with orthonormal rows → Ŷᵀ X = U Σ Vᵀ, A = U Vᵀ
            let cross = cross_product(&rec, &xs, n, dout, di);
            self.a = procrustes(&cross, dout, di)?;
            ctl.advance(1);
        }
        Ok(errors)
    }
}

/// `Ŷᵀ X` (d_out × d_in) in f64, accumulated over row blocks in parallel (fixed block order).
fn cross_product(y: &[f32], x: &[f32], n: usize, dout: usize, di: usize) -> Mat<f64> {
    const ROWS: usize = 4096;
    let parts: Vec<Vec<f64>> = (0..n.div_ceil(ROWS))
        .into_par_iter()
        .map(|b| {
            let (r0, r1) = (b * ROWS, ((b + 1) * ROWS).min(n));
            let mut acc = vec![0f64; dout * di];
            for r in r0..r1 {
                let yr = &y[r * dout..(r + 1) * dout];
                let xr = &x[r * di..(r + 1) * di];
                for (i, &yv) in yr.iter().enumerate() {
                    let yv = yv as f64;
                    for (a, &xv) in acc[i * di..(i + 1) * di].iter_mut().zip(xr) {
                        *a += yv * xv as f64;
                    }
                }
            }
            acc
        })
        .collect();
    let mut total = vec![0f64; dout * di];
    for p in parts {
        total.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    Mat::from_fn(dout, di, |i, j| total[i * di + j])
}

/// `U Vᵀ` from the thin SVD of `c` (d_out × d_in): the closest matrix with orthonormal rows.
fn procrustes(c: &Mat<f64>, dout: usize, di: usize) -> Result<Vec<f32>> {
    let svd = c
        .thin_svd()
        .map_err(|e| Error::invalid(format!("OPQ: SVD did not converge ({e:?})")))?;
    let r = svd.U() * svd.V().transpose();
    let mut out = vec![0f32; dout * di];
    for i in 0..dout {
        for j in 0..di {
            out[i * di + j] = r[(i, j)] as f32;
        }
    }
    Ok(out)
}

/// Parametric OPQ: the top `dout` principal axes of `x` (n × di), dealt to `m` sub-spaces of
/// `dout / m` axes so that the products of the variances per sub-space are balanced (Ge et al.
/// 2013, §4.2: for Gaussian data this minimizes the PQ distortion bound). Greedy, as in the
/// paper: axes by decreasing eigenvalue, each to the non-full sub-space whose product (a sum of
/// logs) is smallest. Rows of the result are the axes, sub-space by sub-space.
fn eigen_allocation(x: &[f32], n: usize, di: usize, dout: usize, m: usize) -> Result<Vec<f32>> {
    let cov = covariance(x, n, di);
    let evd = cov
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| Error::invalid(format!("OPQ: eigendecomposition failed ({e:?})")))?;
    let (u, s) = (evd.U(), evd.S().column_vector());
    // faer sorts eigenvalues in nondecreasing order: walk them from the top
    let order: Vec<usize> = (0..di).rev().take(dout).collect();
    let top = s[order[0]].max(0.0);
    // a zero variance would make its log -inf: floor at a tiny fraction of the largest
    let floor = (top * 1e-12).max(f64::MIN_POSITIVE);
    let dsub = dout / m;
    let mut log_prod = vec![0f64; m];
    let mut slots: Vec<Vec<usize>> = vec![Vec::with_capacity(dsub); m];
    for &e in &order {
        let lv = s[e].max(floor).ln();
        // empty sub-spaces first (the m largest axes open one each), then the smallest product
        let b = (0..m)
            .filter(|&b| slots[b].len() < dsub)
            .min_by(|&a, &b| {
                let key = |j: usize| (!slots[j].is_empty(), log_prod[j]);
                key(a).partial_cmp(&key(b)).expect("finite logs")
            })
            .expect("dout = m * dsub slots for dout axes");
        slots[b].push(e);
        log_prod[b] += lv;
    }
    let mut out = vec![0f32; dout * di];
    for (r, &e) in slots.iter().flatten().enumerate() {
        for j in 0..di {
            out[r * di + j] = u[(j, e)] as f32;
        }
    }
    Ok(out)
}

/// Covariance of the rows of `x` (n × d), in f64, accumulated over row blocks in parallel and
/// summed in block order (the result does not depend on the thread count).
fn covariance(x: &[f32], n: usize, d: usize) -> Mat<f64> {
    const ROWS: usize = 2048;
    let mean: Vec<f64> = {
        let mut s = vec![0f64; d];
        for row in x.chunks_exact(d) {
            s.iter_mut().zip(row).for_each(|(a, &b)| *a += b as f64);
        }
        s.iter().map(|v| v / n as f64).collect()
    };
    let parts: Vec<Mat<f64>> = (0..n.div_ceil(ROWS))
        .into_par_iter()
        .map(|b| {
            let (r0, r1) = (b * ROWS, ((b + 1) * ROWS).min(n));
            let blk = Mat::<f64>::from_fn(r1 - r0, d, |i, j| x[(r0 + i) * d + j] as f64 - mean[j]);
            blk.transpose() * &blk
        })
        .collect();
    let mut total = Mat::<f64>::zeros(d, d);
    for p in parts {
        total += p;
    }
    total * faer::Scale(1.0 / (n.max(2) - 1) as f64)
}

/// d_out × d_in with orthonormal rows: QR of a seeded Gaussian matrix.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn rotation_is_orthonormal_and_lowers_the_pq_error() {
        // correlated data: PQ on raw axes is poor, a rotation helps
        let (n, d) = (3000, 16);
        let mut r = Rng::new(1);
        let x: Vec<f32> = (0..n)
            .flat_map(|_| {
                let z: Vec<f64> = (0..4).map(|_| r.normal()).collect();
                (0..d).map(move |j| (z[j % 4] * (1.0 + j as f64) * 0.3) as f32)
            })
            .collect();
        let mut opq = OpqMatrix::new(d, 4, None).unwrap();
        opq.niter = 6;
        opq.niter_pq_0 = 8;
        let errs = opq.train(&x, &Control::new()).unwrap();
        assert!(errs.last().unwrap() < &errs[0], "{errs:?}");
        let a = opq.matrix();
        for i in 0..d {
            for j in 0..d {
                let dot: f32 = (0..d).map(|t| a[i * d + t] * a[j * d + t]).sum();
                assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-4);
            }
        }
        let y = opq.apply(&x[..d * 3]).unwrap();
        let back = opq.reverse(&y).unwrap();
        for (p, q) in back.iter().zip(&x[..d * 3]) {
            assert!((p - q).abs() < 1e-3 * (1.0 + q.abs()));
        }
        assert!(OpqMatrix::new(10, 3, None).is_err());
        assert_eq!(OpqInit::parse("random").unwrap(), OpqInit::Random);
        assert!(OpqInit::parse("pcaa").is_err());
        assert!(OpqMatrix::new(10, 2, Some(12)).is_err());
    }

    #[test]
    fn eigen_allocation_balances_variance_products() {
        // independent axes with known variances; greedy allocation (largest first, to the
        // non-full sub-space of smallest product) gives {100, 9, 4, 0.5} and {50, 20, 2, 1}
        let var = [100.0, 50.0, 20.0, 9.0, 4.0, 2.0, 1.0, 0.5f64];
        let (n, d) = (20_000, var.len());
        let mut r = Rng::new(7);
        let x: Vec<f32> = (0..n * d)
            .map(|i| (r.normal() * var[i % d].sqrt()) as f32)
            .collect();
        let a = eigen_allocation(&x, n, d, d, 2).unwrap();
        let axis_of_row = |row: usize| {
            let v = &a[row * d..(row + 1) * d];
            let j = (0..d)
                .max_by(|&p, &q| v[p].abs().total_cmp(&v[q].abs()))
                .unwrap();
            assert!(v[j].abs() > 0.99, "row {row} is not an axis: {v:?}");
            j
        };
        let mut first: Vec<usize> = (0..4).map(axis_of_row).collect();
        let mut second: Vec<usize> = (4..8).map(axis_of_row).collect();
        first.sort_unstable();
        second.sort_unstable();
        assert_eq!((first, second), (vec![0, 3, 4, 7], vec![1, 2, 5, 6]));
        // d_out < d keeps the top principal axes only
        let a = eigen_allocation(&x, n, d, 4, 2).unwrap();
        let mut kept: Vec<usize> = (0..4)
            .map(|row| {
                let v = &a[row * d..(row + 1) * d];
                (0..d)
                    .max_by(|&p, &q| v[p].abs().total_cmp(&v[q].abs()))
                    .unwrap()
            })
            .collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![0, 1, 2, 3]);
    }
}
