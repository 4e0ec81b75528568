//! `ProductQuantizer`: validation, encode / decode, distance tables.

use crate::control::Control;
use crate::distance::{check_finite, nearest2_block, Metric, Nearest2, QUERY_TILE};
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter};
use crate::kernels::l2;
use crate::kernels::pq::{ip_transposed_with, TABLE_STRIDE};
use rayon::prelude::*;

/// Longest sub-vector encoded without GEMM (see `encode_into`).
const DIRECT_MAX_DSUB: usize = 16;

/// Which distance estimator a PQ search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    /// Asymmetric: the query stays exact, database vectors are quantized.
    Adc,
    /// Symmetric: the query is quantized too.
    Sdc,
}

impl SearchMode {
    /// Parse "adc" / "sdc".
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "adc" => Ok(SearchMode::Adc),
            "sdc" => Ok(SearchMode::Sdc),
            other => Err(Error::invalid(format!(
                "mode must be 'adc' or 'sdc', got {other:?}"
            ))),
        }
    }
}

/// Divisors of `d` (for error messages about `M`).
pub fn divisors(d: usize) -> Vec<usize> {
    (1..=d).filter(|m| d.is_multiple_of(*m)).collect()
}

/// A product quantizer: `M` sub-quantizers of `ksub = 2^nbits` centroids each.
#[derive(Debug, Clone)]
pub struct ProductQuantizer {
    pub(super) d: usize,
    pub(super) m: usize,
    pub(super) nbits: usize,
    pub(super) ksub: usize,
    pub(super) dsub: usize,
    /// M × ksub × dsub.
    pub(super) centroids: Vec<f32>,
    /// Mean squared quantization error of the training points assigned to each centroid
    /// (M × ksub; 0 for empty cells and for codebooks loaded without data).
    pub(super) bias: Vec<f32>,
    pub(super) trained: bool,
}

