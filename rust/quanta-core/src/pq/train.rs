//! PQ training: one k-means per sub-space (faiss `ProductQuantizer::train` semantics), run in
//! parallel over sub-spaces, then the per-centroid error terms used by bias correction.

use super::ProductQuantizer;
use crate::control::Control;
use crate::error::{Error, Result};
use crate::kmeans::{self, Init, KMeansParams};
use rayon::prelude::*;

/// One sub-quantizer's k-means: (centroids, final objective, warnings).
type SubResult = (Vec<f32>, f64, Vec<String>);

/// Rows per partial sum of the error terms.
const ERR_CHUNK: usize = 16384;

/// Training parameters; defaults follow faiss (25 iterations, 256 points per centroid).
#[derive(Debug, Clone)]
pub struct PqTrainParams {
    /// Lloyd iterations per sub-quantizer.
    pub niter: usize,
    /// k-means seed, the same for every sub-quantizer (faiss behaviour).
    pub seed: u64,
    /// k-means initialisation.
    pub init: Init,
    /// Subsample each sub-space to `ksub · max_points_per_centroid` rows.
    pub max_points_per_centroid: usize,
    /// Start Lloyd from the current codebooks when already trained (faiss `Train_hot_start`;
    /// OPQ refines its PQ this way).
    pub warm_start: bool,
}

impl Default for PqTrainParams {
    fn default() -> Self {
        PqTrainParams {
            niter: 25,
            seed: 1234,
            init: Init::Random,
            max_points_per_centroid: 256,
            warm_start: false,
        }
    }
}

/// What training reports besides the codebooks.
#[derive(Debug, Clone, Default)]
pub struct PqTrainReport {
    /// Final k-means objective of each sub-quantizer.
    pub objectives: Vec<f64>,
    /// k-means warnings (few points, subsampling), prefixed by the sub-quantizer.
    pub warnings: Vec<String>,
}

impl ProductQuantizer {
    /// Train the codebooks on `x` (n × d) and the bias-correction terms on all of `x`.
    pub fn train(
        &mut self,
        x: &[f32],
        params: &PqTrainParams,
        ctl: &Control,
    ) -> Result<PqTrainReport> {
        let report = self.train_codebooks(x, params, ctl)?;
        self.bias = self.error_terms(x, ctl)?;
        Ok(report)
    }

    /// The codebooks only (no bias terms): one k-means per sub-space.
    pub(crate) fn train_codebooks(
        &mut self,
        x: &[f32],
        params: &PqTrainParams,
        ctl: &Control,
    ) -> Result<PqTrainReport> {
        let n = crate::validate::check_batch(x, self.d, "x")?;
        if n < self.ksub {
            return Err(Error::invalid(format!(
                "x has {n} training vectors, fewer than ksub={} (2^nbits) centroids per \
                 sub-quantizer",
                self.ksub
            )));
        }
        let (d, dsub, ksub) = (self.d, self.dsub, self.ksub);
        let warm = params.warm_start && self.trained;
        let results: Vec<Result<SubResult>> = (0..self.m)
            .into_par_iter()
            .map(|q| {
                ctl.check()?;
                let mut sub = vec![0f32; n * dsub];
                for (r, s) in sub.chunks_exact_mut(dsub).enumerate() {
                    s.copy_from_slice(&x[r * d + q * dsub..r * d + (q + 1) * dsub]);
                }
                let mut kp = KMeansParams::new(ksub);
                kp.niter = params.niter;
                // one seed for every sub-quantizer, as faiss does (same initial rows)
                kp.seed = params.seed;
                kp.init = params.init;
                kp.max_points_per_centroid = params.max_points_per_centroid;
                // plain Lloyd: the same codebooks as faiss from the same initial rows
                kp.candidates = Some(0);
                let res = if warm {
                    let c = &self.centroids[q * ksub * dsub..(q + 1) * ksub * dsub];
                    kmeans::train_from(&sub, dsub, &kp, c, ctl)?
                } else {
                    kmeans::train(&sub, dsub, &kp, None, ctl)?
                };
                let obj = res.obj.last().copied().unwrap_or(0.0);
                let warnings = res
                    .warnings
                    .into_iter()
                    .map(|w| format!("sub-quantizer {q}: {w}"))
                    .collect();
                Ok((res.centroids, obj, warnings))
            })
            .collect();
        let mut report = PqTrainReport::default();
        for (q, r) in results.into_iter().enumerate() {
            let (c, obj, w) = r?;
            self.centroids[q * ksub * dsub..(q + 1) * ksub * dsub].copy_from_slice(&c);
            report.objectives.push(obj);
            // every sub-quantizer sees the same rows: keep one copy of identical warnings
            if q == 0 {
                report.warnings.extend(w);
            }
        }
        self.trained = true;
        Ok(report)
    }

    /// ξ[m, j]: mean of ‖x_m − c_mj‖² over the rows of `x` whose sub-code m is j (0 if none).
    pub(crate) fn error_terms(&self, x: &[f32], ctl: &Control) -> Result<Vec<f32>> {
        let (m, ksub, d, dsub) = (self.m, self.ksub, self.d, self.dsub);
        let n = x.len() / d;
        let mut codes = vec![0u8; n * m];
        self.encode_into(x, &mut codes, ctl)?;
        let (sum, cnt) = x
            .par_chunks(d * ERR_CHUNK)
            .zip(codes.par_chunks(m * ERR_CHUNK))
            .map(|(xs, cs)| {
                let mut sum = vec![0f64; m * ksub];
                let mut cnt = vec![0u64; m * ksub];
                for (row, code) in xs.chunks_exact(d).zip(cs.chunks_exact(m)) {
                    for (q, &c) in code.iter().enumerate() {
                        let e = crate::kernels::l2::l2sqr(
                            &row[q * dsub..(q + 1) * dsub],
                            self.centroid(q, c as usize),
                        );
                        sum[q * ksub + c as usize] += e as f64;
                        cnt[q * ksub + c as usize] += 1;
                    }
                }
                (sum, cnt)
            })
            // chunk partials summed in chunk order: the result does not depend on thread count
            .collect::<Vec<_>>()
            .into_iter()
            .fold(
                (vec![0f64; m * ksub], vec![0u64; m * ksub]),
                |(mut s, mut c), (s2, c2)| {
                    s.iter_mut().zip(s2).for_each(|(a, b)| *a += b);
                    c.iter_mut().zip(c2).for_each(|(a, b)| *a += b);
                    (s, c)
                },
            );
        Ok(sum
            .iter()
            .zip(&cnt)
            .map(|(&s, &c)| if c == 0 { 0.0 } else { (s / c as f64) as f32 })
            .collect())
    }
}
