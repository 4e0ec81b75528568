//! RaBitQ (Gao & Long, SIGMOD 2024) and extended multi-bit RaBitQ (SIGMOD 2025): training-free
//! codes of randomly rotated residuals with per-vector correction factors, an unbiased
//! inner-product estimator and a probabilistic error bound. See `docs/rabitq.md`.
//!
//! # Encoding (`B = nbits` bits per dimension)
//! `r = x − c` (c: the centroid, the mean of the training set), `r' = P r` (P: a stored
//! Haar-random rotation, [`RandomRotation`]), `o = r'/‖r‖`. Each coordinate gets a level
//! `u_i ∈ 0..2^B` whose grid point is `ȳ_i = u_i − (2^B − 1)/2`; the top bit of `u_i` is the sign
//! of `o_i` (so the top bit plane *is* the 1-bit RaBitQ code) and the lower `B − 1` bits
//! ("ex-bits") are chosen by [`ex::best_levels`] to maximise `cos(ȳ, o)`.
//!
//! # Estimator
//! For a query with rotated residual `q' = P(q − c)`,
//! `⟨r, q'⟩ ≈ ‖r‖ ⟨ȳ, q'⟩ / ⟨ȳ, o⟩` — unbiased over the random rotation (the paper's Lemma 3.2,
//! and its multi-bit version). With `S = Σ_i bit_i q'_i` for each bit plane, `⟨ȳ, q'⟩ =
//! Σ_p 2^p S_p − (2^B − 1)/2 · Σ q'_i`: sums of query coordinates over the bits of each plane,
//! which is what the fast-scan kernels compute (4 coordinates per 16-entry table).
//!
//! # Error bound
//! `|est − ⟨r, q'⟩| ≤ ε₀ · ‖r‖ ‖q'‖ · sqrt(1/t² − 1) / sqrt(d − 1)` with `t = cos(ȳ, o)`: the
//! estimator's error is close to `N(0, (1 − t²)/(t² (d − 1)))` for a unit query, so `ε₀` is a
//! number of standard deviations; the bound fails with probability ≈ `2(1 − Φ(ε₀))`
//! ([`failure_probability`]): 5.7 % at ε₀ = 1.9 (the paper's default), 0.27 % at ε₀ = 3.
//!
//! # Per-vector factors ([`NF1`] / [`NFB`] f32 values, stored beside the codes)
//! `[f₀, w₁, e₁]` and for `B > 1` also `[w_B, e_B]`: `f₀ = ‖r‖²` (L2) or `⟨r, c⟩` (inner
//! product, where the query side is also the residual `q − c`: `⟨x, q⟩ = ⟨c, q⟩ + ⟨r, c⟩ +
//! ⟨r, q − c⟩` and only the last term is estimated, with an error ∝ `‖q − c‖`); `w = ‖r‖ / (√d · t₁)` (1-bit; the
//! estimate is `w₁ (2 S − Σ q')`) or `‖r‖ / ⟨ȳ, o⟩` (B-bit), and `e = ‖r‖ sqrt(1/t² − 1) /
//! sqrt(d − 1)` (the bound per unit `ε₀ ‖q'‖`).

pub mod ex;

use crate::control::Control;
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter};
use crate::rotation::RandomRotation;
use crate::validate::check_batch;
use rayon::prelude::*;

/// Factors per vector of a 1-bit code: `‖r‖², w₁, e₁`.
pub const NF1: usize = 3;
/// Factors per vector of a multi-bit code: also `w_B, e_B`.
pub const NFB: usize = 5;
/// Default ε₀ of the error bound (the paper's 1.9).
pub const DEFAULT_EPSILON: f32 = 1.9;
/// Default seed of the rotation.
pub const DEFAULT_SEED: u64 = 1234;

/// `2 (1 − Φ(ε₀))`: the probability that the estimator's error leaves the bound, under the
/// Gaussian approximation of its distribution (module docs).
pub fn failure_probability(epsilon: f64) -> f64 {
    libm_erfc(epsilon / std::f64::consts::SQRT_2)
}

/// erfc by the Numerical Recipes Chebyshev fit (relative error < 1.2e-7), no libm dependency.
fn libm_erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The RaBitQ codec: rotation, centroid, bits per dimension, metric.
#[derive(Debug, Clone)]
pub struct RaBitQ {
    d: usize,
    nbits: usize,
    metric: Metric,
    rotation: RandomRotation,
    centroid: Vec<f32>,
    trained: bool,
}