impl ProductQuantizer {
    /// Untrained quantizer. Errors: `d == 0`, `M == 0`, `d % M != 0` (listing the valid M),
    /// `nbits` outside 1..=8.
    pub fn new(d: usize, m: usize, nbits: usize) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("d must be >= 1"));
        }
        if m == 0 {
            return Err(Error::invalid("M must be >= 1"));
        }
        if !d.is_multiple_of(m) {
            return Err(Error::invalid(format!(
                "d={d} is not divisible by M={m}: M must divide d; valid M for d={d}: {:?}",
                divisors(d)
            )));
        }
        if !(1..=8).contains(&nbits) {
            return Err(Error::invalid(format!(
                "nbits must be in 1..=8 (codes are one byte per sub-quantizer), got {nbits}"
            )));
        }
        let ksub = 1 << nbits;
        Ok(ProductQuantizer {
            d,
            m,
            nbits,
            ksub,
            dsub: d / m,
            centroids: vec![0.0; d * ksub],
            bias: vec![0.0; m * ksub],
            trained: false,
        })
    }

    /// Quantizer with given codebooks, `M × ksub × dsub` row-major (e.g. trained by faiss or
    /// torch). `ksub` must be a power of two in 2..=256.
    pub fn from_centroids(m: usize, ksub: usize, dsub: usize, centroids: &[f32]) -> Result<Self> {
        if !ksub.is_power_of_two() || !(2..=256).contains(&ksub) {
            return Err(Error::invalid(format!(
                "centroids: ksub must be a power of two in 2..=256, got {ksub}"
            )));
        }
        if m == 0 || dsub == 0 {
            return Err(Error::shape("centroids must have M >= 1 and dsub >= 1"));
        }
        if centroids.len() != m * ksub * dsub {
            return Err(Error::shape(format!(
                "centroids has {} values, expected M*ksub*dsub = {m}*{ksub}*{dsub}",
                centroids.len()
            )));
        }
        check_finite(centroids, dsub, "centroids")?;
        let mut pq = ProductQuantizer::new(m * dsub, m, ksub.trailing_zeros() as usize)?;
        pq.centroids.copy_from_slice(centroids);
        pq.trained = true;
        Ok(pq)
    }

    /// Input dimension.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Number of sub-quantizers.
    pub fn m(&self) -> usize {
        self.m
    }
    /// Bits per sub-code.
    pub fn nbits(&self) -> usize {
        self.nbits
    }
    /// Centroids per sub-quantizer.
    pub fn ksub(&self) -> usize {
        self.ksub
    }
    /// Dimension of a sub-vector.
    pub fn dsub(&self) -> usize {
        self.dsub
    }
    /// Bytes per code (= M, see the module docs).
    pub fn code_size(&self) -> usize {
        self.m
    }
    /// Whether codebooks are set.
    pub fn is_trained(&self) -> bool {
        self.trained
    }
    /// Codebooks, M × ksub × dsub.
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }
    /// Per-centroid mean squared quantization error, M × ksub.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Replace the per-centroid error terms (M × ksub, finite, >= 0).
    pub fn set_bias(&mut self, bias: &[f32]) -> Result<()> {
        if bias.len() != self.m * self.ksub {
            return Err(Error::shape(format!(
                "bias has {} values, expected M*ksub = {}",
                bias.len(),
                self.m * self.ksub
            )));
        }
        if bias.iter().any(|b| !b.is_finite() || *b < 0.0) {
            return Err(Error::invalid("bias values must be finite and >= 0"));
        }
        self.bias.copy_from_slice(bias);
        Ok(())
    }

    pub(crate) fn require_trained(&self) -> Result<()> {
        if self.trained {
            Ok(())
        } else {
            Err(Error::NotTrained("ProductQuantizer"))
        }
    }

    /// Centroid `j` of sub-quantizer `m`.
    #[inline]
    pub(crate) fn centroid(&self, m: usize, j: usize) -> &[f32] {
        let o = (m * self.ksub + j) * self.dsub;
        &self.centroids[o..o + self.dsub]
    }

    /// Codes of the rows of `x` (n × d), `n × M` bytes. Nearest centroid per sub-vector, lowest
    /// index on ties. Parallel over row blocks.
    pub fn encode(&self, x: &[f32], ctl: &Control) -> Result<Vec<u8>> {
        self.require_trained()?;
        let n = crate::validate::check_batch(x, self.d, "x")?;
        let mut codes = vec![0u8; n * self.m];
        self.encode_into(x, &mut codes, ctl)?;
        Ok(codes)
    }

    /// [`encode`](Self::encode) into a caller buffer (`x` already validated).
    ///
    /// Nearest centroid = argmin_j ‖c_j‖² − 2⟨x, c_j⟩. For short sub-vectors (dsub ≤
    /// [`DIRECT_MAX_DSUB`]) a GEMM call per block is mostly packing overhead, so the inner
    /// products are accumulated directly against transposed codebooks (dsub × ksub, a loop the
    /// compiler vectorizes over centroids); longer sub-vectors go through the blocked GEMM.
    pub(crate) fn encode_into(&self, x: &[f32], codes: &mut [u8], ctl: &Control) -> Result<()> {
        let (d, m, dsub, ksub) = (self.d, self.m, self.dsub, self.ksub);
        let cnorms = self.centroid_norms();
        let direct = dsub <= DIRECT_MAX_DSUB;
        let transposed = if direct {
            self.transposed_centroids()
        } else {
            Vec::new()
        };
        let lvl = crate::simd::level();
        codes
            .par_chunks_mut(QUERY_TILE * m)
            .enumerate()
            .try_for_each(|(blk, out)| -> Result<()> {
                ctl.check()?;
                let rows = out.len() / m;
                let xb = &x[blk * QUERY_TILE * d..(blk * QUERY_TILE + rows) * d];
                if direct {
                    let mut ip = vec![0f32; ksub];
                    for (r, row) in xb.chunks_exact(d).enumerate() {
                        for q in 0..m {
                            let ct = &transposed[q * dsub * ksub..(q + 1) * dsub * ksub];
                            ip_transposed_with(lvl, &row[q * dsub..(q + 1) * dsub], ct, &mut ip);
                            let (best, _) = l2::argmin_shifted_with(
                                lvl,
                                &cnorms[q * ksub..(q + 1) * ksub],
                                &ip,
                            );
                            out[r * m + q] = best as u8;
                        }
                    }
                    return Ok(());
                }
                let mut sub = vec![0f32; rows * dsub];
                let mut norms = vec![0f32; rows];
                let mut near = vec![Nearest2::default(); rows];
                for q in 0..m {
                    // gather sub-vector q of every row into a contiguous block for the GEMM
                    for (r, s) in sub.chunks_exact_mut(dsub).enumerate() {
                        s.copy_from_slice(&xb[r * d + q * dsub..r * d + (q + 1) * dsub]);
                    }
                    l2::norms_sqr(&sub, dsub, &mut norms);
                    nearest2_block(
                        &sub,
                        &norms,
                        &self.centroids[q * ksub * dsub..(q + 1) * ksub * dsub],
                        &cnorms[q * ksub..(q + 1) * ksub],
                        dsub,
                        &mut near,
                    );
                    for (r, nr) in near.iter().enumerate() {
                        out[r * m + q] = nr.label as u8;
                    }
                }
                Ok(())
            })
    }

    /// Codebooks transposed per sub-quantizer: M × dsub × ksub.
    pub(crate) fn transposed_centroids(&self) -> Vec<f32> {
        let (m, ksub, dsub) = (self.m, self.ksub, self.dsub);
        let mut t = vec![0f32; m * dsub * ksub];
        for q in 0..m {
            for j in 0..ksub {
                for (i, &v) in self.centroid(q, j).iter().enumerate() {
                    t[(q * dsub + i) * ksub + j] = v;
                }
            }
        }
        t
    }

    /// Squared norms of every centroid, M × ksub.
    pub(crate) fn centroid_norms(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.m * self.ksub];
        l2::norms_sqr(&self.centroids, self.dsub, &mut out);
        out
    }

    /// Error naming `arg` if a code byte is `>= ksub` (only possible for nbits < 8).
    pub fn check_codes(&self, codes: &[u8], arg: &str) -> Result<usize> {
        if !codes.len().is_multiple_of(self.m) {
            return Err(Error::shape(format!(
                "{arg} has {} bytes, not a multiple of code_size={}",
                codes.len(),
                self.m
            )));
        }
        if self.ksub < 256 {
            if let Some(p) = codes.iter().position(|&c| c as usize >= self.ksub) {
                return Err(Error::invalid(format!(
                    "{arg}[{}, {}] = {} is not a valid {}-bit sub-code (must be < ksub={})",
                    p / self.m,
                    p % self.m,
                    codes[p],
                    self.nbits,
                    self.ksub
                )));
            }
        }
        Ok(codes.len() / self.m)
    }

    /// Reconstructions of `codes` (n × M bytes) as n × d floats.
    pub fn decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        self.require_trained()?;
        let n = self.check_codes(codes, "codes")?;
        let mut out = vec![0f32; n * self.d];
        out.par_chunks_mut(self.d.max(1) * 1024)
            .zip(codes.par_chunks(self.m * 1024))
            .for_each(|(o, c)| self.decode_into(c, o));
        Ok(out)
    }

    /// Decode validated codes into `out` (same number of rows).
    pub(crate) fn decode_into(&self, codes: &[u8], out: &mut [f32]) {
        for (code, row) in codes.chunks_exact(self.m).zip(out.chunks_exact_mut(self.d)) {
            for (q, (&c, dst)) in code.iter().zip(row.chunks_exact_mut(self.dsub)).enumerate() {
                dst.copy_from_slice(self.centroid(q, c as usize));
            }
        }
    }

    /// Distance table of one query row: `out[m·256 + j]` = ‖x_m − c_mj‖² (L2) or −⟨x_m, c_mj⟩
    /// (inner product, negated so that smaller is closer for the scan), plus the bias term of
    /// centroid j when `bias`; entries `j >= ksub` are +inf. `out.len() == M·256`.
    pub(crate) fn scan_table(&self, x: &[f32], metric: Metric, bias: bool, out: &mut [f32]) {
        let lvl = crate::simd::level();
        for (q, row) in out.chunks_exact_mut(TABLE_STRIDE).enumerate() {
            let xs = &x[q * self.dsub..(q + 1) * self.dsub];
            for (j, t) in row[..self.ksub].iter_mut().enumerate() {
                let c = self.centroid(q, j);
                *t = match metric {
                    Metric::L2 => l2::l2sqr_with(lvl, xs, c),
                    Metric::InnerProduct => -l2::inner_product_with(lvl, xs, c),
                };
            }
            if bias {
                for (t, b) in row
                    .iter_mut()
                    .zip(&self.bias[q * self.ksub..(q + 1) * self.ksub])
                {
                    *t += b;
                }
            }
            row[self.ksub..].fill(f32::INFINITY);
        }
    }

    /// Public ADC tables: nq × M × ksub, ‖x_m − c_mj‖² (L2) or ⟨x_m, c_mj⟩ (inner product).
    pub fn compute_distance_tables(&self, q: &[f32], metric: Metric) -> Result<Vec<f32>> {
        self.require_trained()?;
        let nq = crate::validate::check_batch(q, self.d, "queries")?;
        let per = self.m * self.ksub;
        let mut out = vec![0f32; nq * per];
        out.par_chunks_mut(per.max(1))
            .enumerate()
            .for_each(|(i, o)| {
                let mut t = vec![0f32; self.m * TABLE_STRIDE];
                self.scan_table(&q[i * self.d..(i + 1) * self.d], metric, false, &mut t);
                for (dst, src) in o
                    .chunks_exact_mut(self.ksub)
                    .zip(t.chunks_exact(TABLE_STRIDE))
                {
                    for (a, b) in dst.iter_mut().zip(src) {
                        *a = match metric {
                            Metric::L2 => *b,
                            Metric::InnerProduct => -*b,
                        };
                    }
                }
            });
        Ok(out)
    }

    /// Symmetric tables `S[m, i, j] = ‖c_mi − c_mj‖²`, M × ksub × ksub (256 KiB per
    /// sub-quantizer at ksub = 256). Searches do not need them materialized: the SDC table of a
    /// query is the ADC table of its reconstruction, which has the same entries.
    pub fn sdc_tables(&self) -> Result<Vec<f32>> {
        self.require_trained()?;
        let ks = self.ksub;
        let mut out = vec![0f32; self.m * ks * ks];
        out.par_chunks_mut(ks * ks).enumerate().for_each(|(q, s)| {
            for i in 0..ks {
                for j in 0..ks {
                    s[i * ks + j] = l2::l2sqr(self.centroid(q, i), self.centroid(q, j));
                }
            }
        });
        Ok(out)
    }

    /// Mean squared reconstruction error of `x` (n × d).
    pub fn quantization_mse(&self, x: &[f32], ctl: &Control) -> Result<f64> {
        let codes = self.encode(x, ctl)?;
        let n = codes.len() / self.m;
        if n == 0 {
            return Ok(0.0);
        }
        let err: f64 = x
            .par_chunks(self.d * 1024)
            .zip(codes.par_chunks(self.m * 1024))
            .map(|(xs, cs)| {
                let mut rec = vec![0f32; xs.len()];
                self.decode_into(cs, &mut rec);
                xs.iter()
                    .zip(&rec)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
            })
            .sum();
        Ok(err / n as f64)
    }

    /// Add this quantizer's metadata and sections (`pq_centroids`, `pq_bias`) to a file.
    pub fn write_meta<'a>(&'a self, w: &mut FileWriter<'a>) {
        w.meta_u64("d", self.d as u64)
            .meta_u64("M", self.m as u64)
            .meta_u64("nbits", self.nbits as u64)
            .meta_u64("pq_trained", self.trained as u64)
            .section_f32("pq_centroids", &self.centroids)
            .section_f32("pq_bias", &self.bias);
    }

    /// Read a quantizer written by [`write_meta`](Self::write_meta), checking every field.
    pub fn read_meta(r: &FileReader) -> Result<Self> {
        let d = r.meta_usize("d")?;
        let m = r.meta_usize("M")?;
        let nbits = r.meta_usize("nbits")?;
        let mut pq = ProductQuantizer::new(d, m, nbits).map_err(|e| r.err(e))?;
        pq.trained = match r.meta_u64("pq_trained")? {
            0 => false,
            1 => true,
            v => return Err(r.err(format!("metadata 'pq_trained' is {v}, not 0 or 1"))),
        };
        let c = r.section_f32("pq_centroids")?;
        let b = r.section_f32("pq_bias")?;
        if c.len() != pq.centroids.len() || b.len() != pq.bias.len() {
            return Err(r.err(format!(
                "PQ sections hold {} centroid and {} bias values, expected {} and {}",
                c.len(),
                b.len(),
                pq.centroids.len(),
                pq.bias.len()
            )));
        }
        check_finite(&c, pq.dsub, "pq_centroids").map_err(|e| r.err(e))?;
        pq.centroids.copy_from_slice(&c);
        pq.set_bias(&b).map_err(|e| r.err(e))?;
        Ok(pq)
    }
}