/// Codes of a batch, split as the index stores them.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    /// Sign (top) plane: `n × m` nibbles, one byte each (`Σ_j bit(4g + j) << j`), the layout
    /// `crate::fastscan::pack_codes` takes.
    pub signs: Vec<u8>,
    /// Lower `B − 1` planes: `n × ex_bytes()` bytes, plane-major, two nibbles per byte.
    pub ex: Vec<u8>,
    /// `n × nf()` factors.
    pub factors: Vec<f32>,
}

/// What a query contributes to every estimate, computed once per query.
#[derive(Debug, Clone)]
pub struct QueryTerms {
    /// `T[g·16 + c] = Σ_{j<4} bit_j(c) q'_{4g+j}` (zero beyond d).
    pub table: Vec<f32>,
    /// `Σ q'_i`.
    pub sum: f32,
    /// `‖q'‖`.
    pub norm: f32,
    /// Added to `−2·est` (L2: `‖q − c‖²`) or to `est` (inner product: `⟨c, q⟩`).
    pub offset: f32,
}

impl RaBitQ {
    /// Untrained codec; `nbits` in 1..=8, `seed` draws the rotation.
    pub fn new(d: usize, nbits: usize, metric: Metric, seed: u64) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("d must be >= 1"));
        }
        if !(1..=8).contains(&nbits) {
            return Err(Error::invalid(format!(
                "nbits must be in 1..=8, got {nbits}"
            )));
        }
        if d > 65536 {
            return Err(Error::invalid(format!("d must be <= 65536, got {d}")));
        }
        Ok(RaBitQ {
            d,
            nbits,
            metric,
            rotation: RandomRotation::new(d, seed)?,
            centroid: vec![0.0; d],
            trained: false,
        })
    }

    /// A codec around the origin, trained as it is: the inverted-file index codes each vector
    /// around its list's centroid instead ([`RaBitQ::encode_around`]).
    pub fn around_origin(d: usize, nbits: usize, metric: Metric, seed: u64) -> Result<Self> {
        let mut c = Self::new(d, nbits, metric, seed)?;
        c.trained = true;
        Ok(c)
    }

    /// Dimension.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Bits per dimension.
    pub fn nbits(&self) -> usize {
        self.nbits
    }
    /// Metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }
    /// The rotation.
    pub fn rotation(&self) -> &RandomRotation {
        &self.rotation
    }
    /// The centroid (zeros until trained).
    pub fn centroid(&self) -> &[f32] {
        &self.centroid
    }
    /// Whether the centroid is set.
    pub fn is_trained(&self) -> bool {
        self.trained
    }
    /// Groups of 4 coordinates (`ceil(d / 4)`): sub-quantizers of the fast-scan layout.
    pub fn m(&self) -> usize {
        self.d.div_ceil(4)
    }
    /// Bytes of the lower planes per vector.
    pub fn ex_bytes(&self) -> usize {
        (self.nbits - 1) * self.m().div_ceil(2)
    }
    /// Factors per vector.
    pub fn nf(&self) -> usize {
        if self.nbits == 1 {
            NF1
        } else {
            NFB
        }
    }
    /// Bytes per vector of the standalone code layout: every plane (`ceil(m/2)` bytes each),
    /// then the factors as little-endian f32.
    pub fn code_size(&self) -> usize {
        self.nbits * self.m().div_ceil(2) + 4 * self.nf()
    }

    /// Error unless trained.
    pub fn require_trained(&self) -> Result<()> {
        if self.trained {
            Ok(())
        } else {
            Err(Error::NotTrained("RaBitQ"))
        }
    }

    /// Set the centroid to the mean of `x` (n × d, n ≥ 1), as faiss `RaBitQuantizer`.
    pub fn train(&mut self, x: &[f32]) -> Result<()> {
        let n = check_batch(x, self.d, "x")?;
        if n == 0 {
            return Err(Error::invalid("x has no rows; RaBitQ trains on at least 1"));
        }
        let d = self.d;
        let sum = x
            .par_chunks(d * 4096)
            .map(|c| {
                let mut s = vec![0f64; d];
                for row in c.chunks_exact(d) {
                    for (a, &v) in s.iter_mut().zip(row) {
                        *a += v as f64;
                    }
                }
                s
            })
            .reduce(
                || vec![0f64; d],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        self.centroid = sum.iter().map(|&s| (s / n as f64) as f32).collect();
        self.trained = true;
        Ok(())
    }

    /// Encode `x` (n × d, checked by the caller: finite, whole rows). Parallel over rows.
    pub fn encode_unchecked(&self, x: &[f32], ctl: &Control) -> Result<Encoded> {
        self.encode_around(x, &|_| &self.centroid[..], ctl)
    }

    /// Encode every row `i` of `x` (checked by the caller) as the residual from
    /// `centroid_of(i)` (d values) instead of the codec's centroid: the inverted-file index
    /// codes each vector around its list's centroid.
    pub fn encode_around<'c>(
        &self,
        x: &[f32],
        centroid_of: &(dyn Fn(usize) -> &'c [f32] + Sync),
        ctl: &Control,
    ) -> Result<Encoded> {
        let (d, m, nf, eb) = (self.d, self.m(), self.nf(), self.ex_bytes());
        let n = x.len() / d;
        let mut out = Encoded {
            signs: vec![0u8; n * m],
            ex: vec![0u8; n * eb],
            factors: vec![0f32; n * nf],
        };
        const ROWS: usize = 1024;
        // one task per ROWS rows; a 1-bit code has no lower planes (empty ex slices)
        let ex_chunks: Vec<&mut [u8]> = if eb == 0 {
            (0..n.div_ceil(ROWS)).map(|_| &mut [][..]).collect()
        } else {
            out.ex.chunks_mut(ROWS * eb).collect()
        };
        let tasks: Vec<_> = out
            .signs
            .chunks_mut(ROWS * m)
            .zip(ex_chunks)
            .zip(out.factors.chunks_mut(ROWS * nf))
            .enumerate()
            .collect();
        tasks
            .into_par_iter()
            .try_for_each(|(t, ((signs, exs), factors))| -> Result<()> {
                ctl.check()?;
                let rows = signs.len() / m;
                let xs = &x[t * ROWS * d..(t * ROWS + rows) * d];
                let mut r = vec![0f32; rows * d];
                for (i, (ri, xi)) in r.chunks_exact_mut(d).zip(xs.chunks_exact(d)).enumerate() {
                    let c = centroid_of(t * ROWS + i);
                    for ((a, &b), &c) in ri.iter_mut().zip(xi).zip(c) {
                        *a = b - c;
                    }
                }
                let mut rot = vec![0f32; rows * d];
                crate::distance::ip_tile(
                    crate::simd::level(),
                    &r,
                    self.rotation.matrix(),
                    d,
                    &mut rot,
                );
                let mut levels = vec![0u8; d];
                for i in 0..rows {
                    let ex = if eb > 0 {
                        &mut exs[i * eb..(i + 1) * eb]
                    } else {
                        &mut [][..]
                    };
                    let rc: f32 = r[i * d..(i + 1) * d]
                        .iter()
                        .zip(centroid_of(t * ROWS + i))
                        .map(|(a, b)| a * b)
                        .sum();
                    self.encode_one(
                        &rot[i * d..(i + 1) * d],
                        rc,
                        &mut signs[i * m..(i + 1) * m],
                        ex,
                        &mut factors[i * nf..(i + 1) * nf],
                        &mut levels,
                    );
                }
                Ok(())
            })?;
        Ok(out)
    }

    /// Encode one rotated residual `rr` (length d).
    #[allow(clippy::too_many_arguments)]
    fn encode_one(
        &self,
        rr: &[f32],
        rc: f32,
        signs: &mut [u8],
        ex: &mut [u8],
        f: &mut [f32],
        k: &mut [u8],
    ) {
        let d = self.d;
        let (norm2, l1) = norm2_l1(rr);
        let norm = norm2.sqrt();
        // sign nibbles, branch-free: bit j of group g is o_{4g+j} > 0
        for (o, c) in signs.iter_mut().zip(rr.chunks(4)) {
            *o = c
                .iter()
                .enumerate()
                .fold(0u8, |a, (j, &v)| a | (((v > 0.0) as u8) << j));
        }
        let sqrt_d1 = ((d.max(2) - 1) as f64).sqrt();
        f[0] = match self.metric {
            Metric::L2 => norm2 as f32,
            // ⟨r, c⟩ = ⟨P r, P c⟩ is rotation-invariant: computed on the unrotated residual
            Metric::InnerProduct => rc,
        };
        if norm == 0.0 {
            // the zero residual: every estimate is exactly ⟨r, q'⟩ = 0 with no error
            f[1..].fill(0.0);
            ex.fill(0);
            return;
        }
        // 1-bit: t₁ = ⟨ō, o⟩ = Σ|o_i| / √d
        let t1 = (l1 / norm / (d as f64).sqrt()).max(1e-12);
        f[1] = (norm / ((d as f64).sqrt() * t1)) as f32;
        f[2] = (norm * (1.0 / (t1 * t1) - 1.0).max(0.0).sqrt() / sqrt_d1) as f32;
        if self.nbits == 1 {
            return;
        }
        // multi-bit: k_i levels of |o_i| (ȳ_i = ±(k_i + ½)), chosen to maximise cos(ȳ, o)
        let half = 1usize << (self.nbits - 1);
        ex::best_levels(rr, half, k);
        let (dot, yy) = level_dot(rr, k);
        let tb = (dot / norm / yy.sqrt()).max(1e-12);
        f[3] = (norm * norm / dot) as f32; // ‖r‖ / ⟨ȳ, o⟩ with o = r'/‖r‖
        f[4] = (norm * (1.0 / (tb * tb) - 1.0).max(0.0).sqrt() / sqrt_d1) as f32;
        // lower bits of u_i: k_i for a positive coordinate, half − 1 − k_i for a negative one
        // (written in place of k_i), then one nibble per 4 coordinates and plane
        for (ki, &v) in k.iter_mut().zip(rr) {
            let neg = (v <= 0.0) as u8;
            *ki = (*ki ^ neg.wrapping_neg()) & (half as u8 - 1);
        }
        let pb = self.m().div_ceil(2);
        for (p, plane) in ex.chunks_exact_mut(pb).enumerate() {
            plane.fill(0);
            for (g, c) in k.chunks(4).enumerate() {
                let nib = c
                    .iter()
                    .enumerate()
                    .fold(0u8, |a, (j, &l)| a | (((l >> p) & 1) << j));
                plane[g / 2] |= nib << (4 * (g % 2));
            }
        }
    }

    /// Rotated residual of a query and its terms (`q` of length d, finite).
    pub fn query_terms(&self, q: &[f32], scratch: &mut Vec<f32>) -> QueryTerms {
        let d = self.d;
        scratch.resize(2 * d, 0.0);
        let (res, rot) = scratch.split_at_mut(d);
        let offset = match self.metric {
            Metric::L2 => {
                let mut s = 0f32;
                for ((a, &b), &c) in res.iter_mut().zip(q).zip(&self.centroid) {
                    *a = b - c;
                    s += *a * *a;
                }
                s
            }
            Metric::InnerProduct => {
                // ⟨x, q⟩ = ⟨c, q⟩ + ⟨r, c⟩ + ⟨r, q − c⟩: the first two are exact (the second is
                // a stored factor), only the last is estimated, and its error scales with
                // ‖q − c‖, much smaller than ‖q‖ for embeddings sharing a common mean
                for ((a, &b), &c) in res.iter_mut().zip(q).zip(&self.centroid) {
                    *a = b - c;
                }
                q.iter().zip(&self.centroid).map(|(a, b)| a * b).sum()
            }
        };
        self.rotation.apply_one(res, rot);
        self.terms_of_rotated(rot, offset)
    }

    /// The terms of a query whose rotated residual `P (q − c)` is `rot` (d values) and whose
    /// offset (see [`QueryTerms::offset`]) is given: the inverted-file index rotates each
    /// query and each list centroid once and forms `P q − P c` per probed list (the rotation
    /// is linear), d operations instead of d² per list.
    pub fn terms_of_rotated(&self, rot: &[f32], offset: f32) -> QueryTerms {
        let m = self.m();
        let mut table = vec![0f32; m * 16];
        for g in 0..m {
            let mut v = [0f32; 4];
            for (j, vj) in v.iter_mut().enumerate() {
                *vj = rot.get(4 * g + j).copied().unwrap_or(0.0);
            }
            let row = &mut table[g * 16..(g + 1) * 16];
            for (c, e) in row.iter_mut().enumerate() {
                // same summation order for every c (lowest bit first): one float value per subset
                let mut s = 0f32;
                for (j, &vj) in v.iter().enumerate() {
                    if (c >> j) & 1 == 1 {
                        s += vj;
                    }
                }
                *e = s;
            }
        }
        QueryTerms {
            table,
            sum: rot.iter().sum(),
            norm: rot.iter().map(|v| v * v).sum::<f32>().sqrt(),
            offset,
        }
    }

    /// The estimated ⟨r, q'⟩ of one code and its error bound per unit ε₀, from the exact sums
    /// `S_p` over the query table: the sign nibbles `signs` (m bytes) and the lower planes `ex`.
    pub fn estimate_ip(&self, qt: &QueryTerms, signs: &[u8], ex: &[u8], f: &[f32]) -> (f32, f32) {
        let mut sums = [0f32; 8];
        sums[0] = nibble_sum(&qt.table, signs.iter().copied());
        let pb = self.m().div_ceil(2);
        for (j, s) in sums.iter_mut().enumerate().take(self.nbits).skip(1) {
            let plane = &ex[(self.nbits - 1 - j) * pb..(self.nbits - j) * pb];
            let nibbles = (0..self.m()).map(|g| (plane[g / 2] >> (4 * (g % 2))) & 0x0F);
            *s = nibble_sum(&qt.table, nibbles);
        }
        let e = if self.nbits == 1 { f[2] } else { f[4] };
        (
            self.ip_from_plane_sums(qt, &sums[..self.nbits], f),
            e * qt.norm,
        )
    }

    /// The estimated ⟨r, q'⟩ from the table sums `S` of every bit plane, most significant
    /// (the sign plane) first: `w₁ (2 S₀ − Σ q')` for one bit, else
    /// `w_B (Σ_j 2^(B−1−j) S_j − (2^B − 1)/2 · Σ q')` (module docs).
    #[inline]
    pub fn ip_from_plane_sums(&self, qt: &QueryTerms, sums: &[f32], f: &[f32]) -> f32 {
        debug_assert_eq!(sums.len(), self.nbits);
        if self.nbits == 1 {
            return f[1] * (2.0 * sums[0] - qt.sum);
        }
        let mut acc = 0f32;
        for (j, &s) in sums.iter().enumerate() {
            acc += s * (1u32 << (self.nbits - 1 - j)) as f32;
        }
        let cb = ((1u32 << self.nbits) - 1) as f32 * 0.5;
        f[3] * (acc - cb * qt.sum)
    }

    /// Nibbles (one per byte, `m` of them) of bit plane `j` (0: the sign plane, then down to
    /// the least significant) of one vector's parts.
    pub fn plane_nibbles(&self, signs: &[u8], ex: &[u8], j: usize, out: &mut [u8]) {
        if j == 0 {
            out.copy_from_slice(signs);
            return;
        }
        let pb = self.m().div_ceil(2);
        let plane = &ex[(self.nbits - 1 - j) * pb..(self.nbits - j) * pb];
        for (g, o) in out.iter_mut().enumerate() {
            *o = (plane[g / 2] >> (4 * (g % 2))) & 0x0F;
        }
    }

    /// Inverse of [`RaBitQ::plane_nibbles`]: write plane `j`'s nibbles into the parts.
    pub fn set_plane_nibbles(&self, signs: &mut [u8], ex: &mut [u8], j: usize, nib: &[u8]) {
        if j == 0 {
            signs.copy_from_slice(nib);
            return;
        }
        let pb = self.m().div_ceil(2);
        let plane = &mut ex[(self.nbits - 1 - j) * pb..(self.nbits - j) * pb];
        plane.fill(0);
        for (g, &c) in nib.iter().enumerate() {
            plane[g / 2] |= (c & 0x0F) << (4 * (g % 2));
        }
    }

    /// Distance (L2: squared; inner product: the negated similarity, so smaller is closer in
    /// both) from an estimated `⟨r, q'⟩` and the vector's first factor `f0` (L2: `‖r‖²`;
    /// inner product: `⟨r, c⟩`).
    #[inline]
    pub fn to_key(&self, qt: &QueryTerms, f0: f32, ip: f32) -> f32 {
        match self.metric {
            Metric::L2 => f0 + qt.offset - 2.0 * ip,
            Metric::InnerProduct => -(qt.offset + f0 + ip),
        }
    }

    /// How much a distance moves per unit of `⟨r, q'⟩` (2 for L2, 1 for inner product).
    #[inline]
    pub fn key_slope(&self) -> f32 {
        match self.metric {
            Metric::L2 => 2.0,
            Metric::InnerProduct => 1.0,
        }
    }

    /// Approximate reconstruction of a code: `c + Pᵀ (⟨ō, r⟩ ō)` (the projection of the residual
    /// on the code's direction, its best estimate along that direction).
    pub fn decode_one(&self, signs: &[u8], ex: &[u8], f: &[f32], out: &mut [f32]) {
        let d = self.d;
        let mut y = vec![0f32; d];
        let half = 1i32 << (self.nbits - 1);
        let pb = self.m().div_ceil(2);
        for (i, yi) in y.iter_mut().enumerate() {
            let sign = (signs[i / 4] >> (i % 4)) & 1;
            let mut low = 0i32;
            for p in 0..self.nbits - 1 {
                let g = i / 4;
                low |= (((ex[p * pb + g / 2] >> (4 * (g % 2) + i % 4)) & 1) as i32) << p;
            }
            let u = sign as i32 * half + low;
            *yi = u as f32 - (2 * half - 1) as f32 * 0.5;
        }
        // ⟨r', ȳ⟩ = ‖r‖²/w_B (B-bit); 1-bit: ȳ = ±½ and ⟨r', sign⟩ = ‖r‖²/w₁, so half of it.
        // r̂' = ⟨r', ȳ⟩ ȳ / ‖ȳ‖², the projection of r' on the code's direction.
        let yy: f32 = y.iter().map(|v| v * v).sum();
        let norm2 = self.norm2_of(f);
        let ry = if norm2 == 0.0 || f[1] == 0.0 {
            0.0
        } else if self.nbits == 1 {
            0.5 * norm2 / f[1]
        } else {
            norm2 / f[3]
        };
        let scale = if yy > 0.0 { ry / yy } else { 0.0 };
        for v in y.iter_mut() {
            *v *= scale;
        }
        self.rotation.apply_inverse(&y, out);
        for (o, &c) in out.iter_mut().zip(&self.centroid) {
            *o += c;
        }
    }

    /// `‖r‖²` of a code: factor 0 under L2; under inner product (where factor 0 is `⟨r, c⟩`)
    /// from `w₁ = ‖r‖/(√d t₁)` and `e₁ = ‖r‖ sqrt(1 − t₁²)/(t₁ sqrt(d − 1))`:
    /// `sqrt(1 − t₁²) = e₁ sqrt(d − 1)/(w₁ √d)`, then `‖r‖ = w₁ √d t₁`.
    pub fn norm2_of(&self, f: &[f32]) -> f32 {
        if self.metric == Metric::L2 {
            return f[0];
        }
        if f[1] == 0.0 {
            return 0.0;
        }
        let d = self.d as f32;
        let s = (f[2] * (d - 1.0).max(1.0).sqrt() / (f[1] * d.sqrt())).min(1.0);
        let t1 = (1.0 - s * s).max(0.0).sqrt();
        let n = f[1] * d.sqrt() * t1;
        n * n
    }

    /// Save as metadata `d`, `nbits`, `metric`, `trained`, the rotation and `centroid`.
    pub fn write_to<'a>(&'a self, w: &mut FileWriter<'a>) {
        w.meta_u64("d", self.d as u64)
            .meta_u64("nbits", self.nbits as u64)
            .meta_str("metric", self.metric.name())
            .meta_u64("trained", self.trained as u64)
            .section_f32("centroid", &self.centroid);
        self.rotation.write_to(w, "rotation");
    }

    /// Read what [`RaBitQ::write_to`] saved.
    pub fn read_from(r: &FileReader) -> Result<Self> {
        let d = r.meta_usize("d")?;
        let nbits = r.meta_usize("nbits")?;
        if d == 0 || d > 65536 || !(1..=8).contains(&nbits) {
            return Err(r.err(format!(
                "metadata d={d}, nbits={nbits} out of range (1..=65536, 1..=8)"
            )));
        }
        let metric = r.meta_str("metric")?;
        let metric = Metric::parse(metric)
            .map_err(|_| r.err(format!("metadata 'metric' is {metric:?}, not 'l2' or 'ip'")))?;
        let trained = match r.meta_u64("trained")? {
            0 => false,
            1 => true,
            v => return Err(r.err(format!("metadata 'trained' is {v}, not 0 or 1"))),
        };
        let centroid = r.section_f32("centroid")?;
        if centroid.len() != d {
            return Err(r.err(format!(
                "section 'centroid' holds {} values, expected d={d}",
                centroid.len()
            )));
        }
        crate::distance::check_finite(&centroid, d, "centroid").map_err(|e| r.err(e))?;
        let rotation = RandomRotation::read_from(r, "rotation", d)?;
        Ok(RaBitQ {
            d,
            nbits,
            metric,
            rotation,
            centroid: centroid.to_vec(),
            trained,
        })
    }
}

/// `(Σ v², Σ |v|)` in f64, four independent lanes (a single running f64 sum neither
/// vectorizes nor pipelines).
fn norm2_l1(v: &[f32]) -> (f64, f64) {
    let (mut s2, mut s1) = ([0f64; 4], [0f64; 4]);
    let mut c = v.chunks_exact(4);
    for x in &mut c {
        for j in 0..4 {
            let y = x[j] as f64;
            s2[j] += y * y;
            s1[j] += y.abs();
        }
    }
    for (j, &x) in c.remainder().iter().enumerate() {
        s2[j] += x as f64 * x as f64;
        s1[j] += (x as f64).abs();
    }
    (s2.iter().sum(), s1.iter().sum())
}

/// `(Σ (k_i + ½)|v_i|, Σ (k_i + ½)²)` in f64, four lanes.
fn level_dot(v: &[f32], k: &[u8]) -> (f64, f64) {
    let (mut dot, mut yy) = ([0f64; 4], [0f64; 4]);
    for (i, (&x, &ki)) in v.iter().zip(k).enumerate() {
        let y = ki as f64 + 0.5;
        dot[i % 4] += y * (x as f64).abs();
        yy[i % 4] += y * y;
    }
    (dot.iter().sum(), yy.iter().sum())
}

/// `Σ_g T[16 g + nibble_g]`.
#[inline]
pub(crate) fn nibble_sum(table: &[f32], nibbles: impl Iterator<Item = u8>) -> f32 {
    // two accumulators: the sum of a long table walk is latency-bound on one
    let (mut a, mut b) = (0f32, 0f32);
    let mut it = nibbles.enumerate();
    while let Some((g, c)) = it.next() {
        a += table[16 * g + c as usize];
        if let Some((g, c)) = it.next() {
            b += table[16 * g + c as usize];
        }
    }
    a + b
}

/// Standalone code layout helpers (the Python codec's `encode` / `decode`).
impl RaBitQ {
    /// Rows of [`RaBitQ::code_size`] bytes: sign plane, lower planes, factors (f32 LE).
    pub fn to_flat(&self, e: &Encoded) -> Vec<u8> {
        let (m, nf, eb) = (self.m(), self.nf(), self.ex_bytes());
        let n = e.signs.len() / m;
        let pb = m.div_ceil(2);
        let cs = self.code_size();
        let mut out = vec![0u8; n * cs];
        for (i, row) in out.chunks_exact_mut(cs).enumerate() {
            for (g, &s) in e.signs[i * m..(i + 1) * m].iter().enumerate() {
                row[g / 2] |= s << (4 * (g % 2));
            }
            row[pb..pb + eb].copy_from_slice(&e.ex[i * eb..(i + 1) * eb]);
            for (j, v) in e.factors[i * nf..(i + 1) * nf].iter().enumerate() {
                row[pb + eb + 4 * j..pb + eb + 4 * j + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Split flat codes (n × code_size) back into their parts; the factors must be finite.
    pub fn from_flat(&self, codes: &[u8]) -> Result<Encoded> {
        let (m, nf, eb, cs) = (self.m(), self.nf(), self.ex_bytes(), self.code_size());
        if !codes.len().is_multiple_of(cs) {
            return Err(Error::shape(format!(
                "codes has {} bytes, not a multiple of code_size={cs}",
                codes.len()
            )));
        }
        let n = codes.len() / cs;
        let pb = m.div_ceil(2);
        let mut e = Encoded {
            signs: vec![0u8; n * m],
            ex: vec![0u8; n * eb],
            factors: vec![0f32; n * nf],
        };
        for (i, row) in codes.chunks_exact(cs).enumerate() {
            for g in 0..m {
                e.signs[i * m + g] = (row[g / 2] >> (4 * (g % 2))) & 0x0F;
            }
            e.ex[i * eb..(i + 1) * eb].copy_from_slice(&row[pb..pb + eb]);
            for j in 0..nf {
                let b = &row[pb + eb + 4 * j..pb + eb + 4 * j + 4];
                e.factors[i * nf + j] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        check_factors(&e.factors, nf, self.metric, "codes")?;
        Ok(e)
    }
}

/// Checked whole-batch entry points (the Python codec).
impl RaBitQ {
    /// Encode `x` (n × d) into flat codes (n × [`RaBitQ::code_size`]).
    pub fn encode(&self, x: &[f32], ctl: &Control) -> Result<Vec<u8>> {
        self.require_trained()?;
        check_batch(x, self.d, "x")?;
        Ok(self.to_flat(&self.encode_unchecked(x, ctl)?))
    }

    /// Approximate vectors of flat codes (n × d).
    pub fn decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        self.require_trained()?;
        let e = self.from_flat(codes)?;
        let (m, nf, eb, d) = (self.m(), self.nf(), self.ex_bytes(), self.d);
        let n = e.signs.len() / m;
        let mut out = vec![0f32; n * d];
        for (i, o) in out.chunks_exact_mut(d).enumerate() {
            self.decode_one(
                &e.signs[i * m..(i + 1) * m],
                &e.ex[i * eb..(i + 1) * eb],
                &e.factors[i * nf..(i + 1) * nf],
                o,
            );
        }
        Ok(out)
    }

    /// Estimated distances (L2: squared distance; inner product: similarity) of every query
    /// (nq × d) to every code, and their error bounds at `epsilon` (both nq × n, row-major).
    pub fn estimate(&self, q: &[f32], codes: &[u8], epsilon: f32) -> Result<(Vec<f32>, Vec<f32>)> {
        self.require_trained()?;
        let nq = check_batch(q, self.d, "queries")?;
        if !(epsilon.is_finite() && epsilon >= 0.0) {
            return Err(Error::invalid(format!(
                "epsilon must be finite and >= 0, got {epsilon}"
            )));
        }
        let e = self.from_flat(codes)?;
        let (m, nf, eb, d) = (self.m(), self.nf(), self.ex_bytes(), self.d);
        let n = e.signs.len() / m;
        let mut est = vec![0f32; nq * n];
        let mut bound = vec![0f32; nq * n];
        let sign = if self.metric == Metric::InnerProduct {
            -1.0
        } else {
            1.0
        };
        est.par_chunks_mut(n.max(1))
            .zip(bound.par_chunks_mut(n.max(1)))
            .zip(q.par_chunks(d))
            .for_each(|((er, br), qi)| {
                let qt = self.query_terms(qi, &mut Vec::new());
                for i in 0..n {
                    let f = &e.factors[i * nf..(i + 1) * nf];
                    let (ip, b) = self.estimate_ip(
                        &qt,
                        &e.signs[i * m..(i + 1) * m],
                        &e.ex[i * eb..(i + 1) * eb],
                        f,
                    );
                    er[i] = sign * self.to_key(&qt, f[0], ip);
                    br[i] = self.key_slope() * epsilon * b;
                }
            });
        Ok((est, bound))
    }
}

/// Factors must be finite and the norms/bounds non-negative (a crafted file or code array
/// must not turn into NaN distances). Factor 0 is `⟨r, c⟩` (any sign) under inner product.
pub fn check_factors(f: &[f32], nf: usize, metric: Metric, arg: &str) -> Result<()> {
    for (i, row) in f.chunks_exact(nf).enumerate() {
        let bad = row.iter().any(|v| !v.is_finite())
            || (metric == Metric::L2 && row[0] < 0.0)
            || row[1] < 0.0
            || row[2] < 0.0
            || (nf == NFB && row[4] < 0.0);
        if bad {
            return Err(Error::invalid(format!(
                "{arg}: correction factors of vector {i} are not finite / non-negative"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
